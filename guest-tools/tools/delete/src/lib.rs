//! `delete`: removes a file, a symlink, or a directory with everything in it.

use std::fs;
use std::io;

use hearth_tool_sdk::{ToolError, View, dir, export_tool, view};
use serde::Deserialize;
use serde_json::{Value, json};

struct Delete;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
}

impl hearth_tool_sdk::Tool for Delete {
    const NAME: &'static str = "delete";
    const DESCRIPTION: &'static str = "Delete a file or a directory (recursively, with everything in \
        it). A symlink is removed itself; its target is left alone. The roots (/workspace, /tmp) \
        and read-only areas cannot be deleted. Entries whose names are not valid UTF-8 cannot be \
        deleted by tools: they are left (with the directories holding them) and the call fails \
        with a conflict saying so.";
    const READ_ONLY: bool = false;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Absolute path of the file or directory to delete, e.g. /workspace/build."
                }
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let (path, _) = view.resolve_writable(&args.file_path)?;
        if view.is_mount_root(&path) {
            return Err(ToolError::PermissionDenied(format!(
                "`{}` is the root of a mount and cannot be deleted",
                args.file_path
            )));
        }
        let metadata = fs::symlink_metadata(&path).map_err(ToolError::io(&args.file_path))?;
        let is_dir = metadata.is_dir();
        if is_dir {
            if let Some(inner) = view
                .mounts()
                .iter()
                .find(|m| hearth_tool_sdk::view::is_within(&m.path, &path))
            {
                return Err(ToolError::PermissionDenied(format!(
                    "`{}` contains the mount `{}`, which cannot be deleted",
                    args.file_path, inner.path
                )));
            }
            let left = remove_tree(&path).map_err(ToolError::io(&args.file_path))?;
            if left > 0 {
                return Err(ToolError::Conflict(format!(
                    "`{}` holds {left} entries whose names are not valid UTF-8; tools cannot \
                     name them, so they and the directories holding them were left in place \
                     (everything else was deleted). Remove them with a command, e.g. `rm -rf {}`.",
                    args.file_path, path
                )));
            }
        } else {
            fs::remove_file(&path).map_err(ToolError::io(&args.file_path))?;
        }
        Ok(json!({ "path": path, "is_dir": is_dir }))
    }
}

/// Removes directory `root` and everything below it without following symlinks, like
/// `fs::remove_dir_all`, which on WASI stops at the first name that is not UTF-8. Such names
/// cannot be unlinked through WASI at all, so they are skipped: the rest is removed and the
/// count of skipped names is returned (their directories stay, being not empty).
///
/// Iterative, so a deep tree cannot exhaust the tool's stack.
fn remove_tree(root: &str) -> io::Result<usize> {
    let mut left = 0;
    // (directory, `left` before it was listed) once emptied, or `None` before: a directory is
    // pushed back under its children and removed after them, unless an entry below it had to
    // be left (it is then not empty).
    let mut stack: Vec<(String, Option<usize>)> = vec![(root.to_owned(), None)];
    while let Some((path, listed)) = stack.pop() {
        if let Some(left_before) = listed {
            if left == left_before {
                ignore_not_found(fs::remove_dir(&path))?;
            }
            continue;
        }
        let listing = dir::list(&path, usize::MAX, dir::Look::Kinds)?;
        stack.push((path.clone(), Some(left)));
        left += listing.skipped_names;
        for entry in listing.entries {
            let child = view::join(&path, &entry.name);
            if entry.kind == dir::Kind::Dir {
                stack.push((child, None));
            } else {
                ignore_not_found(fs::remove_file(&child))?;
            }
        }
    }
    Ok(left)
}

/// Something removed concurrently is as good as removed by us.
fn ignore_not_found(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

export_tool!(Delete);
