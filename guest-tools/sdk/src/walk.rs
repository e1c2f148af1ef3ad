//! Walking the files below a view path, for `glob` and `grep`.
//!
//! Symlinks are never followed (a link cannot make the walk loop, count a file twice, or lead out
//! of the view), nested mounts are entered through their own view path, files are visited in
//! path order, and the number of entries looked at is capped so a huge tree yields a partial
//! answer flagged `truncated` instead of running into the deadline.

use std::fs;
use std::ops::ControlFlow;

use crate::ToolError;
use crate::view::{self, Resolved, View};

/// How many directory entries one walk may look at before it stops and reports `truncated`.
pub const MAX_WALK_ENTRIES: usize = 200_000;

/// A regular file found by the walk.
pub struct FileEntry<'a> {
    /// Absolute view path.
    pub path: &'a str,
    /// Path relative to the walk's root (the file name when the root is the file itself).
    pub relative: &'a str,
    pub metadata: &'a fs::Metadata,
}

/// What a finished walk knows about its own completeness.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkSummary {
    /// The entry cap was hit or the visitor stopped early.
    pub truncated: bool,
    /// Directories that could not be read (skipped).
    pub unreadable_dirs: usize,
}

/// An entry waiting on the walk's stack.
struct Pending {
    path: String,
    relative: String,
    metadata: fs::Metadata,
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
                stack.push(Pending {
                    path: top.to_owned(),
                    relative: top.trim_start_matches('/').to_owned(),
                    metadata,
                });
            }
        }
        Resolved::InMount { path, .. } => {
            let metadata = fs::metadata(path).map_err(ToolError::io(path))?;
            let relative = if metadata.is_file() {
                path.rsplit('/').next().unwrap_or(path).to_owned()
            } else {
                String::new()
            };
            stack.push(Pending {
                path: path.clone(),
                relative,
                metadata,
            });
        }
    }

    let mut seen = 0usize;
    while let Some(entry) = stack.pop() {
        if entry.metadata.is_file() {
            let file = FileEntry {
                path: &entry.path,
                relative: &entry.relative,
                metadata: &entry.metadata,
            };
            if visit(&file).is_break() {
                summary.truncated = true;
                return Ok(summary);
            }
            continue;
        }
        if !entry.metadata.is_dir() {
            continue; // symlinks, sockets, devices
        }
        let Ok(read_dir) = fs::read_dir(&entry.path) else {
            summary.unreadable_dirs += 1;
            continue;
        };
        let mut children: Vec<(String, fs::Metadata)> = Vec::new();
        for child in read_dir.flatten() {
            seen += 1;
            if seen > MAX_WALK_ENTRIES {
                summary.truncated = true;
                return Ok(summary);
            }
            let Ok(name) = child.file_name().into_string() else {
                continue;
            };
            // A mount shadows whatever the parent directory holds under that name.
            if view.is_mount_root(&view::join(&entry.path, &name)) {
                continue;
            }
            // `DirEntry::metadata` does not follow symlinks.
            if let Ok(metadata) = child.metadata() {
                children.push((name, metadata));
            }
        }
        for mount in view.child_mounts(&entry.path) {
            if let Ok(metadata) = fs::metadata(&mount.path) {
                let name = mount.path.rsplit('/').next().unwrap_or_default().to_owned();
                children.push((name, metadata));
            }
        }
        // Reverse name order on the stack pops children in name order.
        children.sort_by(|a, b| b.0.cmp(&a.0));
        for (name, metadata) in children {
            let relative = if entry.relative.is_empty() {
                name.clone()
            } else {
                format!("{}/{name}", entry.relative)
            };
            stack.push(Pending {
                path: view::join(&entry.path, &name),
                relative,
                metadata,
            });
        }
    }
    Ok(summary)
}
