//! git on the worker: requests, and the answers of status, log, diff, commit, push, pull,
//! merges, reset and remotes. `hearth-git` makes these answers (in its confined helper) and the
//! worker passes them on as they are.

use serde::{Deserialize, Serialize};

/// Who a commit is by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// Not blank; no `<`, `>` or line breaks.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^<>\n\r\x00]*[^<>\s\x00][^<>\n\r\x00]*$")
    )]
    pub name: String,
    /// Not blank; no `<`, `>` or line breaks.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^<>\n\r\x00]*[^<>\s\x00][^<>\n\r\x00]*$")
    )]
    pub email: String,
}

/// Whether an operation is half-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RepoState {
    Clean,
    /// A merge stopped on conflicts: resolve them, then continue or abort.
    Merging,
}

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    Typechange,
    Conflicted,
}

/// A path that differs from `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileChange {
    pub path: String,
    pub change: ChangeKind,
}

/// A remote of the session (its URL without user info).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemoteInfo {
    pub name: String,
    pub url: String,
}

/// `git/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    /// The branch `HEAD` is on (none when detached).
    pub branch: Option<String>,
    pub head: Option<String>,
    pub state: RepoState,
    /// Every changed path, untracked ones included (what a commit would take), ignored ones not.
    pub changes: Vec<FileChange>,
    pub conflicts: Vec<String>,
    pub remotes: Vec<RemoteInfo>,
}

/// A commit, as answers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitInfo {
    pub id: String,
    pub summary: String,
    pub message: String,
    pub author: Author,
    /// Seconds since the epoch.
    pub time: i64,
    pub parents: Vec<String>,
}

/// `git/commit`: a new commit (201), or the plain answer that there was nothing to commit (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommitOutcome {
    Committed {
        commit: CommitInfo,
        files_changed: usize,
    },
    NothingToCommit {
        head: Option<String>,
    },
}

/// One page of `git/log`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPage {
    pub commits: Vec<CommitInfo>,
    /// The `skip` of the next page, if there is one.
    pub next_skip: Option<u32>,
}

/// A file in a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffFile {
    pub path: String,
    pub old_path: Option<String>,
    pub change: ChangeKind,
    pub additions: usize,
    pub deletions: usize,
    pub binary: bool,
}

/// `git/diff`: the files, and the patch text up to the worker's `git.max_diff_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diff {
    pub files: Vec<DiffFile>,
    pub patch: String,
    pub truncated: bool,
}

/// What bringing a remote's commits in did (`git/pull`; a conflict is answered 409
/// `merge_conflict`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MergeOutcome {
    UpToDate {
        head: String,
    },
    FastForward {
        head: String,
    },
    Merged {
        head: String,
    },
    /// Stopped with conflict markers in these files; the repository is `merging`.
    Conflict {
        conflicts: Vec<String>,
    },
}

/// `git/push` (a conflict is answered 409 `merge_conflict`, a refusal 409 `push_rejected`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PushOutcome {
    /// The remote branch is now `head`. `merged` says the remote had moved and its commits were
    /// merged first.
    Pushed {
        remote: String,
        branch: String,
        head: String,
        merged: bool,
    },
    /// The remote already had everything (`fast_forwarded`: it was ahead, and the session caught
    /// up with it).
    UpToDate {
        remote: String,
        branch: String,
        head: String,
        fast_forwarded: bool,
    },
    /// The remote had moved and merging its commits conflicted: the repository is `merging`.
    Conflict { conflicts: Vec<String> },
    /// The remote refused the update (a hook, a protected branch, …).
    Rejected { reason: String },
}

/// `git/merge/continue`: the merge commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MergeContinued {
    Merged { commit: CommitInfo },
}

/// `git/merge/abort` and `git/reset`: where `HEAD` is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HeadMoved {
    Aborted { head: CommitInfo },
    Reset { head: CommitInfo },
}

/// `git/remotes`: the session's remotes after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Remotes {
    pub remotes: Vec<RemoteInfo>,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// `git/commit` (and exec's `commit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// Not blank.
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
    pub message: String,
    /// Without it, the worker's `git.author`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
}

impl CommitRequest {
    /// A commit by the worker's default author.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            author: None,
        }
    }
}

/// `git/push` and `git/pull`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoteRequest {
    /// Default `origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Default: the branch `HEAD` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Who a merge commit is by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
}

/// `git/merge/continue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContinueRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
}

/// `git/reset`: move `HEAD` (and the work tree) to `commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// A revision (default `HEAD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Also remove untracked files.
    #[serde(default)]
    pub clean: bool,
}

/// `git/remotes`: add or change a remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRemoteRequest {
    /// Default `origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A URL the worker's policy allows.
    pub url: String,
}

/// Most commits one `git/log` page holds.
pub const MAX_LOG_LIMIT: usize = 1_000;
/// The largest `skip` of `git/log` (a signed 32-bit integer's, as the document's `int32` says).
pub const MAX_LOG_SKIP: u32 = i32::MAX as u32;

/// `git/log`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Where the log starts (default `HEAD`).
    pub revision: Option<String>,
    /// Commits to skip (a page's `next_skip`).
    #[cfg_attr(feature = "openapi", param(maximum = 2147483647))]
    pub skip: Option<u32>,
    /// Commits in the page: 1 to 1000 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<usize>,
}

/// `git/diff`'s query: without either, the workspace against `HEAD`; with `from` only, the
/// workspace against `from`; with `to`, `from` (default `HEAD`) against `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}
