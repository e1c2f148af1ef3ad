//! A session's background processes: list, state (waiting for the end), output from cursors
//! (a long poll), stdin, signals, and kill.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use hearth_wire::ErrorCode;
use hearth_wire::processes::{
    OutputQuery, ProcessInfo, ProcessList, ProcessOutput, SignalName, SignalOutcome, SignalRequest,
    StdinRequest, WaitQuery,
};
use nix::sys::signal::Signal;

use super::docs::SessionId;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams, QueryParams, SessionParam, blocking};
use crate::app::App;
use crate::processes::Process;

/// The longest any request here waits: well under the minute after which HTTP clients and
/// proxies commonly give up on an answer.
const MAX_WAIT_S: f64 = 30.0;
/// The most of each stream one read answers.
const MAX_READ_BYTES: u64 = 1024 * 1024;
/// How long a write to stdin waits for the program to read before it is answered.
const STDIN_WAIT: Duration = Duration::from_secs(10);

/// A process's id, in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProcessId {
    /// The process's id in its session (`p1`, …).
    #[param(pattern = r"^p[0-9]{1,19}$")]
    #[expect(dead_code, reason = "read by the document only")]
    process: String,
}

/// The process the route's `{process}` names in `session`.
fn process_of(
    session: &crate::sessions::Session,
    params: &HashMap<String, String>,
) -> Result<Arc<Process>, ApiError> {
    let id = params
        .get("process")
        .ok_or_else(|| ApiError::internal("a process route without `{process}`"))?;
    Ok(session.processes.get(id)?)
}

/// A wait asked for in seconds, within [0, MAX_WAIT_S].
fn wait_of(wait_s: Option<f64>) -> Result<Duration, ApiError> {
    match wait_s.unwrap_or(0.0) {
        s if (0.0..=MAX_WAIT_S).contains(&s) => Ok(Duration::from_secs_f64(s)),
        s => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`wait_s` must be in [0, {MAX_WAIT_S}], got {s}"),
        )),
    }
}

/// List the session's background processes.
///
/// Running and ended ones (the last 32 ended are kept), oldest first; after a worker restart,
/// those that were running are `lost`.
#[utoipa::path(get, path = "/v1/sessions/{id}/processes", tag = "processes",
    params(SessionId),
    responses((status = 200, description = "The session's processes.", body = ProcessList)))]
pub(super) async fn list_processes(SessionParam(session): SessionParam) -> Json<ProcessList> {
    Json(ProcessList {
        processes: session.processes.list().iter().map(|p| p.info()).collect(),
    })
}

/// A background process's state.
///
/// With `wait_s`, answers when it ends or when the wait is over, whichever comes first.
#[utoipa::path(get, path = "/v1/sessions/{id}/processes/{process}", tag = "processes",
    params(SessionId, ProcessId, WaitQuery),
    responses((status = 200, description = "The process.", body = ProcessInfo)),
    extensions(("x-errors" = json!([ErrorCode::ProcessNotFound]))))]
pub(super) async fn get_process(
    SessionParam(session): SessionParam,
    PathParams(params): PathParams<HashMap<String, String>>,
    QueryParams(query): QueryParams<WaitQuery>,
) -> Result<Json<ProcessInfo>, ApiError> {
    let process = process_of(&session, &params)?;
    process.wait(wait_of(query.wait_s)?).await;
    Ok(Json(process.info()))
}

/// Read a background process's output.
///
/// Each stream from its cursor (`next` of the previous read); a stream keeps its last bytes
/// (`exec.background_output_bytes`), or its first with `"keep_output": "first"`, so a reader
/// that comes back later loses nothing still kept, and `missed` says what it lost. With `wait_s`, a long poll: the answer comes as soon
/// as there is output past the cursors, or the end.
#[utoipa::path(get, path = "/v1/sessions/{id}/processes/{process}/output", tag = "processes",
    params(SessionId, ProcessId, OutputQuery),
    responses((status = 200, description = "What each stream holds from its cursor.",
        body = ProcessOutput)),
    extensions(("x-errors" = json!([ErrorCode::ProcessNotFound]))))]
pub(super) async fn read_output(
    SessionParam(session): SessionParam,
    PathParams(params): PathParams<HashMap<String, String>>,
    QueryParams(query): QueryParams<OutputQuery>,
) -> Result<Json<ProcessOutput>, ApiError> {
    let process = process_of(&session, &params)?;
    let max_bytes = query.max_bytes.unwrap_or(MAX_READ_BYTES);
    if !(4..=MAX_READ_BYTES).contains(&max_bytes) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`max_bytes` must be in [4, {MAX_READ_BYTES}], got {max_bytes}"),
        ));
    }
    let cursors = [query.stdout.unwrap_or(0), query.stderr.unwrap_or(0)];
    if cursors.iter().any(|&c| c > i64::MAX as u64) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "a cursor is a byte offset, at most 2^63 - 1",
        ));
    }
    let [stdout, stderr] = process
        .read(cursors, max_bytes as usize, wait_of(query.wait_s)?)
        .await;
    Ok(Json(ProcessOutput {
        stdout,
        stderr,
        process: process.info(),
    }))
}

/// Write to a background process's stdin.
///
/// The text goes as it is (add the `\n` a line needs); `close` closes stdin after it. A program
/// that does not read within 10 s leaves the write waiting: the answer is 409 `stdin_closed`,
/// and the next write waits for that one.
#[utoipa::path(post, path = "/v1/sessions/{id}/processes/{process}/stdin", tag = "processes",
    params(SessionId, ProcessId), request_body = StdinRequest,
    responses((status = 200, description = "Written.", body = ProcessInfo)),
    extensions(("x-errors" = json!([ErrorCode::ProcessNotFound, ErrorCode::StdinClosed]))))]
pub(super) async fn write_stdin(
    SessionParam(session): SessionParam,
    PathParams(params): PathParams<HashMap<String, String>>,
    JsonBody(request): JsonBody<StdinRequest>,
) -> Result<Json<ProcessInfo>, ApiError> {
    let process = process_of(&session, &params)?;
    let writer = process.clone();
    let write = blocking(move || writer.write_stdin(request.data.as_bytes(), request.close));
    match tokio::time::timeout(STDIN_WAIT, write).await {
        Ok(written) => written??,
        Err(_) => {
            return Err(ApiError::new(
                ErrorCode::StdinClosed,
                "the program has not read its stdin for 10 s; the write waits for it",
            ));
        }
    }
    Ok(Json(process.info()))
}

/// Send a background process a signal.
///
/// To the program's process group, whose handlers decide (`SIGTERM` to ask it to stop);
/// `SIGKILL` ends every process of the run.
#[utoipa::path(post, path = "/v1/sessions/{id}/processes/{process}/signal", tag = "processes",
    params(SessionId, ProcessId), request_body = SignalRequest,
    responses((status = 200, description = "Sent (or the process had ended).",
        body = SignalOutcome)),
    extensions(("x-errors" = json!([ErrorCode::ProcessNotFound]))))]
pub(super) async fn signal_process(
    SessionParam(session): SessionParam,
    PathParams(params): PathParams<HashMap<String, String>>,
    JsonBody(request): JsonBody<SignalRequest>,
) -> Result<Json<SignalOutcome>, ApiError> {
    let process = process_of(&session, &params)?;
    let delivered = process
        .signal(signal_of(request.signal))
        .map_err(ApiError::internal)?;
    Ok(Json(SignalOutcome {
        delivered,
        process: process.info(),
    }))
}

/// Kill a background process and forget it.
///
/// A running one gets `SIGKILL` (all its processes), and the answer comes once it ended: its
/// last state. Its output goes with it.
#[utoipa::path(delete, path = "/v1/sessions/{id}/processes/{process}", tag = "processes",
    params(SessionId, ProcessId),
    responses((status = 200, description = "The process as it ended.", body = ProcessInfo)),
    extensions(("x-errors" = json!([ErrorCode::ProcessNotFound]))))]
pub(super) async fn kill_process(
    State(_app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    PathParams(params): PathParams<HashMap<String, String>>,
) -> Result<Json<ProcessInfo>, ApiError> {
    let process = process_of(&session, &params)?;
    process
        .signal(Signal::SIGKILL)
        .map_err(ApiError::internal)?;
    process.wait(Duration::from_secs(10)).await;
    let info = process.info();
    let id = process.id.clone();
    blocking(move || session.processes.remove(&id)).await?;
    Ok(Json(info))
}

fn signal_of(name: SignalName) -> Signal {
    match name {
        SignalName::Sighup => Signal::SIGHUP,
        SignalName::Sigint => Signal::SIGINT,
        SignalName::Sigquit => Signal::SIGQUIT,
        SignalName::Sigterm => Signal::SIGTERM,
        SignalName::Sigusr1 => Signal::SIGUSR1,
        SignalName::Sigusr2 => Signal::SIGUSR2,
        SignalName::Sigcont => Signal::SIGCONT,
        SignalName::Sigwinch => Signal::SIGWINCH,
        SignalName::Sigalrm => Signal::SIGALRM,
        SignalName::Sigkill => Signal::SIGKILL,
    }
}
