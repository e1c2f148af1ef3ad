//! `/v1/sessions/{id}/git/...`: git on the worker, through `hearth-git`.
//!
//! Operations that change the workspace or the history (commit, push, pull, merge, reset) hold
//! the session exclusively, like any writer, so a commit never captures a half-written file.
//! Status, log and diff share the session with readers and take the session's git mutex
//! (libgit2 still refreshes the index while looking).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use hearth_git::{
    Author, CommitOutcome, GitError, MergeOutcome, PushOutcome, RemoteAccess, SessionRepo,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::api::{json_body, path_params, query_params};
use crate::config::{ConfigError, GitConfig};
use crate::error::ApiError;
use crate::sessions::Session;

/// Most commits one `git/log` page holds.
pub const MAX_LOG_LIMIT: usize = 1_000;
const DEFAULT_LOG_LIMIT: usize = 50;
/// The remote sessions start with, and push to when a request names none.
const DEFAULT_REMOTE: &str = "origin";

/// The worker's git facility: policy and defaults, shared by every session.
pub struct Git {
    pub access: RemoteAccess,
    pub default_branch: String,
    pub author: Author,
    pub max_diff_bytes: usize,
}

/// Where a new session's repository comes from: a clone, when given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    pub url: String,
    pub branch: Option<String>,
}

/// A commit asked for by a request (also by exec's "commit on success").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub message: String,
    pub author: Option<Author>,
}

impl CommitRequest {
    /// Commits in `repo`, by the request's author or else `default_author`.
    fn run(&self, repo: &SessionRepo, default_author: &Author) -> Result<CommitOutcome, GitError> {
        repo.commit(
            &self.message,
            self.author.as_ref().unwrap_or(default_author),
        )
    }
}

impl Git {
    pub fn new(config: &GitConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            access: config.remote_access()?,
            default_branch: config.default_branch.clone(),
            author: config.author.clone(),
            max_diff_bytes: config.max_diff_bytes,
        })
    }

    /// Fills a new session's git directory with a clone of `source`. Without one, the
    /// repository (empty, with an initial commit) is made by the session's first git operation:
    /// a dozen files and directories cost more than the rest of a new session on a slow disk.
    pub fn create(
        &self,
        work_tree: &std::path::Path,
        git_dir: &std::path::Path,
        source: Option<&GitSource>,
    ) -> Result<(), GitError> {
        let Some(source) = source else {
            return Ok(());
        };
        SessionRepo::clone_into(
            git_dir,
            work_tree,
            &source.url,
            source.branch.as_deref(),
            &self.default_branch,
            &self.author,
            &self.access,
        )
        .map(drop)
    }

    /// The session's repository; sessions made before git was configured get one now.
    pub fn open(&self, session: &Session) -> Result<SessionRepo, GitError> {
        let git_dir = session.git_dir();
        if !SessionRepo::exists(&git_dir) {
            return SessionRepo::init(
                &git_dir,
                session.workspace_dir(),
                &self.default_branch,
                &self.author,
            );
        }
        SessionRepo::open(&git_dir, session.workspace_dir())
    }

    /// Commits the whole workspace; the caller holds the session exclusively.
    pub fn commit(&self, session: &Session, request: &CommitRequest) -> Result<Value, GitError> {
        Ok(to_json(&request.run(&self.open(session)?, &self.author)?))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Runs `operation` on the session's repository off the async threads, holding the session
/// exclusively or shared (then with the git mutex).
async fn with_repo<T: Send + 'static>(
    app: &Arc<App>,
    id: Result<Path<String>, PathRejection>,
    exclusive: bool,
    operation: impl FnOnce(&SessionRepo, &Git) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    let guard = session.lock(exclusive).await?;
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let _git = session.git_lock();
        let repo = app.git.open(&session)?;
        operation(&repo, &app.git)
    })
    .await
    .map_err(ApiError::internal)?
}

// ---------------------------------------------------------------------------------------------
// Handlers

pub async fn status(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    with_repo(&app, id, false, |repo, _| {
        Ok(Json(to_json(&repo.status()?)))
    })
    .await
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
    with_repo(&app, id, false, move |repo, _| {
        let page = repo.log(q.revision.as_deref(), q.skip.unwrap_or(0), limit)?;
        Ok(Json(to_json(&page)))
    })
    .await
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
    with_repo(&app, id, false, move |repo, git| {
        let diff = repo.diff(q.from.as_deref(), q.to.as_deref(), git.max_diff_bytes)?;
        Ok(Json(to_json(&diff)))
    })
    .await
}

pub async fn commit(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CommitRequest = json_body(b)?;
    with_repo(&app, id, true, move |repo, git| {
        let outcome = request.run(repo, &git.author)?;
        let status = match outcome {
            CommitOutcome::Committed { .. } => StatusCode::CREATED,
            CommitOutcome::NothingToCommit { .. } => StatusCode::OK,
        };
        Ok((status, Json(to_json(&outcome))))
    })
    .await
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
    with_repo(&app, id, true, move |repo, git| {
        let remote = request.remote.as_deref().unwrap_or(DEFAULT_REMOTE);
        let branch = request.branch.as_deref();
        let author = request.author.as_ref().unwrap_or(&git.author);
        let answer = match direction {
            Exchange::Push => match repo.push(remote, branch, author, &git.access)? {
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
            },
            Exchange::Pull => match repo.pull(remote, branch, author, &git.access)? {
                MergeOutcome::Conflict { conflicts } => return Err(merge_conflict(&conflicts)),
                outcome => to_json(&outcome),
            },
        };
        Ok(Json(answer))
    })
    .await
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
    with_repo(&app, id, true, move |repo, git| {
        let author = request.author.as_ref().unwrap_or(&git.author);
        let commit = repo.merge_continue(request.message.as_deref(), author)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "status": "merged", "commit": to_json(&commit) })),
        ))
    })
    .await
}

pub async fn merge_abort(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    with_repo(&app, id, true, |repo, _| {
        let head = repo.merge_abort()?;
        Ok(Json(json!({ "status": "aborted", "head": to_json(&head) })))
    })
    .await
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
    with_repo(&app, id, true, move |repo, _| {
        let head = repo.reset(request.commit.as_deref().unwrap_or("HEAD"), request.clean)?;
        Ok(Json(json!({ "status": "reset", "head": to_json(&head) })))
    })
    .await
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
    with_repo(&app, id, true, move |repo, git| {
        let name = request.name.as_deref().unwrap_or(DEFAULT_REMOTE);
        repo.set_remote(name, &request.url, &git.access)?;
        Ok(Json(json!({ "remotes": to_json(&repo.remotes()?) })))
    })
    .await
}
