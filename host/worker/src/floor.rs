//! The floor of the benchmarks (issue 19): a tool's work done natively in the worker's own
//! process, behind the same HTTP route, so a benchmark can print Hearth / floor in one run.
//!
//! Compiled only with the `bench-floor` feature, which no normal build has (`cargo bench -p
//! hearth --features bench-floor --bench floor` turns it on for the benchmark's own binary),
//! and then used only by a worker started with `HEARTH_BENCH_FLOOR=1`. Everything around the
//! call stays Hearth's: routing, auth, the session lock, metrics, the answer's JSON. What the
//! floor leaves out is exactly what a tool costs on top of the work: instantiating the
//! component, checking the arguments against its schema, the host crossings of each file
//! operation and the guest's JSON.
//!
//! The work is done the way the host does its own file work (`hearth_content::Tree`: opened
//! beneath the mount, never following a link), so the floor is not faster for being unsafe.

use std::path::Path;
use std::sync::OnceLock;

use hearth_content::{ContentError, Tree};
use hearth_runtime::{CallError, SessionView, ToolErrorKind};
use serde_json::{Value, json};

/// Whether this worker serves the floor (read once: `HEARTH_BENCH_FLOOR=1`).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("HEARTH_BENCH_FLOOR").is_some_and(|v| v == "1"))
}

/// The floor's answer for tool `name`, or `None` when it has no floor for that tool (the
/// component runs as always).
pub fn call(view: &SessionView, name: &str, args: &Value) -> Option<Result<Value, CallError>> {
    match name {
        "write_file" => Some(write_file(view, args)),
        _ => None,
    }
}

/// `write_file`'s work: the file replaced atomically (a new file and a rename), its missing
/// parents made, with `write_file`'s answer.
fn write_file(view: &SessionView, args: &Value) -> Result<Value, CallError> {
    let (Some(path), Some(content)) = (args["file_path"].as_str(), args["content"].as_str()) else {
        return Err(refused(
            ToolErrorKind::InvalidInput,
            "file_path and content",
        ));
    };
    let resolved = view
        .resolve(path)
        .map_err(|e| refused(ToolErrorKind::InvalidPath, &e.to_string()))?;
    if !resolved.mount.writable || resolved.relative.is_empty() {
        return Err(refused(ToolErrorKind::PermissionDenied, path));
    }
    let tree = Tree::open(&resolved.mount.host_path).map_err(failed)?;
    let created = tree
        .write_file(Path::new(&resolved.relative), content.as_bytes(), 0o644)
        .map_err(failed)?;
    Ok(json!({
        "path": resolved.view_path,
        "bytes_written": content.len(),
        "created": created,
    }))
}

fn refused(kind: ToolErrorKind, message: &str) -> CallError {
    CallError::Tool {
        kind,
        message: message.to_owned(),
    }
}

fn failed(e: ContentError) -> CallError {
    refused(ToolErrorKind::Other, &e.to_string())
}
