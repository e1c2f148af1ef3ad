//! Walking a tree of session content: depth-first, names sorted byte-wise, links never
//! followed, a bounded depth, and a bounded number of open descriptors whatever the tree.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::{ContentError, Entry, Kind, Tree};

/// One entry met by a walk.
pub struct Visit<'a> {
    /// Relative to the walk's root (`src/main.py`), bytes as on disk.
    pub path: &'a Path,
    pub name: &'a OsStr,
    pub kind: Kind,
    /// 1 for the root's own entries.
    pub depth: usize,
    /// The directory holding the entry: open `name` through it (one component, no
    /// re-resolution of `path`).
    pub dir: &'a Tree,
}

/// A walk of at most `max_depth` nested directories.
#[derive(Debug, Clone, Copy)]
pub struct Walk {
    pub max_depth: usize,
}

struct Level {
    rel: PathBuf,
    entries: std::vec::IntoIter<Entry>,
}

impl Walk {
    pub fn new(max_depth: usize) -> Self {
        Self { max_depth }
    }

    /// Calls `visit` for every entry beneath `root`, in depth-first pre-order (a directory,
    /// then what it holds). An entry more than `max_depth` directories down stops the walk with
    /// [`ContentError::TooDeep`]. Only the directory being listed is held open: going back up
    /// reopens the parent from the root, so a deep tree costs no descriptors.
    pub fn run<E: From<ContentError>>(
        &self,
        root: &Tree,
        mut visit: impl FnMut(Visit<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut current = root.dir(Path::new(""))?;
        let mut stack = vec![Level {
            rel: PathBuf::new(),
            entries: current.entries()?.into_iter(),
        }];
        while let Some(level) = stack.last_mut() {
            let Some(entry) = level.entries.next() else {
                stack.pop();
                if let Some(parent) = stack.last() {
                    current = root.dir(&parent.rel)?;
                }
                continue;
            };
            let path = level.rel.join(&entry.name);
            let depth = stack.len();
            if depth > self.max_depth {
                return Err(ContentError::TooDeep {
                    limit: self.max_depth,
                }
                .into());
            }
            visit(Visit {
                path: &path,
                name: &entry.name,
                kind: entry.kind,
                depth,
                dir: &current,
            })?;
            if entry.kind != Kind::Dir {
                continue;
            }
            let child = match current.dir(Path::new(&entry.name)) {
                Ok(child) => child,
                // Gone since the listing: nothing to walk.
                Err(ContentError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            let entries = child.entries()?.into_iter();
            stack.push(Level { rel: path, entries });
            current = child;
        }
        Ok(())
    }
}
