//! Walking the files below a view path, for `glob` and `grep`.
//!
//! Symlinks are never followed (a link cannot make the walk loop, count a file twice, or lead out
//! of the view), nested mounts are entered through their own view path, files are visited in
//! path order, and the number of entries looked at is capped so a huge tree yields a partial
//! answer flagged `truncated` instead of running into the deadline. Entries whose names a tool
//! cannot hold (not UTF-8; see [`crate::dir`]) are skipped and counted in
//! [`WalkSummary::skipped_names`].

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::rc::Rc;

use crate::ToolError;
use crate::dir::{self, FileBytes, Kind, Look, OpenDir, Stat};
use crate::view::{self, Resolved, View};

/// How many directory entries one walk may look at before it stops and reports `truncated`.
pub const MAX_WALK_ENTRIES: usize = 200_000;

/// A regular file found by the walk.
pub struct FileEntry<'a> {
    /// Absolute view path.
    pub path: &'a str,
    /// Path relative to the walk's root (the file name when the root is the file itself).
    pub relative: &'a str,
    /// Where the file was listed: the directory, still open, and its name there (`None` for a
    /// root, reached by its path).
    listed: Option<(&'a OpenDir, &'a str)>,
    /// Its stat when the walk already had it (a root); otherwise [`FileEntry::stat`] looks.
    known: Option<Stat>,
}

impl FileEntry<'_> {
    /// The file's size and time, looked at now (one host call: the walk itself learns only
    /// kinds, so a tool pays this for the files it keeps, not for every entry). `None` when it
    /// is no longer a regular file: it vanished or was replaced since the listing, and is to
    /// be left out as if the walk had never seen it.
    pub fn stat(&self) -> Option<Stat> {
        if self.known.is_some() {
            return self.known;
        }
        let stat = match self.listed {
            Some((dir, name)) => dir.stat(name),
            None => fs::symlink_metadata(self.path).ok().map(|m| Stat::from(&m)),
        };
        stat.filter(Stat::is_file)
    }

    /// The file's bytes when it holds at most `max` (through the directory it was listed in: no
    /// path resolved again, no link followed).
    pub fn read(&self, max: u64) -> io::Result<FileBytes> {
        match self.listed {
            Some((dir, name)) => dir.read_file(name, max),
            // A root, reached by its path (a symlink given as the root is followed, as any
            // path argument is).
            None => dir::read_path(std::path::Path::new(self.path), max),
        }
    }
}

/// What a finished walk knows about its own completeness.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkSummary {
    /// The entry cap was hit or the visitor stopped early.
    pub truncated: bool,
    /// Directories that could not be read (skipped).
    pub unreadable_dirs: usize,
    /// Entries left out because their names could not be read (not UTF-8).
    pub skipped_names: usize,
}

/// An entry waiting on the walk's stack.
struct Pending {
    path: String,
    relative: String,
    kind: Kind,
    /// The directory it was listed in (kept open while any of its files waits).
    parent: Option<Rc<OpenDir>>,
    /// Known for the roots only.
    stat: Option<Stat>,
}

impl Pending {
    fn root(path: String, relative: String, metadata: &fs::Metadata) -> Self {
        let stat = Stat::from(metadata);
        Self {
            path,
            relative,
            kind: stat.kind,
            parent: None,
            stat: Some(stat),
        }
    }
}

/// Calls `visit` for every regular file below `root` (or `root` itself when it is a file), in
/// name order, directory by directory.
pub fn walk_files(
    view: &View,
    root: &Resolved,
    mut visit: impl FnMut(&FileEntry<'_>) -> ControlFlow<()>,
) -> Result<WalkSummary, ToolError> {
    let mut summary = WalkSummary::default();
    let mut stack: Vec<Pending> = Vec::new();
    match root {
        Resolved::Root => {
            let mut tops: Vec<&str> = view.child_mounts("/").map(|m| m.path.as_str()).collect();
            tops.sort_unstable_by(|a, b| b.cmp(a));
            for top in tops {
                let metadata = fs::metadata(top).map_err(ToolError::io(top))?;
                let relative = top.trim_start_matches('/').to_owned();
                stack.push(Pending::root(top.to_owned(), relative, &metadata));
            }
        }
        Resolved::InMount { path, .. } => {
            let metadata = fs::metadata(path).map_err(ToolError::io(path))?;
            let relative = if metadata.is_file() {
                path.rsplit('/').next().unwrap_or(path).to_owned()
            } else {
                String::new()
            };
            stack.push(Pending::root(path.clone(), relative, &metadata));
        }
    }

    let mut seen = 0usize;
    while let Some(entry) = stack.pop() {
        if entry.kind == Kind::File {
            let name = entry.path.rsplit('/').next().unwrap_or_default();
            let file = FileEntry {
                path: &entry.path,
                relative: &entry.relative,
                listed: entry.parent.as_deref().map(|dir| (dir, name)),
                known: entry.stat,
            };
            if visit(&file).is_break() {
                summary.truncated = true;
                return Ok(summary);
            }
            continue;
        }
        if entry.kind != Kind::Dir {
            continue; // symlinks, sockets, devices
        }
        let Ok((listing, open)) = dir::list_open(&entry.path, MAX_WALK_ENTRIES - seen, Look::Kinds)
        else {
            summary.unreadable_dirs += 1;
            continue;
        };
        seen += listing.read;
        summary.skipped_names += listing.skipped_names;
        if listing.truncated {
            summary.truncated = true;
            return Ok(summary);
        }
        let mut children: Vec<(String, Kind, Option<Stat>)> = Vec::new();
        let mounts_below = view.child_mounts(&entry.path).next().is_some();
        for child in listing.entries {
            // A mount shadows whatever the parent directory holds under that name.
            if mounts_below && view.is_mount_root(&view::join(&entry.path, &child.name)) {
                continue;
            }
            // The entry's own kind: symlinks are not followed.
            children.push((child.name, child.kind, None));
        }
        for mount in view.child_mounts(&entry.path) {
            if let Ok(metadata) = fs::metadata(&mount.path) {
                let name = mount.path.rsplit('/').next().unwrap_or_default().to_owned();
                let stat = Stat::from(&metadata);
                children.push((name, stat.kind, Some(stat)));
            }
        }
        // Reverse name order on the stack pops children in name order.
        children.sort_by(|a, b| b.0.cmp(&a.0));
        let open = Rc::new(open);
        for (name, kind, stat) in children {
            // Files are read through their directory; a directory is opened by its own path.
            let parent = (kind == Kind::File && stat.is_none()).then(|| open.clone());
            let relative = if entry.relative.is_empty() {
                name.clone()
            } else {
                format!("{}/{name}", entry.relative)
            };
            stack.push(Pending {
                path: view::join(&entry.path, &name),
                relative,
                kind,
                parent,
                stat,
            });
        }
    }
    Ok(summary)
}

// Native only: they make names that are not UTF-8, which needs Linux's byte-string names.
#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;
    use crate::dir::tests::tempfile_dir;
    use crate::view::Mount;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names_that_are_not_utf8_are_skipped_and_the_walk_goes_on() {
        let root = tempfile_dir("walk");
        fs::write(root.join(OsStr::from_bytes(b"\xff.txt")), "x").unwrap();
        fs::write(root.join("ok.txt"), "x").unwrap();
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub").join(OsStr::from_bytes(b"bad\xfe")), "x").unwrap();
        fs::write(root.join("sub/z.txt"), "x").unwrap();
        let root_path = root.to_str().unwrap().to_owned();
        let view = View::new(
            vec![Mount {
                path: root_path.clone(),
                writable: false,
            }],
            &root_path,
        );
        let mut visited = Vec::new();
        let summary = walk_files(&view, &view.resolve(&root_path).unwrap(), |file| {
            visited.push(file.relative.to_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(visited, ["ok.txt", "sub/z.txt"]);
        assert_eq!(summary.skipped_names, 2);
        assert!(!summary.truncated);
        assert_eq!(summary.unreadable_dirs, 0);
        fs::remove_dir_all(&root).unwrap();
    }
}
