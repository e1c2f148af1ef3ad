//! Running programs: `exec` and its NDJSON stream.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{blocking, json_body, path_params};
use crate::App;
use crate::sessions::Session;

/// What both exec routes do first: the session, exec's availability, the request, the job,
/// and the session held exclusively (a program may write anywhere in it).
async fn prepare_exec(
    app: &App,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<
    (
        Arc<Session>,
        crate::exec::PreparedJob,
        crate::sessions::SessionGuard,
    ),
    ApiError,
> {
    let session = app.sessions.get(&path_params(id)?)?;
    if let Some(why) = &app.exec.unavailable {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "exec_unavailable",
            why.clone(),
        ));
    }
    let request: crate::exec::ExecRequest = json_body(body)?;
    let prepared = app
        .exec
        .job(&session, request)
        .map_err(|m| ApiError::bad_request("invalid_exec", m))?;
    let guard = session.lock(true).await?;
    let repaired = session.clone();
    blocking(move || repaired.repair_for_run())
        .await?
        .map_err(|e| {
            ApiError::new(
                StatusCode::CONFLICT,
                "workspace_unusable",
                format!(
                    "the session's directories cannot be prepared for a run ({e}); delete what \
                     is in the way of /workspace or its read-only areas"
                ),
            )
        })?;
    Ok((session, prepared, guard))
}

/// Runs a program in the session's jail. A program that fails, times out or is killed is still
/// a 200: the answer says what happened. Exec holds the session exclusively while it runs.
pub(super) async fn exec(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (session, prepared, guard) = prepare_exec(&app, id, body).await?;
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
            return Err(ApiError::new(StatusCode::CONFLICT, "jail_refused", why));
        }
        Ok(Json(crate::exec::finish(
            &app2, &session, &prepared, &outcome,
        )))
    })
    .await?
}

/// How long the last line of a streamed run waits for a client that stopped reading.
const FINAL_LINE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Like `exec`, answering with NDJSON as the program runs: `{"stream": "stdout"|"stderr",
/// "data": "…"}` lines, then one `{"event": "exit", …}` line with what `exec` answers.
pub(super) async fn exec_stream(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (session, prepared, guard) = prepare_exec(&app, id, body).await?;
    let (lines, mut receiver) = crate::stream::Chunks::channel(crate::exec::STREAM_LINES);
    // Output waits for a slow client until the run's wall time is over, at most.
    let run_ends = std::time::Instant::now() + prepared.job.limits.wall;
    let sink = crate::exec::ndjson_sink(lines.clone(), run_ends);
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        let last = match app2
            .exec
            .runner()
            .map(|r| r.run_streaming(&prepared.job, Some(sink)))
        {
            Some(Ok(outcome)) if outcome.jail_error.is_some() => {
                let why = outcome.jail_error.unwrap_or_default();
                json!({ "event": "error", "error": { "code": "jail_refused", "message": why } })
            }
            Some(Ok(outcome)) => {
                let mut answer = crate::exec::finish(&app2, &session, &prepared, &outcome);
                answer["event"] = "exit".into();
                answer
            }
            Some(Err(e)) => {
                json!({ "event": "error", "error": { "code": "internal_error", "message": e.to_string() } })
            }
            None => {
                json!({ "event": "error", "error": { "code": "exec_unavailable", "message": "exec is unavailable" } })
            }
        };
        // The session is free once the run (and its commit) is done, whatever the client does.
        drop(guard);
        let last = Bytes::from(format!("{last}\n"));
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
