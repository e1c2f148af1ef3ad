//! Removing a whole tree the agent made: no link followed, and a bounded number of descriptors
//! and path lengths however deep it is.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use rustix::fs::AtFlags;

use crate::{ContentError, Kind, Tree};

/// Deeper than this (relative to the tree being removed), subdirectories are moved up to its
/// top before being emptied, so no path handed to the kernel grows long (a 3,000-deep tree of
/// one-letter names would otherwise pass `PATH_MAX`).
const FLATTEN_DEPTH: usize = 32;

/// Removes the directory at `path` and everything in it. `path` itself is the host's (a
/// session's directory); nothing under it is followed.
pub fn remove_tree(path: &Path) -> Result<(), ContentError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(ContentError::Escapes);
    };
    let parent = Tree::open(parent)?;
    match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::ISDIR) => remove_entry_tree(&parent, name),
        Err(e) => Err(e.into()),
    }
}

/// Removes the directory `name` of `parent` and its whole content.
pub(crate) fn remove_entry_tree(parent: &Tree, name: &OsStr) -> Result<(), ContentError> {
    let top = parent.dir(Path::new(name))?;
    // Directories to empty, relative to `top`; a directory is removed once a pass finds it
    // holding no subdirectory, so its children (pushed after it) always go first.
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = pending.last().cloned() {
        let dir = match top.dir(&rel) {
            Ok(dir) => dir,
            Err(ContentError::NotFound) => {
                pending.pop();
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut subdirs = Vec::new();
        for entry in dir.entries()? {
            if entry.kind == Kind::Dir {
                subdirs.push(entry.name);
                continue;
            }
            match rustix::fs::unlinkat(&dir, &entry.name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if subdirs.is_empty() {
            pending.pop();
            if let (Some(up), Some(last)) = (rel.parent(), rel.file_name()) {
                match rustix::fs::unlinkat(&top.dir(up)?, last, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        } else if rel.components().count() >= FLATTEN_DEPTH {
            for sub in subdirs {
                let fresh = format!(".hearth-rm-{}", uuid::Uuid::new_v4().simple());
                rustix::fs::renameat(&dir, &sub, &top, fresh.as_str())?;
                pending.push(PathBuf::from(fresh));
            }
        } else {
            pending.extend(subdirs.into_iter().map(|sub| rel.join(sub)));
        }
    }
    drop(top);
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
