//! Why a git operation failed, in the terms a caller can act on.

/// A failed git operation. Messages never contain credentials. Serialisable: it comes back
/// from the `hearth-git` helper as JSON.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum GitError {
    /// The request itself is malformed (a bad branch or remote name, an empty message).
    #[error("{0}")]
    InvalidInput(String),
    /// The remote URL is not on the operator's list.
    #[error("remote `{0}` is not allowed on this worker")]
    RemoteNotAllowed(String),
    #[error("the session has no remote named `{0}`")]
    UnknownRemote(String),
    #[error("no commit `{0}` in this session's history")]
    UnknownRevision(String),
    #[error("the remote has no branch `{0}`")]
    UnknownRemoteBranch(String),
    /// A merge is waiting to be finished or abandoned.
    #[error(
        "a merge is in progress: resolve the conflicts, then git/merge/continue, or git/merge/abort"
    )]
    MergeInProgress,
    #[error("no merge is in progress")]
    NoMergeInProgress,
    #[error("conflicts are still unresolved in: {}", .0.join(", "))]
    UnresolvedConflicts(Vec<String>),
    /// A merge would overwrite changes that are not committed yet.
    #[error("commit (or reset) these changes first: {}", .0.join(", "))]
    UncommittedChanges(Vec<String>),
    /// The remote could not be reached, refused the credentials, or failed mid-transfer.
    #[error("remote `{remote}`: {message}")]
    Remote { remote: String, message: String },
    /// The operation did not finish in time (the helper was killed): something in the work
    /// tree made libgit2 wait (a FIFO where a file was expected) or the work is too large.
    #[error(
        "the git operation did not finish within {seconds} s and was stopped; a FIFO, socket \
         or device in the workspace (where git expects a file such as .gitignore) makes git \
         wait: remove it"
    )]
    TimedOut { seconds: f64 },
    /// The work tree is nested deeper than the worker's limit.
    #[error(
        "the workspace is nested deeper than the limit of {limit} directories; flatten or \
         delete the deepest directories"
    )]
    TooDeep { limit: usize },
    /// A path in the work tree is longer than git can handle.
    #[error(
        "a path in the workspace is longer than git handles ({limit} bytes); shorten or delete \
         it"
    )]
    PathTooLong { limit: usize },
    /// The helper ended without an answer (out of memory, killed, crashed).
    #[error("the git helper failed: {0}")]
    HelperFailed(String),
    /// Anything else libgit2 reports: a fault of the worker or of the repository.
    #[error("git: {0}")]
    Internal(String),
}

impl GitError {
    /// A stable snake_case code for answers and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid_git_request",
            Self::RemoteNotAllowed(_) => "remote_not_allowed",
            Self::UnknownRemote(_) => "remote_not_found",
            Self::UnknownRevision(_) => "revision_not_found",
            Self::UnknownRemoteBranch(_) => "remote_branch_not_found",
            Self::MergeInProgress => "merge_in_progress",
            Self::NoMergeInProgress => "no_merge_in_progress",
            Self::UnresolvedConflicts(_) => "unresolved_conflicts",
            Self::UncommittedChanges(_) => "uncommitted_changes",
            Self::Remote { .. } => "remote_failed",
            Self::TimedOut { .. } => "git_timeout",
            Self::TooDeep { .. } => "too_deep",
            Self::PathTooLong { .. } => "path_too_long",
            Self::HelperFailed(_) => "git_failed",
            Self::Internal(_) => "git_failed",
        }
    }
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        Self::Internal(e.message().to_owned())
    }
}

impl From<std::io::Error> for GitError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.to_string())
    }
}
