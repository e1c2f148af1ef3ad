//! Calling a tool in a session.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::error::{ApiError, write_failure};
use super::extract::{blocking, json_body, path_params};
use crate::App;

/// Calls a tool in the session: read-only tools share the session, others hold it alone. A
/// write tool that failed for space answers `quota_exceeded`.
pub(super) async fn call_tool(
    State(app): State<Arc<App>>,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (id, name) = path_params(params)?;
    let session = app.sessions.get(&id)?;
    let read_only = app
        .runtime
        .tool(&name)
        .map(|t| t.read_only)
        .ok_or_else(|| ApiError::from(hearth_runtime::CallError::UnknownTool(name.clone())))?;
    let args: Value = json_body(body)?;
    let started = Instant::now();
    let guard = session.lock(!read_only).await?;
    let runtime = app.runtime.clone();
    let session2 = session.clone();
    let tool = name.clone();
    let outcome = blocking(move || {
        let _guard = guard;
        runtime.call(&session2.view, &tool, &args)
    })
    .await?
    .map_err(|e| match read_only {
        true => ApiError::from(e),
        false => write_failure(e, session.usage()),
    });
    session.count_tool_call();
    let code = outcome.as_ref().err().map(|e| e.code).unwrap_or("ok");
    app.metrics.record_tool_call(&name, code, started.elapsed());
    Ok(Json(json!({ "result": outcome? })))
}
