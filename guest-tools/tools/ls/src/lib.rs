//! `ls`: the entries of one directory of the session's view.

use std::fs;

use hearth_tool_sdk::dir::{Look, Stat};
use hearth_tool_sdk::view::{self, Resolved, View};
use hearth_tool_sdk::walk::MAX_WALK_ENTRIES;
use hearth_tool_sdk::{ToolError, export_tool, time};
use serde::Deserialize;
use serde_json::{Value, json};

/// An agent gains nothing from a listing longer than this; the answer says `truncated`.
const MAX_LS_ENTRIES: usize = 10_000;

struct Ls;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "default_path")]
    path: String,
}

fn default_path() -> String {
    "/".to_owned()
}

impl hearth_tool_sdk::Tool for Ls {
    const NAME: &'static str = "ls";
    const DESCRIPTION: &'static str = "List the files and directories directly inside a directory \
        (not recursive). Paths are absolute: the workspace is /workspace, scratch space is /tmp, and \
        `/` lists those roots. Each entry has `path` (directories end with `/`), `is_dir`, `size` in \
        bytes and `modified_at` (RFC 3339, UTC), sorted by path. Names that are not valid UTF-8 \
        cannot be shown: `skipped_names` counts the entries left out for that reason.";
    const READ_ONLY: bool = true;
    type Args = Args;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Absolute path of the directory to list, e.g. /workspace or /workspace/src. Defaults to `/`."
                }
            },
            "additionalProperties": false
        })
    }

    fn run(view: &View, args: Args) -> Result<Value, ToolError> {
        let dir = match view.resolve(&args.path)? {
            Resolved::Root => "/".to_owned(),
            Resolved::InMount { path, .. } => path,
        };
        let mut entries = Vec::new();
        let (mut skipped_names, mut unread) = (0, false);
        if dir != "/" {
            let metadata = fs::metadata(&dir).map_err(ToolError::io(&args.path))?;
            if !metadata.is_dir() {
                return Err(ToolError::InvalidInput(format!(
                    "`{}` is not a directory",
                    args.path
                )));
            }
            let listing = hearth_tool_sdk::dir::list(&dir, MAX_WALK_ENTRIES, Look::Stats)
                .map_err(ToolError::io(&args.path))?;
            skipped_names = listing.skipped_names;
            // Beyond the budget the listing stops early rather than run into the deadline.
            unread = listing.truncated;
            for entry in listing.entries {
                let path = view::join(&dir, &entry.name);
                if !view.is_mount_root(&path) {
                    // The entry's own stat cost one `fstatat` on the open directory; only
                    // symlinks need a second look (at their target).
                    let stat = entry.stat.filter(|s| !s.is_symlink());
                    entries.push(describe(&path, stat));
                }
            }
        }
        entries.extend(view.child_mounts(&dir).map(|m| describe(&m.path, None)));
        entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        let truncated = unread || entries.len() > MAX_LS_ENTRIES;
        entries.truncate(MAX_LS_ENTRIES);
        Ok(json!({ "entries": entries, "truncated": truncated, "skipped_names": skipped_names }))
    }
}

/// One listing entry. Symlinks are described by their target when it resolves inside the view,
/// and as a zero-size file otherwise (the host refuses to follow links out of the view).
fn describe(path: &str, known: Option<Stat>) -> Value {
    let stat = known.or_else(|| {
        let metadata = fs::metadata(path)
            .or_else(|_| fs::symlink_metadata(path))
            .ok()?;
        Some(Stat::from(&metadata))
    });
    let (is_dir, size, modified) = match stat {
        Some(s) => (s.is_dir(), if s.is_dir() { 0 } else { s.size }, s.modified),
        None => (false, 0, None),
    };
    json!({
        "path": if is_dir { format!("{path}/") } else { path.to_owned() },
        "is_dir": is_dir,
        "size": size,
        "modified_at": modified.map(time::rfc3339),
    })
}

export_tool!(Ls);
