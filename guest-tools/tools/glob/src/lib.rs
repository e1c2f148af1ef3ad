//! `glob`: files whose paths match a pattern.

use std::ops::ControlFlow;

use hearth_tool_sdk::glob::Glob;
use hearth_tool_sdk::walk::walk_files;
use hearth_tool_sdk::{ToolError, View, export_tool, time};
use serde::Deserialize;
use serde_json::{Value, json};

/// deepagents' remote glob returns at most this many matches.
const MAX_GLOB_MATCHES: usize = 10_000;

struct GlobTool;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    pattern: String,
    path: Option<String>,
}

impl hearth_tool_sdk::Tool for GlobTool {
    const NAME: &'static str = "glob";
    const DESCRIPTION: &'static str = "Find files by pattern below a directory (default: the workspace). \
        A pattern without `/` matches file names at any depth (`*.py`); a pattern with `/` matches \
        the path relative to the directory, and a leading `/` anchors it there (`/*.py` is top-level \
        only). `**` spans directories, `{a,b}` gives alternatives, `[a-z]` and `?` match characters. \
        Names starting with `.` match only a pattern segment starting with `.`, and `**` does not \
        enter dot-directories. Returns regular files only, sorted by path. Names that are not valid \
        UTF-8 cannot be shown: `skipped_names` counts the entries left out for that reason.";
    const READ_ONLY: bool = true;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Glob pattern, e.g. `*.py`, `src/**/*.rs` or `*.{json,yaml}`."
                },
                "path": {
                    "type": "string",
                    "description": "Absolute path of the directory to search. Defaults to the workspace (/workspace)."
                }
            },
            "required": ["pattern"],
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let glob = Glob::new(&args.pattern)?;
        let root = view.resolve(args.path.as_deref().unwrap_or(view.home()))?;
        let mut matches = Vec::new();
        let mut more = false;
        let walk = walk_files(view, &root, |file| {
            if !glob.matches(file.relative) {
                return ControlFlow::Continue(());
            }
            // Looked at for a match only; gone since the listing, it is not a match.
            let Some(stat) = file.stat() else {
                return ControlFlow::Continue(());
            };
            if matches.len() == MAX_GLOB_MATCHES {
                more = true;
                return ControlFlow::Break(());
            }
            matches.push(json!({
                "path": file.path,
                "is_dir": false,
                "size": stat.size,
                "modified_at": stat.modified.map(time::rfc3339),
            }));
            ControlFlow::Continue(())
        })?;
        matches.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        Ok(json!({
            "matches": matches,
            "truncated": more || walk.truncated,
            "skipped_names": walk.skipped_names,
        }))
    }
}

export_tool!(GlobTool);
