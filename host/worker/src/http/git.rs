//! git over HTTP: status, log and diff a page at a time; commit, push, pull, merges, reset and
//! remotes. The work is the git service's (`crate::git`), run in its confined helper.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_git::Operation;
use hearth_wire::ErrorCode;
use hearth_wire::git::{
    CommitInfo, CommitOutcome, CommitRequest, ContinueRequest, Diff, DiffQuery, HeadMoved, LogPage,
    LogQuery, MAX_LOG_LIMIT, MAX_LOG_SKIP, MergeContinued, MergeOutcome, PushOutcome, RemoteInfo,
    RemoteRequest, Remotes, ResetRequest, SetRemoteRequest, Status,
};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::docs::SessionId;
use super::error::{ApiError, write_failure};
use super::extract::{Access, JsonBody, QueryParams, SessionParam};
use crate::app::App;
use crate::sessions::Session;

const DEFAULT_LOG_LIMIT: usize = 50;
/// The remote sessions start with, and push to when a request names none.
const DEFAULT_REMOTE: &str = "origin";

/// Runs `operation` on the session's repository in the git helper, holding the session as
/// `access` says, and its git mutex. Both locks are waited for without a thread; the blocking
/// thread that waits for the helper is bounded by its deadline.
async fn with_repo<T: DeserializeOwned + Send + 'static>(
    app: &Arc<App>,
    session: &Arc<Session>,
    access: Access,
    operation: Operation,
) -> Result<T, ApiError> {
    let guard = session.lock(access == Access::Exclusive).await?;
    let git = session.git_lock_owned().await;
    let (app, session2) = (app.clone(), session.clone());
    tokio::task::spawn_blocking(move || {
        let (_guard, _git) = (guard, git);
        app.git.run(&session2, operation)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match access {
        // A checkout, merge or pull that wrote past the quota.
        Access::Exclusive => write_failure(e, session.usage()),
        Access::Shared => ApiError::from(e),
    })
}

/// What every git route that writes may also answer.
const GIT_WRITE_ERRORS: [ErrorCode; 5] = [
    ErrorCode::InvalidGitRequest,
    ErrorCode::GitTimeout,
    ErrorCode::TooDeep,
    ErrorCode::StorageFull,
    ErrorCode::QuotaExceeded,
];

/// The session's branch, `HEAD`, state, changes, conflicts and remotes.
///
/// Every changed path (untracked included, ignored not).
#[utoipa::path(get, path = "/v1/sessions/{id}/git/status", tag = "git", params(SessionId),
    responses((status = 200, description = "The repository's status.", body = Status)),
    extensions(("x-errors" = json!([ErrorCode::GitTimeout, ErrorCode::TooDeep]))))]
pub(super) async fn git_status(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<Json<Status>, ApiError> {
    Ok(Json(
        with_repo(&app, &session, Access::Shared, Operation::Status).await?,
    ))
}

/// History, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/sessions/{id}/git/log", tag = "git",
    params(SessionId, LogQuery),
    responses((status = 200, description = "A page of commits.", body = LogPage)),
    extensions(("x-errors" = json!([
        ErrorCode::RevisionNotFound, ErrorCode::InvalidGitRequest, ErrorCode::GitTimeout
    ]))))]
pub(super) async fn git_log(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    QueryParams(q): QueryParams<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LOG_LIMIT);
    if limit == 0 || limit > MAX_LOG_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`limit` must be 1..={MAX_LOG_LIMIT}"),
        ));
    }
    if q.skip.is_some_and(|s| s > MAX_LOG_SKIP) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("`skip` must be 0..={MAX_LOG_SKIP}"),
        ));
    }
    let operation = Operation::Log {
        revision: q.revision,
        skip: q.skip.map_or(0, |s| s as usize),
        limit,
    };
    Ok(Json(
        with_repo(&app, &session, Access::Shared, operation).await?,
    ))
}

/// The workspace against `HEAD` (or `from`), untracked files included; or commit `from`
/// (default `HEAD`) against commit `to`.
#[utoipa::path(get, path = "/v1/sessions/{id}/git/diff", tag = "git",
    params(SessionId, DiffQuery),
    responses((status = 200, description = "The files and the patch.", body = Diff)),
    extensions(("x-errors" = json!([
        ErrorCode::RevisionNotFound, ErrorCode::InvalidGitRequest, ErrorCode::GitTimeout,
        ErrorCode::TooDeep
    ]))))]
pub(super) async fn git_diff(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    QueryParams(q): QueryParams<DiffQuery>,
) -> Result<Json<Diff>, ApiError> {
    // `to` alone is `HEAD` against `to`.
    let from = match (&q.from, &q.to) {
        (None, Some(_)) => Some("HEAD".to_owned()),
        _ => q.from,
    };
    let operation = Operation::Diff {
        from,
        to: q.to,
        max_bytes: app.git.max_diff_bytes,
    };
    Ok(Json(
        with_repo(&app, &session, Access::Shared, operation).await?,
    ))
}

/// Stage the whole workspace and commit it.
///
/// `.gitignore` is honoured and deletions are included. Nothing to commit is a 200 answer, not
/// an error. Holds the session exclusively: a commit never captures a half-written file.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/commit", tag = "git", params(SessionId),
    request_body = CommitRequest,
    responses(
        (status = 201, description = "A new commit.", body = CommitOutcome),
        (status = 200, description = "Nothing to commit.", body = CommitOutcome)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [
        ErrorCode::MergeInProgress, ErrorCode::UnresolvedConflicts, ErrorCode::PathTooLong
    ]]))))]
pub(super) async fn git_commit(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<CommitRequest>,
) -> Result<(StatusCode, Json<CommitOutcome>), ApiError> {
    let operation = crate::git::commit_operation(&request);
    let outcome = with_repo(&app, &session, Access::Exclusive, operation).await?;
    let status = match outcome {
        CommitOutcome::Committed { .. } => StatusCode::CREATED,
        CommitOutcome::NothingToCommit { .. } => StatusCode::OK,
    };
    Ok((status, Json(outcome)))
}

/// Push the current branch.
///
/// If the remote moved, its commits are fetched and merged first: a clean merge is pushed; a
/// conflicting one leaves conflict markers and the `merging` state (409 `merge_conflict`). A
/// remote that refuses the update answers 409 `push_rejected` with its reason. Credentials are
/// the worker's, never the session's.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/push", tag = "git", params(SessionId),
    request_body = RemoteRequest,
    responses((status = 200, description = "Pushed, or already up to date.",
        body = PushOutcome)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [
        ErrorCode::RemoteNotFound, ErrorCode::RemoteNotAllowed, ErrorCode::RemoteFailed,
        ErrorCode::RemoteBranchNotFound, ErrorCode::MergeInProgress, ErrorCode::MergeConflict,
        ErrorCode::PushRejected, ErrorCode::UncommittedChanges
    ]]))))]
pub(super) async fn git_push(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<RemoteRequest>,
) -> Result<Json<PushOutcome>, ApiError> {
    let operation = Operation::Push {
        remote: request.remote.unwrap_or_else(|| DEFAULT_REMOTE.to_owned()),
        branch: request.branch,
        author: request.author,
    };
    match with_repo(&app, &session, Access::Exclusive, operation).await? {
        PushOutcome::Conflict { conflicts } => Err(merge_conflict(&conflicts)),
        PushOutcome::Rejected { reason } => Err(ApiError::new(
            ErrorCode::PushRejected,
            format!("the remote rejected the push: {reason}"),
        )
        .with_details(json!({ "reason": reason }))),
        outcome => Ok(Json(outcome)),
    }
}

/// Fetch a remote branch and merge it (fast-forward when possible).
///
/// Conflicts answer 409 `merge_conflict` and leave the repository `merging`.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/pull", tag = "git", params(SessionId),
    request_body = RemoteRequest,
    responses((status = 200, description = "Up to date, fast-forwarded or merged.",
        body = MergeOutcome)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [
        ErrorCode::RemoteNotFound, ErrorCode::RemoteNotAllowed, ErrorCode::RemoteFailed,
        ErrorCode::RemoteBranchNotFound, ErrorCode::MergeInProgress, ErrorCode::MergeConflict,
        ErrorCode::UncommittedChanges
    ]]))))]
pub(super) async fn git_pull(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<RemoteRequest>,
) -> Result<Json<MergeOutcome>, ApiError> {
    let operation = Operation::Pull {
        remote: request.remote.unwrap_or_else(|| DEFAULT_REMOTE.to_owned()),
        branch: request.branch,
        author: request.author,
    };
    match with_repo(&app, &session, Access::Exclusive, operation).await? {
        MergeOutcome::Conflict { conflicts } => Err(merge_conflict(&conflicts)),
        outcome => Ok(Json(outcome)),
    }
}

/// A merge stopped on conflicts: an answer the agent acts on (resolve, then continue), so the
/// files come along.
fn merge_conflict(conflicts: &[String]) -> ApiError {
    ApiError::new(
        ErrorCode::MergeConflict,
        format!(
            "the remote's changes conflict with the session's in: {}; resolve the conflict \
             markers, then git/merge/continue (or git/merge/abort)",
            conflicts.join(", ")
        ),
    )
    .with_details(json!({ "conflicts": conflicts, "state": "merging" }))
}

/// Finish a merge once the conflicts are resolved.
///
/// No conflict markers may be left in the files that conflicted. Commits with both parents;
/// push afterwards.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/merge/continue", tag = "git",
    params(SessionId), request_body = ContinueRequest,
    responses((status = 201, description = "The merge commit.", body = MergeContinued)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [
        ErrorCode::NoMergeInProgress, ErrorCode::UnresolvedConflicts, ErrorCode::PathTooLong
    ]]))))]
pub(super) async fn git_merge_continue(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<ContinueRequest>,
) -> Result<(StatusCode, Json<MergeContinued>), ApiError> {
    let operation = Operation::MergeContinue {
        message: request.message,
        author: request.author,
    };
    let commit: CommitInfo = with_repo(&app, &session, Access::Exclusive, operation).await?;
    Ok((StatusCode::CREATED, Json(MergeContinued::Merged { commit })))
}

/// Abandon a merge: the workspace returns to `HEAD`.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/merge/abort", tag = "git",
    params(SessionId),
    responses((status = 200, description = "Where `HEAD` is.", body = HeadMoved)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [ErrorCode::NoMergeInProgress]]))))]
pub(super) async fn git_merge_abort(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<Json<HeadMoved>, ApiError> {
    let head = with_repo(&app, &session, Access::Exclusive, Operation::MergeAbort).await?;
    Ok(Json(HeadMoved::Aborted { head }))
}

/// Roll the workspace and the branch back to a commit.
///
/// Default `HEAD`: discard uncommitted changes. Untracked files stay unless `clean`; ignored
/// files always stay. Abandons a merge in progress.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/reset", tag = "git", params(SessionId),
    request_body = ResetRequest,
    responses((status = 200, description = "Where `HEAD` is.", body = HeadMoved)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [ErrorCode::RevisionNotFound]]))))]
pub(super) async fn git_reset(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<ResetRequest>,
) -> Result<Json<HeadMoved>, ApiError> {
    let operation = Operation::Reset {
        revision: request.commit.unwrap_or_else(|| "HEAD".to_owned()),
        clean: request.clean,
    };
    let head = with_repo(&app, &session, Access::Exclusive, operation).await?;
    Ok(Json(HeadMoved::Reset { head }))
}

/// Add a remote, or point an existing one at a new URL.
///
/// The URL must be allowed by the worker's `git.allowed_remotes`.
#[utoipa::path(post, path = "/v1/sessions/{id}/git/remotes", tag = "git", params(SessionId),
    request_body = SetRemoteRequest,
    responses((status = 200, description = "The session's remotes.", body = Remotes)),
    extensions(("x-errors" = json!([GIT_WRITE_ERRORS, [ErrorCode::RemoteNotAllowed]]))))]
pub(super) async fn git_set_remote(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<SetRemoteRequest>,
) -> Result<Json<Remotes>, ApiError> {
    let operation = Operation::SetRemote {
        name: request.name.unwrap_or_else(|| DEFAULT_REMOTE.to_owned()),
        url: request.url,
    };
    let remotes: Vec<RemoteInfo> = with_repo(&app, &session, Access::Exclusive, operation).await?;
    Ok(Json(Remotes { remotes }))
}
