//! Running programs: `exec` and its NDJSON stream.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hearth_wire::exec::{ExecRequest, ExecResult, RunEnd, StreamLine};
use hearth_wire::{ErrorCode, ErrorInfo};

use super::docs::SessionId;
use super::error::ApiError;
use super::extract::{JsonBody, SessionParam, blocking};
use crate::app::App;
use crate::exec::{PreparedJob, ndjson_line};
use crate::sessions::{Session, SessionGuard};

/// What both exec routes do first: exec's availability, the job, and the session held
/// exclusively (a program may write anywhere in it), its directories ready for a run.
async fn prepare_exec(
    app: &App,
    session: &Arc<Session>,
    request: ExecRequest,
) -> Result<(PreparedJob, SessionGuard), ApiError> {
    if let Some(why) = &app.exec.unavailable {
        return Err(ApiError::new(ErrorCode::ExecUnavailable, why.clone()));
    }
    let prepared = app
        .exec
        .job(session, request)
        .map_err(|e| ApiError::new(ErrorCode::InvalidExec, e.to_string()))?;
    let guard = session.lock(true).await?;
    let repaired = session.clone();
    blocking(move || repaired.repair_for_run())
        .await?
        .map_err(|e| {
            ApiError::new(
                ErrorCode::WorkspaceUnusable,
                format!(
                    "the session's directories cannot be prepared for a run ({e}); delete what \
                     is in the way of /workspace or its read-only areas"
                ),
            )
        })?;
    Ok((prepared, guard))
}

/// Run a program in the session's jail.
///
/// A shell `command` (deepagents' `execute`), an `argv`, a Python `script` with `args`, or a
/// `call` of `module:function` with JSON `kwargs` whose JSON return value comes back as
/// `result`. The program sees the same view as the tools (`/workspace` as working directory,
/// `/tmp`, read-only areas), no network, no host processes, a scrubbed environment, and the
/// worker's limits. A program that fails, times out or is killed is still a 200; the answer
/// says what happened. Exec holds the session exclusively while it runs.
#[utoipa::path(post, path = "/v1/sessions/{id}/exec", tag = "exec", params(SessionId),
    request_body = ExecRequest,
    responses((status = 200, description = "What the run did.", body = ExecResult)),
    extensions(("x-errors" = json!([
        ErrorCode::ExecUnavailable, ErrorCode::InvalidExec, ErrorCode::WorkspaceUnusable,
        ErrorCode::JailRefused, ErrorCode::StorageFull
    ]))))]
pub(super) async fn exec(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<ExecRequest>,
) -> Result<Json<ExecResult>, ApiError> {
    run(&app, session, request).await.map(Json)
}

/// Runs `request` in `session`'s jail: what `exec` and MCP's `execute` both do.
pub(super) async fn run(
    app: &Arc<App>,
    session: Arc<Session>,
    request: ExecRequest,
) -> Result<ExecResult, ApiError> {
    let (prepared, guard) = prepare_exec(app, &session, request).await?;
    let app2 = app.clone();
    blocking(move || {
        let _guard = guard;
        let runner = app2
            .exec
            .runner()
            .ok_or_else(|| ApiError::internal("exec is unavailable"))?;
        let outcome = runner.run(&prepared.job).map_err(ApiError::internal)?;
        if let Some(why) = outcome.jail_error {
            // The probe proved the worker's jail; what fails now is this session's state.
            return Err(ApiError::new(ErrorCode::JailRefused, why));
        }
        Ok(crate::exec::finish(
            &app2.git, &session, &prepared, &outcome,
        ))
    })
    .await?
}

/// How long the last line of a streamed run waits for a client that stopped reading.
const FINAL_LINE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Like `exec`, streaming NDJSON as the program runs.
///
/// `{"stream": "stdout"|"stderr", "data": "…"}` lines, then one `{"event": "exit", …}` line
/// with what `exec` answers (or `{"event": "error", "error": {…}}`).
#[utoipa::path(post, path = "/v1/sessions/{id}/exec/stream", tag = "exec", params(SessionId),
    request_body = ExecRequest,
    responses((status = 200, description = "NDJSON: one `StreamLine` per line.",
        content_type = "application/x-ndjson", body = StreamLine)),
    extensions(("x-errors" = json!([
        ErrorCode::ExecUnavailable, ErrorCode::InvalidExec, ErrorCode::WorkspaceUnusable,
        ErrorCode::StorageFull
    ]))))]
pub(super) async fn exec_stream(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<ExecRequest>,
) -> Result<Response, ApiError> {
    let (prepared, guard) = prepare_exec(&app, &session, request).await?;
    let (lines, mut receiver) = crate::stream::Chunks::channel(crate::exec::STREAM_LINES);
    // Output waits for a slow client until the run's wall time is over, at most.
    let run_ends = std::time::Instant::now() + prepared.job.limits.wall;
    let sink = crate::exec::ndjson_sink(lines.clone(), run_ends);
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        let error = |code: ErrorCode, message: String| RunEnd::Error {
            error: ErrorInfo {
                code,
                message,
                details: None,
            },
        };
        let last = match app2
            .exec
            .runner()
            .map(|r| r.run_streaming(&prepared.job, Some(sink)))
        {
            Some(Ok(outcome)) => match &outcome.jail_error {
                Some(why) => error(ErrorCode::JailRefused, why.clone()),
                None => RunEnd::Exit(Box::new(crate::exec::finish(
                    &app2.git, &session, &prepared, &outcome,
                ))),
            },
            Some(Err(e)) => {
                tracing::error!(error = %e, "a streamed run failed");
                error(
                    ErrorCode::InternalError,
                    "the worker failed to run the program; see its logs".to_owned(),
                )
            }
            None => error(ErrorCode::ExecUnavailable, "exec is unavailable".to_owned()),
        };
        // The session is free once the run (and its commit) is done, whatever the client does.
        drop(guard);
        let last: Bytes = ndjson_line(&StreamLine::End(last));
        lines.send_by(last, std::time::Instant::now() + FINAL_LINE_WAIT);
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|line| line.map(Ok::<_, std::convert::Infallible>))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
