//! Calling a tool in a session.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use hearth_wire::ErrorCode;
use hearth_wire::tools::ToolAnswer;
use serde_json::Value;

use super::docs::{SessionId, ToolName};
use super::error::{ApiError, write_failure};
use super::extract::{Access, JsonBody, PathParams, SessionParam, with_session};
use crate::app::App;

/// Call a tool.
///
/// The body is the tool's arguments, checked against its `input_schema` before it runs.
/// Read-only tools share the session; others hold it alone. A write that failed for space
/// answers `quota_exceeded`.
#[utoipa::path(post, path = "/v1/sessions/{id}/tools/{name}", tag = "tools",
    params(SessionId, ToolName),
    request_body(content = serde_json::Value, description = "The tool's arguments."),
    responses((status = 200, description = "What the tool returned.", body = ToolAnswer)),
    extensions(("x-errors" = json!([
        ErrorCode::UnknownTool, ErrorCode::InvalidArguments, ErrorCode::InvalidInput,
        ErrorCode::InvalidPath, ErrorCode::FileNotFound, ErrorCode::PermissionDenied,
        ErrorCode::IsDirectory, ErrorCode::Conflict, ErrorCode::TooLarge, ErrorCode::ToolError,
        ErrorCode::DeadlineExceeded, ErrorCode::MemoryExceeded, ErrorCode::ToolCrashed,
        ErrorCode::ResultTooLarge, ErrorCode::InvalidResult, ErrorCode::StorageFull,
        ErrorCode::QuotaExceeded
    ]))))]
pub(super) async fn call_tool(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    PathParams((_, name)): PathParams<(String, String)>,
    JsonBody(args): JsonBody<Value>,
) -> Result<Json<ToolAnswer>, ApiError> {
    let read_only = app
        .runtime
        .tool(&name)
        .map(|t| t.read_only)
        .ok_or_else(|| ApiError::from(hearth_runtime::CallError::UnknownTool(name.clone())))?;
    let started = Instant::now();
    let access = match read_only {
        true => Access::Shared,
        false => Access::Exclusive,
    };
    let runtime = app.runtime.clone();
    let tool = name.clone();
    let outcome = with_session(&session, access, move |session| {
        runtime.call(&session.view, &tool, &args)
    })
    .await?
    .map_err(|e| match read_only {
        true => ApiError::from(e),
        false => write_failure(e, session.usage()),
    });
    session.count_tool_call();
    let code = outcome.as_ref().err().map_or("ok", |e| e.code.as_str());
    app.metrics.record_tool_call(&name, code, started.elapsed());
    Ok(Json(ToolAnswer { result: outcome? }))
}
