//! The HTTP API (v1): routes, handlers and the middleware around them. `docs/openapi.json`
//! documents exactly these routes; a test fails when the two drift.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::App;
use crate::error::{ApiError, ErrorCode, write_failure};
use crate::files::{self, FileError};
use crate::git;
use crate::sessions::Session;
use crate::snapshots;

/// The OpenAPI document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Most files one bulk upload or download may name.
pub const MAX_BULK_FILES: usize = 1_000;

/// The router with every route and middleware.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.config.max_body_bytes;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/tools", get(list_tools))
        .route("/v1/sessions", get(list_sessions).post(create_session))
        .route(
            "/v1/sessions/{id}",
            get(session_info).delete(delete_session),
        )
        .route("/v1/sessions/{id}/token", post(replace_token))
        .route("/v1/sessions/{id}/tools/{name}", post(call_tool))
        .route(
            "/v1/sessions/{id}/files/{*path}",
            get(get_file).put(put_file),
        )
        .route("/v1/sessions/{id}/exec", post(exec))
        .route("/v1/sessions/{id}/exec/stream", post(exec_stream))
        .route("/v1/sessions/{id}/upload", post(upload))
        .route("/v1/sessions/{id}/download", post(download))
        .route(
            "/v1/sessions/{id}/snapshots",
            get(snapshots::list).post(snapshots::take),
        )
        .route(
            "/v1/sessions/{id}/export",
            get(snapshots::export_download).post(snapshots::export_to_store),
        )
        .route("/v1/sessions/{id}/exports", get(snapshots::list_exports))
        .route(
            "/v1/sessions/{id}/exports/{name}",
            get(snapshots::download_export),
        )
        .route("/v1/snapshots/gc", post(snapshots::collect_garbage))
        .route("/v1/sessions/{id}/git/status", get(git::status))
        .route("/v1/sessions/{id}/git/log", get(git::log))
        .route("/v1/sessions/{id}/git/diff", get(git::diff))
        .route("/v1/sessions/{id}/git/commit", post(git::commit))
        .route("/v1/sessions/{id}/git/push", post(git::push))
        .route("/v1/sessions/{id}/git/pull", post(git::pull))
        .route(
            "/v1/sessions/{id}/git/merge/continue",
            post(git::merge_continue),
        )
        .route("/v1/sessions/{id}/git/merge/abort", post(git::merge_abort))
        .route("/v1/sessions/{id}/git/reset", post(git::reset))
        .route("/v1/sessions/{id}/git/remotes", post(git::set_remote))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                "no such route; see /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), read_whole_body))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------------
// Middleware

/// Gives every request an id (`x-request-id`, taken from the request or made up), a tracing
/// span, a log line, and its place in the metrics.
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128 && !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{:x}-{}",
                app.started_nonce,
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            )
        });
    // Only standard methods become label values: an extension method per request must not
    // grow the metrics without bound.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", id = %id, %method, %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    span.in_scope(|| match code {
        Some(code) if status >= 500 => tracing::warn!(status, code, ?elapsed, "answered"),
        Some(code) => tracing::info!(status, code, ?elapsed, "answered"),
        None => tracing::info!(status, ?elapsed, "answered"),
    });
    app.metrics
        .record_request(&method, &route, status, elapsed, code);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Every route but `/v1/health` needs the bearer token, when one is configured. The comparison
/// takes the same time wherever the first differing byte is.
async fn authenticate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/v1/health" {
        return next.run(request).await;
    }
    let Some(token) = &app.config.token else {
        return admit(&app, "local", request, next).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    // Clients that cannot set Authorization (some MCP and webhook clients) use the API-key
    // header instead.
    let api_key = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let presented = bearer.or(api_key).unwrap_or("");
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return admit(&app, "operator", request, next).await;
    }
    let session = (!presented.is_empty())
        .then(|| app.sessions.opened_by(&crate::tokens::hash(presented)))
        .flatten();
    let mut refused = match session {
        Some(id) if crate::tokens::opens(&id, request.uri().path()) => {
            return admit(&app, &format!("session:{id}"), request, next).await;
        }
        Some(id) => ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope",
            format!("this token opens session `{id}`'s routes only"),
        ),
        None => ApiError::unauthorized(),
    }
    .into_response();
    // The body is not read: the connection cannot carry another request, and says so, or a
    // pooled client would send its next request on a connection about to close.
    if has_body(&request) {
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    refused
}

/// Runs an authenticated request if `caller`'s rate allows it; 429 `rate_limited` with
/// `Retry-After` if not (see `rate`).
async fn admit(app: &App, caller: &str, request: Request, next: Next) -> Response {
    let Err(wait) = app.rate.admit(caller) else {
        return next.run(request).await;
    };
    let message = format!(
        "more than {} requests per second (burst {}) with this token; retry in {} ms",
        app.config.http.rate_per_s,
        app.config.http.rate_burst,
        wait.as_millis().max(1)
    );
    let mut refused =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    refused
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    if has_body(&request) {
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    refused
}

/// Reads an admitted request's whole body, within the body limit, before its handler runs. A
/// handler that has no use for a body (a snapshot, a delete, a status) would leave it unread, and
/// hyper closes a connection whose request body was not read — after the answer, without
/// `Connection: close` — so a pooled client that sent the body in a second packet met a reset
/// connection on its next request. Handlers that take a body get the same bytes, uncopied.
async fn read_whole_body(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, app.config.max_body_bytes).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
            let mut refused = match too_large {
                true => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the request body is over {} bytes",
                        app.config.max_body_bytes
                    ),
                ),
                false => ApiError::bad_request("invalid_body", format!("reading the body: {e}")),
            }
            .into_response();
            // What is left of the body is not read: the connection cannot carry another request.
            refused.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            refused
        }
    }
}

/// The header that carries the token where `Authorization: Bearer` cannot.
const API_KEY_HEADER: &str = "x-api-key";

/// Whether a request comes with a body still to be read.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Equal-length comparison without early exit; lengths are not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Request helpers

pub(crate) fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body_bytes(body)?;
    // No body is no arguments; a body of only whitespace is not JSON, and says so.
    let bytes = if bytes.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "invalid_json"
        } else {
            "invalid_request"
        };
        ApiError::bad_request(code, format!("request body: {e}"))
    })
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                rejection.body_text(),
            )
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
        }
    })
}

pub(crate) fn path_params<T>(params: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    params
        .map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
}

pub(crate) fn query_params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

fn session_json(app: &App, session: &Session) -> Value {
    let mounts: Vec<Value> = session
        .view
        .mounts()
        .iter()
        .map(|m| json!({ "path": m.view_path, "writable": m.writable }))
        .collect();
    json!({
        "id": session.id,
        "created_at": session.created_at(),
        "mounts": mounts,
        "tool_calls": session.tool_calls(),
        "quota": session.usage().as_ref().map(crate::storage::usage_json),
        "snapshot": app.snapshots.status_json(session),
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    let mut jail = serde_json::Map::new();
    jail.insert("wasm_tools".into(), "enforced".into());
    match &app.exec.unavailable {
        Some(why) => {
            jail.insert("exec".into(), format!("unavailable: {why}").into());
        }
        None => {
            for (layer, state) in &app.exec.layers {
                jail.insert(layer.clone(), state.clone().into());
            }
        }
    }
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "tools": app.runtime.tools().count(),
        "sessions": app.sessions.len(),
        "jail": jail,
    }))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(app.sessions.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn list_tools(State(app): State<Arc<App>>) -> Json<Value> {
    let tools: Vec<Value> = app
        .runtime
        .tools()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "input_schema": t.input_schema,
                "read_only": t.read_only,
            })
        })
        .collect();
    Json(Value::Array(tools))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    id: Option<String>,
    from_snapshot: Option<String>,
    /// Clone this remote into the workspace; without it, an empty repository.
    git: Option<git::GitSource>,
    /// This session's limits, within the worker's maximum; without it, the worker's default.
    quota: Option<crate::storage::QuotaRequest>,
}

async fn create_session(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateSession = json_body(body)?;
    if request.from_snapshot.is_some() && request.git.is_some() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "give `from_snapshot` or `git`, not both (a snapshot holds the git history)",
        ));
    }
    let quota = app.sessions.storage().quota_for(request.quota)?;
    let (token, token_sha256) = crate::tokens::mint();
    let app2 = app.clone();
    let session = blocking(move || {
        let (source, snapshot) = (request.git, request.from_snapshot);
        app2.sessions.create(
            request.id,
            quota,
            token_sha256,
            |work_tree, git_dir, state_dir| {
                // A restore or clone larger than the quota fills the new volume.
                let usage = || quota.and_then(|_| hearth_volume::Usage::of(work_tree).ok());
                match &snapshot {
                    Some(reference) => tokio::runtime::Handle::current()
                        .block_on(
                            app2.snapshots
                                .restore(reference, work_tree, git_dir, state_dir),
                        )
                        .map_err(|e| write_failure(e, usage())),
                    None => app2
                        .git
                        .create(work_tree, git_dir, source.as_ref())
                        .map_err(|e| write_failure(e, usage())),
                }
            },
        )
    })
    .await??;
    tracing::info!(session = %session.id, "session created");
    let mut answer = session_json(&app, &session);
    // Said once, here: the worker keeps only its hash.
    answer["token"] = token.into();
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Gives a session a new token and revokes the one it had (the operator's verb: a session
/// token cannot mint another).
async fn replace_token(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_params(id)?;
    let (token, token_sha256) = crate::tokens::mint();
    let app2 = app.clone();
    let id2 = id.clone();
    blocking(move || app2.sessions.replace_token(&id2, token_sha256)).await??;
    tracing::info!(session = %id, "session token replaced");
    Ok(Json(json!({ "id": id, "token": token })))
}

async fn list_sessions(State(app): State<Arc<App>>) -> Json<Value> {
    let sessions: Vec<Value> = app
        .sessions
        .list()
        .iter()
        .map(|s| session_json(&app, s))
        .collect();
    Json(json!({ "sessions": sessions }))
}

async fn session_info(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    Ok(Json(session_json(&app, &session)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Take a last snapshot first (default: the worker's `snapshots.snapshot_on_delete`).
    snapshot: Option<bool>,
}

/// Snapshots a delete with `snapshot` takes before giving up on a session that keeps changing.
const LAST_SNAPSHOT_TRIES: usize = 3;

async fn delete_session(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_params(id)?;
    let query = query_params(query)?;
    if !query
        .snapshot
        .unwrap_or(app.config.snapshots.snapshot_on_delete)
    {
        app.sessions.delete(&id).await?;
        tracing::info!(session = %id, "session deleted");
        return Ok(Json(json!({ "id": id, "deleted": true, "snapshot": null })));
    }
    // If the store fails, the session stays: deleting it would lose what is not stored. A
    // change made while the last snapshot was taken is not lost either: the session goes only
    // if the snapshot holds everything.
    for _ in 0..LAST_SNAPSHOT_TRIES {
        let session = app.sessions.get(&id)?;
        let last = app.snapshots.take(&session).await?;
        let seen = session.snapshots.snapshotted_changes();
        if app.sessions.delete_if_unchanged(&id, seen).await? {
            tracing::info!(session = %id, snapshot = %last.id, "session deleted");
            return Ok(Json(json!({ "id": id, "deleted": true, "snapshot": last })));
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "session_busy",
        "the session kept changing while its last snapshot was taken; it is kept: try again",
    ))
}

async fn call_tool(
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

/// Runs a program in the session's jail. A program that fails, times out or is killed is still
/// a 200: the answer says what happened. Exec holds the session exclusively while it runs.
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

async fn exec(
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
async fn exec_stream(
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

/// `files/{*path}` carries a view path without its leading `/`.
fn view_path(path: &str) -> String {
    format!("/{path}")
}

async fn get_file(
    State(app): State<Arc<App>>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (id, path) = path_params(params)?;
    let session = app.sessions.get(&id)?;
    let guard = session.lock(false).await?;
    let max = app.config.max_file_bytes;
    let path = view_path(&path);
    let bytes = blocking(move || {
        let _guard = guard;
        files::read(&session.view, &path, max)
    })
    .await?
    .map_err(file_error)?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(bytes),
    )
        .into_response())
}

async fn put_file(
    State(app): State<Arc<App>>,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, path) = path_params(params)?;
    let session = app.sessions.get(&id)?;
    let bytes = body_bytes(body)?;
    let guard = session.lock(true).await?;
    let path = view_path(&path);
    let size = bytes.len();
    let answer_path = path.clone();
    let session2 = session.clone();
    let created = blocking(move || {
        let _guard = guard;
        files::write(&session2.view, &path, &bytes)
    })
    .await?
    .map_err(|e| file_error(e).or_quota(&session))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "path": answer_path, "size": size, "created": created })),
    ))
}

fn file_error(e: FileError) -> ApiError {
    use crate::files::FileErrorKind as K;
    let status = match e.kind {
        K::NotFound => StatusCode::NOT_FOUND,
        K::PermissionDenied => StatusCode::FORBIDDEN,
        K::IsDirectory => StatusCode::UNPROCESSABLE_ENTITY,
        K::InvalidPath => StatusCode::BAD_REQUEST,
        K::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        K::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        K::Io => return ApiError::internal(e),
    };
    ApiError::new(status, e.kind.code(), e.message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadRequest {
    files: Vec<UploadFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadFile {
    path: String,
    /// Base64.
    content: String,
}

/// deepagents' `upload_files`: every file gets its own outcome, in order; one bad file does not
/// fail the others.
async fn upload(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    let request: UploadRequest = json_body(body)?;
    check_bulk_len(request.files.len())?;
    let guard = session.lock(true).await?;
    let results = blocking(move || {
        let _guard = guard;
        request
            .files
            .iter()
            .map(|file| {
                let outcome = base64::engine::general_purpose::STANDARD
                    .decode(&file.content)
                    .map_err(|e| format!("invalid_base64: {e}"))
                    .and_then(|bytes| {
                        files::write(&session.view, &file.path, &bytes)
                            .map_err(|e| file_error(e).or_quota(&session).code.to_owned())
                    });
                json!({ "path": file.path, "error": outcome.err() })
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "files": results })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadRequest {
    paths: Vec<String>,
}

/// deepagents' `download_files`: base64 contents or an error per path, in order.
async fn download(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    let request: DownloadRequest = json_body(body)?;
    check_bulk_len(request.paths.len())?;
    let guard = session.lock(false).await?;
    let max = app.config.max_file_bytes;
    let budget = app.config.max_body_bytes as u64;
    let results = blocking(move || {
        let _guard = guard;
        let mut total = 0u64;
        request
            .paths
            .iter()
            .map(|path| {
                match files::read(&session.view, path, max.min(budget.saturating_sub(total))) {
                    Ok(bytes) => {
                        total += bytes.len() as u64;
                        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
                        json!({ "path": path, "content": content, "error": null })
                    }
                    Err(e) => json!({ "path": path, "content": null, "error": e.kind.code() }),
                }
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "files": results })))
}

fn check_bulk_len(n: usize) -> Result<(), ApiError> {
    if n > MAX_BULK_FILES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_files",
            format!("{n} files in one request; the limit is {MAX_BULK_FILES}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
