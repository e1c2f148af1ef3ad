//! git over HTTP: status, log and diff a page at a time; commit, push, pull, merges, reset and
//! remotes. The work is the git service's (`crate::git`), run in its confined helper.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use hearth_git::{Author, CommitOutcome, MergeOutcome, Operation, PushOutcome};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{ApiError, write_failure};
use super::extract::{json_body, path_params, query_params};
use crate::App;
use crate::git::CommitRequest;

/// Most commits one `git/log` page holds.
pub const MAX_LOG_LIMIT: usize = 1_000;
const DEFAULT_LOG_LIMIT: usize = 50;
/// The remote sessions start with, and push to when a request names none.
const DEFAULT_REMOTE: &str = "origin";

/// Runs `operation` on the session's repository in the git helper, holding the session
/// exclusively or shared (then with the git mutex). Both locks are waited for without a thread;
/// the blocking thread that waits for the helper is bounded by its deadline.
async fn with_repo<T: DeserializeOwned + Send + 'static>(
    app: &Arc<App>,
    id: Result<Path<String>, PathRejection>,
    exclusive: bool,
    operation: Operation,
) -> Result<T, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    let guard = session.lock(exclusive).await?;
    let git = session.git_lock_owned().await;
    let app = app.clone();
    let session2 = session.clone();
    tokio::task::spawn_blocking(move || {
        let (_guard, _git) = (guard, git);
        app.git.run(&session2, operation)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match exclusive {
        // A checkout, merge or pull that wrote past the quota.
        true => write_failure(e, session.usage()),
        false => ApiError::from(e),
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

pub async fn status(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(with_repo(&app, id, false, Operation::Status).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    revision: Option<String>,
    skip: Option<usize>,
    limit: Option<usize>,
}

pub async fn log(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query_params(q)?;
    let limit = q.limit.unwrap_or(DEFAULT_LOG_LIMIT);
    if limit == 0 || limit > MAX_LOG_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be 1..={MAX_LOG_LIMIT}"),
        ));
    }
    let operation = Operation::Log {
        revision: q.revision,
        skip: q.skip.unwrap_or(0),
        limit,
    };
    Ok(Json(with_repo(&app, id, false, operation).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

pub async fn diff(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query_params(q)?;
    if q.to.is_some() && q.from.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`to` needs `from` (without both, the diff is the workspace against HEAD)",
        ));
    }
    let operation = Operation::Diff {
        from: q.from,
        to: q.to,
        max_bytes: app.git.max_diff_bytes,
    };
    Ok(Json(with_repo(&app, id, false, operation).await?))
}

pub async fn commit(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CommitRequest = json_body(b)?;
    let outcome: CommitOutcome = with_repo(&app, id, true, request.operation()).await?;
    let status = match outcome {
        CommitOutcome::Committed { .. } => StatusCode::CREATED,
        CommitOutcome::NothingToCommit { .. } => StatusCode::OK,
    };
    Ok((status, Json(to_json(&outcome))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteRequest {
    remote: Option<String>,
    branch: Option<String>,
    author: Option<Author>,
}

pub async fn push(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    exchange(app, id, b, Exchange::Push).await
}

pub async fn pull(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    exchange(app, id, b, Exchange::Pull).await
}

enum Exchange {
    Push,
    Pull,
}

/// Push or pull: both may merge, and a conflicting merge is the same answer for both.
async fn exchange(
    app: Arc<App>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
    direction: Exchange,
) -> Result<Json<Value>, ApiError> {
    let request: RemoteRequest = json_body(b)?;
    let remote = request.remote.unwrap_or_else(|| DEFAULT_REMOTE.to_owned());
    let (branch, author) = (request.branch, request.author);
    let answer = match direction {
        Exchange::Push => {
            let operation = Operation::Push {
                remote,
                branch,
                author,
            };
            match with_repo(&app, id, true, operation).await? {
                PushOutcome::Conflict { conflicts } => return Err(merge_conflict(&conflicts)),
                PushOutcome::Rejected { reason } => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "push_rejected",
                        format!("the remote rejected the push: {reason}"),
                    )
                    .with_details(json!({ "reason": reason })));
                }
                outcome => to_json(&outcome),
            }
        }
        Exchange::Pull => {
            let operation = Operation::Pull {
                remote,
                branch,
                author,
            };
            match with_repo(&app, id, true, operation).await? {
                MergeOutcome::Conflict { conflicts } => return Err(merge_conflict(&conflicts)),
                outcome => to_json(&outcome),
            }
        }
    };
    Ok(Json(answer))
}

/// A merge stopped on conflicts: an answer the agent acts on (resolve, then continue), so the
/// files come along.
fn merge_conflict(conflicts: &[String]) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "merge_conflict",
        format!(
            "the remote's changes conflict with the session's in: {}; resolve the conflict \
             markers, then git/merge/continue (or git/merge/abort)",
            conflicts.join(", ")
        ),
    )
    .with_details(json!({ "conflicts": conflicts, "state": "merging" }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinueRequest {
    message: Option<String>,
    author: Option<Author>,
}

pub async fn merge_continue(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: ContinueRequest = json_body(b)?;
    let operation = Operation::MergeContinue {
        message: request.message,
        author: request.author,
    };
    let commit: Value = with_repo(&app, id, true, operation).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "status": "merged", "commit": commit })),
    ))
}

pub async fn merge_abort(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let head: Value = with_repo(&app, id, true, Operation::MergeAbort).await?;
    Ok(Json(json!({ "status": "aborted", "head": head })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    commit: Option<String>,
    #[serde(default)]
    clean: bool,
}

pub async fn reset(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: ResetRequest = json_body(b)?;
    let operation = Operation::Reset {
        revision: request.commit.unwrap_or_else(|| "HEAD".to_owned()),
        clean: request.clean,
    };
    let head: Value = with_repo(&app, id, true, operation).await?;
    Ok(Json(json!({ "status": "reset", "head": head })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRemoteRequest {
    name: Option<String>,
    url: String,
}

pub async fn set_remote(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: SetRemoteRequest = json_body(b)?;
    let operation = Operation::SetRemote {
        name: request.name.unwrap_or_else(|| DEFAULT_REMOTE.to_owned()),
        url: request.url,
    };
    let remotes: Value = with_repo(&app, id, true, operation).await?;
    Ok(Json(json!({ "remotes": remotes })))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
