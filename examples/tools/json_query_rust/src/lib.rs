//! `json_query`, in Rust: the same tool as the Python template (`hearth tool new NAME --lang
//! python`) — a JSON file of the session's view, and the value at a dotted path — so the two
//! can replace each other on a live worker, and be measured side by side (BENCHMARKS.md).

wit_bindgen::generate!({ world: "tool", path: "../../../wit" });

use hearth::tool::types::Mount;
use serde_json::Value;

/// Files larger than this are refused, as the Python tool does.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why a query does not fit its document.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// The value at `path` (`a.b.0`, `items.-1`; empty: the whole document).
pub fn query<'a>(document: &'a Value, path: &str) -> Result<&'a Value, Refused> {
    let mut node = document;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let next = match node {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<i64>().ok().and_then(|i| {
                let len = items.len() as i64;
                let at = if i < 0 { i + len } else { i };
                usize::try_from(at).ok().and_then(|at| items.get(at))
            }),
            _ => None,
        };
        node =
            next.ok_or_else(|| Refused(format!("`{part}` is not in the document (at `{path}`)")))?;
    }
    Ok(node)
}

struct JsonQuery;

impl Guest for JsonQuery {
    fn describe() -> Metadata {
        Metadata {
            name: "json_query".into(),
            description: "Read a JSON file and return the value at a dotted path (`a.b.0`).".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "file_path": { "type": "string", "description": "An absolute path, e.g. /workspace/package.json." },
                    "query": { "type": "string", "description": "A dotted path, e.g. `dependencies.serde` or `items.0`." }
                },
                "required": ["file_path"],
                "additionalProperties": false
            })
            .to_string(),
            read_only: true,
        }
    }

    fn invoke(context: CallContext, args: String) -> Result<String, ToolError> {
        let args: Value =
            serde_json::from_str(&args).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let path = in_view(args["file_path"].as_str().unwrap_or_default(), &context)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| io_error(&path, e))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(ToolError::TooLarge(format!(
                "`{path}` is over {MAX_FILE_BYTES} bytes"
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let document: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ToolError::InvalidInput(format!("`{path}` is not JSON: {e}")))?;
        let value = query(&document, args["query"].as_str().unwrap_or_default())
            .map_err(|Refused(why)| ToolError::InvalidInput(why))?;
        Ok(serde_json::json!({ "value": value }).to_string())
    }
}

/// `path`, if it lies in one of the view's areas this call was granted.
fn in_view(path: &str, context: &CallContext) -> Result<String, ToolError> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Err(ToolError::InvalidPath(format!(
            "`{path}` is not an absolute view path"
        )));
    }
    let inside = |m: &Mount| {
        path == m.path || path.starts_with(&format!("{}/", m.path.trim_end_matches('/')))
    };
    match context.mounts.iter().any(inside) {
        true => Ok(path.to_owned()),
        false => Err(ToolError::InvalidPath(format!(
            "`{path}` is outside the session's view"
        ))),
    }
}

fn io_error(path: &str, e: std::io::Error) -> ToolError {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ToolError::NotFound(format!("`{path}` does not exist")),
        K::PermissionDenied => ToolError::PermissionDenied(format!("`{path}` may not be read")),
        K::IsADirectory => ToolError::IsDirectory(format!("`{path}` is a directory")),
        _ => ToolError::Other(format!("`{path}`: {e}")),
    }
}

export!(JsonQuery);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_walks_objects_and_lists() {
        let doc = serde_json::json!({ "a": { "b": [10, 20] } });
        assert_eq!(query(&doc, ""), Ok(&doc));
        assert_eq!(query(&doc, "a.b.1"), Ok(&serde_json::json!(20)));
        assert_eq!(query(&doc, "a.b.-1"), Ok(&serde_json::json!(20)));
        for missing in ["x", "a.c", "a.b.2"] {
            assert!(query(&doc, missing).is_err(), "{missing}");
        }
    }
}
