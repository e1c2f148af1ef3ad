//! `write_file`: creates or replaces a file, atomically.

use base64::Engine as _;
use hearth_tool_sdk::atomic::{Existing, Target};
use hearth_tool_sdk::{ToolError, View, export_tool};
use serde::Deserialize;
use serde_json::{Value, json};

struct WriteFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    content: String,
    #[serde(default)]
    encoding: Encoding,
}

#[derive(Deserialize, Default, Clone, Copy)]
enum Encoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

impl hearth_tool_sdk::Tool for WriteFile {
    const NAME: &'static str = "write_file";
    const DESCRIPTION: &'static str = "Write a file: creates it (and any missing parent directories) \
        or replaces it entirely if it exists. The write is atomic: readers never see a partial file. \
        Use an absolute path under /workspace or /tmp. Binary content can be sent base64-encoded with \
        `encoding: \"base64\"`.";
    const READ_ONLY: bool = false;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Absolute path of the file to write, e.g. /workspace/src/main.py."
                },
                "content": {
                    "type": "string",
                    "description": "The complete new content of the file."
                },
                "encoding": {
                    "type": "string",
                    "enum": ["utf-8", "base64"],
                    "description": "How `content` is encoded: `utf-8` text (default) or `base64` bytes."
                }
            },
            "required": ["file_path", "content"],
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let (path, _) = view.resolve_writable(&args.file_path)?;
        let bytes = match args.encoding {
            Encoding::Utf8 => args.content.into_bytes(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(args.content.as_bytes())
                .map_err(|e| {
                    ToolError::InvalidInput(format!("`content` is not valid base64: {e}"))
                })?,
        };
        if view.is_mount_root(&path) {
            return Err(ToolError::IsDirectory(format!(
                "`{}` is a directory",
                args.file_path
            )));
        }
        let io_error = ToolError::io(&args.file_path);
        let target = Target::resolve(&path).map_err(&io_error)?;
        let created = match target.existing() {
            Existing::Directory => {
                return Err(ToolError::IsDirectory(format!(
                    "`{}` is a directory",
                    args.file_path
                )));
            }
            Existing::Other => false,
            Existing::Nothing => true,
        };
        target.write(&bytes).map_err(io_error)?;
        Ok(json!({ "path": path, "bytes_written": bytes.len(), "created": created }))
    }
}

export_tool!(WriteFile);
