//! `grep`: literal text search in files.

use std::io;
use std::ops::ControlFlow;

use hearth_tool_sdk::dir::FileBytes;
use hearth_tool_sdk::glob::Glob;
use hearth_tool_sdk::walk::{FileEntry, walk_files};
use hearth_tool_sdk::{ToolError, View, export_tool};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_MAX_MATCHES: u64 = 1_000;
const MAX_MATCHES: u64 = 10_000;
/// Larger files are skipped (and counted in `files_skipped`): a tool's memory is capped, and an
/// agent grepping a multi-megabyte artefact wants a different tool.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// A matching line longer than this is cut (at a character boundary) and ends with `…`.
const MAX_LINE_CHARS: usize = 1_000;
/// The same binary test as `read_file`: a NUL byte in the first 8 KiB.
const SNIFF_BYTES: usize = 8_192;

struct Grep;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    pattern: String,
    path: Option<String>,
    glob: Option<String>,
    max_count: Option<u64>,
}

impl hearth_tool_sdk::Tool for Grep {
    const NAME: &'static str = "grep";
    const DESCRIPTION: &'static str = "Search files for a literal string (not a regular expression: \
        `a.c` matches only `a.c`). Searches a file, or every file below a directory (default: \
        the workspace), optionally only files matching `glob` (same rules as the glob tool). Returns \
        matches as `{path, line, text}` with 1-based line numbers, at most `max_count` in all \
        (default 1000), with `truncated` when there were more. Binary files are skipped (counted in \
        `files_skipped`), and so are names that are not valid UTF-8 (counted in `skipped_names`).";
    const READ_ONLY: bool = true;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The exact text to look for."
                },
                "path": {
                    "type": "string",
                    "description": "Absolute path of a file or directory to search. Defaults to the workspace (/workspace)."
                },
                "glob": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Only search files matching this glob, e.g. `*.py`."
                },
                "max_count": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_MATCHES,
                    "description": "Maximum number of matches to return. Defaults to 1000."
                }
            },
            "required": ["pattern"],
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let filter = args.glob.as_deref().map(Glob::new).transpose()?;
        let root = view.resolve(args.path.as_deref().unwrap_or(view.home()))?;
        let limit = args.max_count.unwrap_or(DEFAULT_MAX_MATCHES) as usize;
        let finder = memchr::memmem::Finder::new(args.pattern.as_bytes());
        let mut matches = Vec::new();
        let mut more = false;
        let mut files_skipped = 0u64;
        let walk = walk_files(view, &root, |file| {
            if filter.as_ref().is_some_and(|g| !g.matches(file.relative)) {
                return ControlFlow::Continue(());
            }
            let content = match read_text(file) {
                Text::Searchable(content) => content,
                Text::Skipped => {
                    files_skipped += 1;
                    return ControlFlow::Continue(());
                }
                // Gone since the listing: as if the walk had never seen it.
                Text::Gone => return ControlFlow::Continue(()),
            };
            for (index, line) in content.split(|&b| b == b'\n').enumerate() {
                if finder.find(line).is_none() {
                    continue;
                }
                if matches.len() == limit {
                    more = true;
                    return ControlFlow::Break(());
                }
                matches
                    .push(json!({ "path": file.path, "line": index + 1, "text": display(line) }));
            }
            ControlFlow::Continue(())
        })?;
        // Stable: lines stay in order within a file.
        matches.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        Ok(json!({
            "matches": matches,
            "truncated": more || walk.truncated,
            "files_skipped": files_skipped,
            "skipped_names": walk.skipped_names,
        }))
    }
}

/// What [`read_text`] found.
enum Text {
    Searchable(Vec<u8>),
    /// Binary, oversized, unreadable or no longer a regular file: counted as skipped.
    Skipped,
    /// Removed since the walk listed it.
    Gone,
}

/// The file's bytes when it is a searchable text file.
fn read_text(file: &FileEntry<'_>) -> Text {
    match file.read(MAX_FILE_BYTES) {
        Ok(FileBytes::Bytes(bytes)) if !bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) => {
            Text::Searchable(bytes)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Text::Gone,
        _ => Text::Skipped,
    }
}

fn display(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    match text.char_indices().nth(MAX_LINE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.into_owned(),
    }
}

export_tool!(Grep);
