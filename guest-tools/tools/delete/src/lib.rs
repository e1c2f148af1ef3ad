//! `delete`: removes a file, a symlink, or a directory with everything in it.

use std::fs;

use hearth_tool_sdk::{ToolError, View, export_tool};
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
        and read-only areas cannot be deleted.";
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
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .map_err(ToolError::io(&args.file_path))?;
        Ok(json!({ "path": path, "is_dir": is_dir }))
    }
}

export_tool!(Delete);
