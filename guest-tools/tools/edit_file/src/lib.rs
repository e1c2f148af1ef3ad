//! `edit_file`: exact string replacement in a text file.

use std::fs;

use hearth_tool_sdk::{ToolError, View, atomic, export_tool};
use serde::Deserialize;
use serde_json::{Value, json};

/// Error messages quote the caller's `old_string`; a whole pasted file would drown the message.
const MAX_QUOTED_CHARS: usize = 200;

struct EditFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    file_path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
}

impl hearth_tool_sdk::Tool for EditFile {
    const NAME: &'static str = "edit_file";
    const DESCRIPTION: &'static str = "Replace exact text in a file. `old_string` must appear exactly \
        once unless `replace_all` is true, in which case every occurrence is replaced. Include enough \
        surrounding context to make `old_string` unique. Answers with the number of occurrences \
        replaced. The file is rewritten atomically.";
    const READ_ONLY: bool = false;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "Absolute path of the file to edit, e.g. /workspace/src/main.py."
                },
                "old_string": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The exact text to replace (whitespace and indentation included)."
                },
                "new_string": {
                    "type": "string",
                    "description": "The text to put in its place."
                },
                "replace_all": {
                    "type": "boolean",
                    "description": "Replace every occurrence instead of requiring exactly one. Defaults to false."
                }
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let (path, _) = view.resolve_writable(&args.file_path)?;
        if args.old_string == args.new_string {
            return Err(ToolError::InvalidInput(
                "`old_string` and `new_string` are identical; nothing would change".into(),
            ));
        }
        ToolError::regular_file(&path, &args.file_path)?;
        let bytes = fs::read(&path).map_err(ToolError::io(&args.file_path))?;
        let content = String::from_utf8(bytes).map_err(|_| {
            ToolError::InvalidInput(format!("`{}` is not a UTF-8 text file", args.file_path))
        })?;
        let occurrences = content.matches(args.old_string.as_str()).count();
        let quoted = quote(&args.old_string);
        if occurrences == 0 {
            return Err(ToolError::Conflict(format!(
                "String not found in file: '{quoted}'"
            )));
        }
        if occurrences > 1 && !args.replace_all {
            return Err(ToolError::Conflict(format!(
                "String '{quoted}' appears {occurrences} times in file. Use replace_all=true to \
                 replace all instances, or provide a more specific string with surrounding context."
            )));
        }
        let edited = content.replace(args.old_string.as_str(), &args.new_string);
        atomic::write_atomic(&path, edited.as_bytes()).map_err(ToolError::io(&args.file_path))?;
        Ok(json!({ "path": path, "occurrences": occurrences }))
    }
}

fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

export_tool!(EditFile);
