//! Running programs: `exec` (in the foreground, or started in the background), and its NDJSON
//! stream. A run holds no session lock while it runs (see `docs/concurrency.md`): tools, the
//! files API and other runs go on beside it, as they would beside a shell.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_python_runner::Outcome;
use hearth_wire::exec::{ExecRequest, ExecResult, RunEnd, StreamLine};
use hearth_wire::processes::ProcessInfo;
use hearth_wire::{ErrorCode, ErrorInfo};

use super::docs::SessionId;
use super::error::ApiError;
use super::extract::{JsonBody, SessionParam, blocking};
use crate::app::App;
use crate::exec::{PreparedJob, ndjson_line};
use crate::processes::ProcessLimits;
use crate::sessions::{RunTicket, Session};

/// What every run does first: exec's availability, the job, the session's directories made
/// ready for a run (under its writer lock, only for that), its network, and the run's ticket
/// (the session changes from now until the ticket drops).
async fn prepare_exec(
    app: &Arc<App>,
    session: &Arc<Session>,
    request: ExecRequest,
) -> Result<(PreparedJob, RunTicket), ApiError> {
    if let Some(why) = &app.exec.unavailable {
        return Err(ApiError::new(ErrorCode::ExecUnavailable, why.clone()));
    }
    let mut prepared = app
        .exec
        .job(session, request)
        .map_err(|e| ApiError::new(ErrorCode::InvalidExec, e.to_string()))?;
    let guard = session.lock(true).await?;
    let repaired = session.clone();
    blocking(move || {
        let _guard = guard;
        repaired.repair_for_run()
    })
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
    let ticket = session.begin_run()?;
    let (app2, session2) = (app.clone(), session.clone());
    let network = blocking(move || {
        session2.network(|path| {
            let policy = app2
                .config
                .egress
                .session_policy(session2.egress.as_deref())
                .unwrap_or_else(|why| {
                    // The operator narrowed the list since the session asked: it gets none.
                    tracing::warn!(session = %session2.id, %why, "the session's egress is no longer allowed");
                    hearth_egress::EgressPolicy::default()
                });
            let shared = app2.proxied_connections.clone();
            crate::network::SessionNetwork::open(path, &session2.id, policy, shared)
        })
    })
    .await?;
    match network {
        Ok(network) => prepared.join_network(&network),
        // The run still runs, in a namespace of its own as before sessions had one.
        Err(e) => {
            tracing::error!(session = %session.id, error = %e, "the session's network could not be made")
        }
    }
    Ok((prepared, ticket))
}

/// Run a program in the session's jail.
///
/// A shell `command` (deepagents' `execute`), an `argv`, a Python `script` with `args`, or a
/// `call` of `module:function` with JSON `kwargs` whose JSON return value comes back as
/// `result`. The program sees the same view as the tools (`/workspace` as working directory,
/// `/tmp`, read-only areas), the session's own network (its runs reach each other on loopback;
/// beyond it only through the egress proxy, when the session has one), no host processes, a
/// scrubbed environment, and the worker's limits. A program that fails, times out or is killed
/// is still a 200; the answer says what happened. With `background`, the answer is the
/// started process (202). A run holds no lock on the session: tools, files and other runs go
/// on meanwhile.
#[utoipa::path(post, path = "/v1/sessions/{id}/exec", tag = "exec", params(SessionId),
    request_body = ExecRequest,
    responses(
        (status = 200, description = "What the run did.", body = ExecResult),
        (status = 202, description = "The background process, started.", body = ProcessInfo)),
    extensions(("x-errors" = json!([
        ErrorCode::ExecUnavailable, ErrorCode::InvalidExec, ErrorCode::WorkspaceUnusable,
        ErrorCode::JailRefused, ErrorCode::StorageFull, ErrorCode::ProcessLimit
    ]))))]
pub(super) async fn exec(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<ExecRequest>,
) -> Result<Response, ApiError> {
    if request.background {
        let process = start_background(&app, session, request).await?;
        return Ok((StatusCode::ACCEPTED, Json(process)).into_response());
    }
    run(&app, session, request)
        .await
        .map(|answer| Json(answer).into_response())
}

/// Starts `request` as a background process of `session`.
async fn start_background(
    app: &Arc<App>,
    session: Arc<Session>,
    request: ExecRequest,
) -> Result<ProcessInfo, ApiError> {
    let keep_output = request.keep_output.unwrap_or_default();
    let (prepared, ticket) = prepare_exec(app, &session, request).await?;
    let config = &app.config.exec;
    let limits = ProcessLimits {
        session_max: config.max_background,
        worker_max: config.max_background_total,
        output_bytes: config.background_output_bytes,
        keep_output,
    };
    let app2 = app.clone();
    let process = blocking(move || {
        let runner = app2
            .exec
            .runner()
            .ok_or_else(|| ApiError::internal("exec is unavailable"))?;
        let started = session.processes.start_background(
            limits,
            prepared.summary.clone(),
            |sink| {
                runner
                    .start(&prepared.job, Some(sink))
                    .map_err(|e| e.to_string())
            },
            // The session changes until the process ends.
            move |_| drop(ticket),
        );
        started.map_err(ApiError::from)
    })
    .await??;
    tracing::info!(process = %process.id, command = %process.info().command, "background process started");
    Ok(process.info())
}

/// Runs `request` in `session`'s jail in the foreground: what `exec` and MCP's `execute` do.
pub(super) async fn run(
    app: &Arc<App>,
    session: Arc<Session>,
    request: ExecRequest,
) -> Result<ExecResult, ApiError> {
    let (prepared, ticket) = prepare_exec(app, &session, request).await?;
    let (app2, session2) = (app.clone(), session.clone());
    let (prepared, outcome) = blocking(move || {
        let outcome = run_registered(&app2, &session2, &prepared, None)?;
        Ok::<_, ApiError>((prepared, outcome))
    })
    .await??;
    drop(ticket);
    if let Some(why) = outcome.jail_error {
        // The probe proved the worker's jail; what fails now is this session's state.
        return Err(ApiError::new(ErrorCode::JailRefused, why));
    }
    let mut answer = crate::exec::answer(&session, &prepared, &outcome);
    if prepared.commit.is_some() {
        // The writer lock, for the commit only.
        let guard = session.lock(true).await?;
        let app2 = app.clone();
        answer = blocking(move || {
            let _guard = guard;
            crate::exec::commit(&app2.git, &session, &prepared, &outcome, &mut answer);
            answer
        })
        .await?;
    }
    Ok(answer)
}

/// Starts a foreground run, registered with its session (whose end ends it), and waits for it.
fn run_registered(
    app: &App,
    session: &Session,
    prepared: &PreparedJob,
    sink: Option<hearth_python_runner::OutputSink>,
) -> Result<Outcome, ApiError> {
    let runner = app
        .exec
        .runner()
        .ok_or_else(|| ApiError::internal("exec is unavailable"))?;
    let running = runner
        .start(&prepared.job, sink)
        .map_err(ApiError::internal)?;
    let registered = session.processes.foreground(running.control());
    let outcome = running.wait();
    if registered.is_none() {
        return Err(crate::sessions::SessionError::NotFound(session.id.clone()).into());
    }
    Ok(outcome)
}

/// How long the last line of a streamed run waits for a client that stopped reading.
const FINAL_LINE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Like `exec`, streaming NDJSON as the program runs.
///
/// `{"stream": "stdout"|"stderr", "data": "…"}` lines, then one `{"event": "exit", …}` line
/// with what `exec` answers (or `{"event": "error", "error": {…}}`). Not with `background`.
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
    if request.background {
        return Err(ApiError::new(
            ErrorCode::InvalidExec,
            "`background` is for `exec`: a background process's output is read from its cursor",
        ));
    }
    let (prepared, ticket) = prepare_exec(&app, &session, request).await?;
    let (lines, mut receiver) = crate::stream::Chunks::channel(crate::exec::STREAM_LINES);
    // Output waits for a slow client until the run's wall time is over, at most.
    let run_ends = std::time::Instant::now() + prepared.job.limits.wall;
    let sink = crate::exec::ndjson_sink(lines.clone(), run_ends);
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        let last = match run_registered(&app2, &session, &prepared, Some(sink)) {
            Ok(outcome) => {
                drop(ticket);
                stream_end(&app2, &session, &prepared, &outcome)
            }
            Err(e) => {
                tracing::error!(code = e.code.as_str(), message = %e.message, "a streamed run failed");
                RunEnd::Error { error: e.info() }
            }
        };
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

/// The last line of a streamed run that ran: its answer, with the commit it asked for (made
/// under the session's writer lock, waited for from this blocking thread).
fn stream_end(
    app: &App,
    session: &Arc<Session>,
    prepared: &PreparedJob,
    outcome: &Outcome,
) -> RunEnd {
    if let Some(why) = &outcome.jail_error {
        return RunEnd::Error {
            error: ErrorInfo {
                code: ErrorCode::JailRefused,
                message: why.clone(),
                details: None,
            },
        };
    }
    let mut answer = crate::exec::answer(session, prepared, outcome);
    if prepared.commit.is_some() {
        match tokio::runtime::Handle::current().block_on(session.lock(true)) {
            Ok(_guard) => crate::exec::commit(&app.git, session, prepared, outcome, &mut answer),
            Err(e) => {
                return RunEnd::Error {
                    error: ApiError::from(e).info(),
                };
            }
        }
    }
    RunEnd::Exit(Box::new(answer))
}
