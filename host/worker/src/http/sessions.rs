//! Sessions: create (with the session's own token), list, info, delete, replace the token.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, write_failure};
use super::extract::{blocking, json_body, path_params, query_params};
use crate::App;
use crate::sessions::Session;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateSession {
    id: Option<String>,
    from_snapshot: Option<String>,
    /// Clone this remote into the workspace; without it, an empty repository.
    git: Option<crate::git::GitSource>,
    /// This session's limits, within the worker's maximum; without it, the worker's default.
    quota: Option<crate::storage::QuotaRequest>,
}

pub(super) async fn create_session(
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
pub(super) async fn replace_token(
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

pub(super) async fn list_sessions(State(app): State<Arc<App>>) -> Json<Value> {
    let sessions: Vec<Value> = app
        .sessions
        .list()
        .iter()
        .map(|s| session_json(&app, s))
        .collect();
    Json(json!({ "sessions": sessions }))
}

pub(super) async fn session_info(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    Ok(Json(session_json(&app, &session)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteQuery {
    /// Take a last snapshot first (default: the worker's `snapshots.snapshot_on_delete`).
    snapshot: Option<bool>,
}

/// Snapshots a delete with `snapshot` takes before giving up on a session that keeps changing.
const LAST_SNAPSHOT_TRIES: usize = 3;

pub(super) async fn delete_session(
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
