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
    /// Anything else libgit2 reports: a fault of the worker or of the repository. libgit2's
    /// class and code say where it failed; a fault that is not libgit2's (I/O, a malformed
    /// answer from the helper) has neither.
    #[error("git: {message}{}", libgit2_origin(.class.as_deref(), .code.as_deref()))]
    Internal {
        /// libgit2's error class, as git2 names it (`Odb`, `Index`, `Net`, `Os`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<String>,
        /// libgit2's error code, as git2 names it (`NotFound`, `Locked`, `GenericError`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        message: String,
    },
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
            Self::Internal { .. } => "git_failed",
        }
    }

    /// A fault that is not libgit2's (I/O, serialisation, the helper's plumbing): an
    /// [`GitError::Internal`] with no libgit2 class or code.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            class: None,
            code: None,
            message: message.into(),
        }
    }
}

/// How `Internal` shows libgit2's class and code, when it has them.
fn libgit2_origin(class: Option<&str>, code: Option<&str>) -> String {
    match (class, code) {
        (None, None) => String::new(),
        (class, code) => format!(
            " (libgit2 class {}, code {})",
            class.unwrap_or("?"),
            code.unwrap_or("?")
        ),
    }
}

impl From<git2::Error> for GitError {
    /// Keeps libgit2's class and code beside its message (their `Debug` names are git2's enum
    /// variants: stable, and what git2's documentation calls them).
    fn from(e: git2::Error) -> Self {
        Self::Internal {
            class: Some(format!("{:?}", e.class())),
            code: Some(format!("{:?}", e.code())),
            message: e.message().to_owned(),
        }
    }
}

impl From<std::io::Error> for GitError {
    fn from(e: std::io::Error) -> Self {
        Self::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_libgit2s_class_and_code_across_the_helper_boundary() {
        let e = GitError::from(git2::Error::new(
            git2::ErrorCode::Locked,
            git2::ErrorClass::Index,
            "index is locked",
        ));
        assert_eq!(e.code(), "git_failed");
        assert_eq!(
            e.to_string(),
            "git: index is locked (libgit2 class Index, code Locked)"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "internal",
                "detail": {"class": "Index", "code": "Locked", "message": "index is locked"},
            })
        );
        let back: GitError = serde_json::from_value(json).unwrap();
        assert_eq!(back.to_string(), e.to_string());

        let plain = GitError::internal("a malformed job");
        assert_eq!(plain.to_string(), "git: a malformed job");
        let json = serde_json::to_value(&plain).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "internal", "detail": {"message": "a malformed job"}})
        );
        assert!(matches!(
            serde_json::from_value(json).unwrap(),
            GitError::Internal {
                class: None,
                code: None,
                ..
            }
        ));
    }
}
