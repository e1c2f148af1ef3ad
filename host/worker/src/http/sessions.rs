//! Sessions: create (with the session's own token), list, info, delete, replace the token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_wire::ErrorCode;
use hearth_wire::sessions::{
    CreateSession, CreatedSession, DeleteQuery, Deleted, Mount, SessionInfo, SessionList,
    SessionToken,
};

use super::docs::SessionId;
use super::error::{ApiError, write_failure};
use super::extract::{JsonBody, QueryParams, SessionParam, blocking};
use crate::app::App;
use crate::sessions::{Session, SessionError};

fn session_info(app: &App, session: &Session) -> SessionInfo {
    SessionInfo {
        id: session.id.clone(),
        created_at: session.created_at(),
        mounts: session
            .view
            .mounts()
            .iter()
            .map(|m| Mount {
                path: m.view_path.clone(),
                writable: m.writable,
            })
            .collect(),
        tool_calls: session.tool_calls(),
        quota: session.usage().as_ref().map(crate::storage::quota_usage),
        snapshot: app.snapshots.state(session),
        network: hearth_wire::sessions::SessionNetwork {
            allow: app
                .config
                .egress
                .session_policy(session.egress.as_deref())
                .map(|policy| policy.allow.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            proxy: session
                .existing_network()
                .and_then(|network| network.proxy_env().remove("HTTP_PROXY")),
            running_processes: session.processes.running(),
        },
        owner: hearth_wire::sessions::SessionOwner {
            worker: app.snapshots.worker.clone(),
            epoch: session.epoch(),
            url: app.config.fleet.advertise_url.clone(),
        },
    }
}

/// Create a session.
///
/// A workspace and a scratch directory on this worker, and its git repository: a clone of
/// `git.url`, a restore of `from_snapshot`, or an empty repository. The answer carries the
/// session's own token, said once.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body = CreateSession,
    responses((status = 201, description = "The new session and its token.",
        body = CreatedSession)),
    extensions(("x-errors" = json!([
        ErrorCode::InvalidSessionId, ErrorCode::SessionExists, ErrorCode::SessionLimit,
        ErrorCode::InvalidQuota, ErrorCode::StorageFull, ErrorCode::QuotaExceeded,
        ErrorCode::RemoteNotAllowed, ErrorCode::RemoteFailed, ErrorCode::RemoteBranchNotFound,
        ErrorCode::GitTimeout, ErrorCode::InvalidGitRequest,
        ErrorCode::InvalidSnapshotReference, ErrorCode::SnapshotNotFound,
        ErrorCode::SnapshotCorrupt, ErrorCode::StoreUnavailable, ErrorCode::TooDeep,
        ErrorCode::InvalidNetwork
    ]))))]
pub(super) async fn create_session(
    State(app): State<Arc<App>>,
    JsonBody(request): JsonBody<CreateSession>,
) -> Result<(StatusCode, Json<CreatedSession>), ApiError> {
    if request.from_snapshot.is_some() && request.git.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "give `from_snapshot` or `git`, not both (a snapshot holds the git history)",
        ));
    }
    let quota = app.sessions.storage().quota_for(request.quota)?;
    let egress = request.network.map(|network| network.allow);
    app.config
        .egress
        .session_policy(egress.as_deref())
        .map_err(|why| ApiError::new(ErrorCode::InvalidNetwork, why))?;
    let (token, token_sha256) = crate::tokens::mint();
    let terms = crate::fleet::Terms {
        token_sha256: Some(token_sha256.clone()),
        quota_bytes: quota.map(|q| q.bytes),
        quota_inodes: quota.map(|q| q.inodes),
        egress: egress.clone(),
    };
    let filled = request.git.is_some() || request.from_snapshot.is_some();
    let app2 = app.clone();
    let session = blocking(move || {
        let (source, snapshot) = (request.git, request.from_snapshot);
        app2.sessions.create(
            request.id,
            quota,
            egress,
            token_sha256,
            |id, work_tree, git_dir, state_dir| {
                let runtime = tokio::runtime::Handle::current();
                // Ownership first: from here on, what the session's previous owner (if any)
                // publishes can no longer become its latest, so the restore below holds the
                // last state anyone may publish before this worker.
                let epoch = match &app2.fleet {
                    None => runtime
                        .block_on(app2.snapshots.claim(id, Some(terms.to_value())))
                        .map_err(ApiError::from)?,
                    // In a fleet an id some worker serves is taken, unless this restores the
                    // session's own snapshot: moving it here on purpose.
                    Some(fleet) => {
                        let moving = snapshot
                            .as_deref()
                            .is_some_and(|reference| reference.split('/').next() == Some(id));
                        runtime
                            .block_on(fleet.claim_new(id, &terms, moving))
                            .map_err(ApiError::from)?
                            .ok_or_else(|| ApiError::from(SessionError::Exists(id.to_owned())))?
                    }
                };
                // A restore or clone larger than the quota fills the new volume.
                let usage = || quota.and_then(|_| hearth_volume::Usage::of(work_tree).ok());
                match &snapshot {
                    Some(reference) => runtime
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
                .map(|()| epoch)
            },
        )
    })
    .await??;
    tracing::info!(session = %session.id, "session created");
    if app.fleet.is_some() && filled {
        // What the create put there is work a crash must not lose either: a change, so the
        // background snapshot takes it.
        drop(session.lock(true).await?);
    }
    let answer = CreatedSession {
        session: session_info(&app, &session),
        // Said once, here: the worker keeps only its hash.
        token,
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Give the session a new token, revoking the one it had.
///
/// The operator's token only: a session token cannot mint another.
#[utoipa::path(post, path = "/v1/sessions/{id}/token", tag = "sessions",
    params(SessionId),
    responses((status = 200, description = "The session's new token.", body = SessionToken)))]
pub(super) async fn replace_token(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<Json<SessionToken>, ApiError> {
    let (token, token_sha256) = crate::tokens::mint();
    if let Some(fleet) = &app.fleet {
        // The store first: a takeover must not bring the revoked token back.
        let mut terms = app.sessions.terms(&session.id)?;
        terms.token_sha256 = Some(token_sha256.clone());
        match fleet
            .publish_terms(&session.id, session.epoch(), &terms)
            .await?
        {
            Some(epoch) => app.sessions.set_epoch(&session.id, epoch)?,
            None => return Err(moved_away(&app, &session).await),
        }
    }
    let (app2, id) = (app.clone(), session.id.clone());
    blocking(move || app2.sessions.replace_token(&id, token_sha256)).await??;
    tracing::info!(session = %session.id, "session token replaced");
    Ok(Json(SessionToken {
        id: session.id.clone(),
        token,
    }))
}

/// The answer for a session another worker took over while this one served it: it is parked
/// here (see `Sessions::park`), and the caller asks again (through any door).
async fn moved_away(app: &App, session: &Session) -> ApiError {
    let owner = app.snapshots.snapshots.owner(&session.id).await;
    let (worker, epoch) = match owner {
        Ok(Some(owner)) => (owner.worker, owner.epoch),
        _ => ("another worker".to_owned(), session.epoch() + 1),
    };
    if let Err(e) = app.sessions.park(&session.id, &worker, epoch).await {
        tracing::warn!(session = %session.id, error = %e, "parking a session taken over failed");
    }
    ApiError::from(SessionError::Moved {
        id: session.id.clone(),
        worker,
        epoch,
    })
}

/// Leaves the fleet a tombstone for a session this worker just ended (deleted or expired), so
/// that no door takes it over and brings it back.
pub(crate) async fn tombstone(app: &App, id: &str, epoch: u64, ended: hearth_snapshots::Ended) {
    let Some(fleet) = &app.fleet else {
        return;
    };
    if let Err(e) = fleet.end(id, epoch, ended).await {
        tracing::error!(session = %id, error = %e, "the session's end could not be recorded in the store: a takeover may bring back its last snapshot");
    }
}

/// All sessions on this worker, oldest first.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    responses((status = 200, description = "Every session.", body = SessionList)))]
pub(super) async fn list_sessions(State(app): State<Arc<App>>) -> Json<SessionList> {
    let sessions = app
        .sessions
        .list()
        .iter()
        .map(|s| session_info(&app, s))
        .collect();
    Json(SessionList { sessions })
}

/// One session.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(SessionId),
    responses((status = 200, description = "The session.", body = SessionInfo)))]
pub(super) async fn get_session(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Json<SessionInfo> {
    Json(session_info(&app, &session))
}

/// Snapshots a delete with `snapshot` takes before giving up on a session that keeps changing.
const LAST_SNAPSHOT_TRIES: usize = 3;

/// Delete a session and its files, once the calls running in it have finished.
///
/// With `snapshot`, a last snapshot is taken first; if the store fails, the session stays.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(SessionId, DeleteQuery),
    responses((status = 200, description = "The session is gone.", body = Deleted)),
    extensions(("x-errors" = json!([
        ErrorCode::SessionBusy, ErrorCode::StoreUnavailable, ErrorCode::SnapshotTooLarge,
        ErrorCode::CaptureFailed, ErrorCode::TooDeep
    ]))))]
pub(super) async fn delete_session(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    QueryParams(query): QueryParams<DeleteQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let id = session.id.clone();
    if !query
        .snapshot
        .unwrap_or(app.config.snapshots.snapshot_on_delete)
    {
        let epoch = session.epoch();
        drop(session);
        if let Some(fleet) = &app.fleet {
            // The tombstone first: without it, a door could take the session over later and
            // bring its last snapshot back. If the store fails, the session stays.
            let ended = hearth_snapshots::Ended {
                reason: "deleted".into(),
                snapshot: None,
            };
            fleet.end(&id, epoch, ended).await?;
        }
        app.sessions.delete(&id).await?;
        tracing::info!(session = %id, "session deleted");
        return Ok(Json(Deleted {
            id,
            deleted: true,
            snapshot: None,
        }));
    }
    // If the store fails, the session stays: deleting it would lose what is not stored. A
    // change made while the last snapshot was taken is not lost either: the session goes only
    // if the snapshot holds everything. Its programs end first (they end with the session),
    // so that the last snapshot holds what they left.
    let processes = session.processes.clone();
    drop(session);
    let ending = processes.clone();
    blocking(move || ending.close()).await?;
    let deleted = last_snapshot_then_delete(&app, &id).await;
    if deleted.is_err() {
        // The session stays, and may run programs again.
        processes.reopen();
    }
    deleted.map(Json)
}

/// Takes the last snapshot of a session whose programs have ended, then deletes it if nothing
/// changed meanwhile (a few tries).
async fn last_snapshot_then_delete(app: &App, id: &str) -> Result<Deleted, ApiError> {
    for _ in 0..LAST_SNAPSHOT_TRIES {
        let session = app.sessions.get(id)?;
        let last = app.snapshots.take(&app.sessions, &session).await?;
        let seen = session.snapshots.snapshotted_changes();
        let epoch = session.epoch();
        drop(session);
        if app.sessions.delete_if_unchanged(id, seen).await? {
            let ended = hearth_snapshots::Ended {
                reason: "deleted".into(),
                snapshot: Some(last.id.clone()),
            };
            tombstone(app, id, epoch, ended).await;
            tracing::info!(session = %id, snapshot = %last.id, "session deleted");
            return Ok(Deleted {
                id: id.to_owned(),
                deleted: true,
                snapshot: Some(last),
            });
        }
    }
    Err(ApiError::new(
        ErrorCode::SessionBusy,
        "the session kept changing while its last snapshot was taken; it is kept: try again",
    ))
}
