//! Every failure the HTTP API can answer with, in one place:
//! `{"error": {"code": "<snake_case>", "message": "<for a person>"}}` with a fitting status.
//!
//! 4xx answers carry the message meant for the caller. 5xx answers say only that something
//! went wrong on the worker; the cause is logged with the request id instead, so internal paths
//! and errors do not leak to agents.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_runtime::{CallError, ResolveError, ToolErrorKind};
use hearth_wire::{ErrorBody, ErrorCode, ErrorInfo};
use serde_json::json;

use crate::sessions::{Session, SessionError};
use crate::snapshots::TakeError;
use crate::storage::StorageError;
use hearth_snapshots::SnapshotError;

/// An error answer. Its status is its code's (`ErrorCode::status`): the document and the
/// answers cannot disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// What a caller needs to act on the error beyond its message (e.g. the files of a merge
    /// conflict), answered as `error.details`.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl serde::Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// The error as an answer's `error` (for an answer already under way: a stream's last line).
    pub fn info(self) -> hearth_wire::ErrorInfo {
        hearth_wire::ErrorInfo {
            code: self.code,
            message: self.message,
            details: self.details,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A fault of the worker, not of the request: logged in full, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "the worker failed to serve this request; see its logs",
        )
    }

    /// A write that did not fit the session's quota: 507 with what the volume holds and can
    /// hold.
    pub fn quota_exceeded(usage: &hearth_volume::Usage) -> Self {
        Self::new(
            ErrorCode::QuotaExceeded,
            format!(
                "the session is at its quota: {} of {} bytes, {} of {} inodes used; delete \
                 files to make room",
                usage.bytes_used, usage.bytes_limit, usage.inodes_used, usage.inodes_limit
            ),
        )
        .with_details(crate::storage::quota_usage(usage))
    }

    /// What a failed write in `session` answers: `quota_exceeded` when the session has a
    /// volume and either it is at its limit or the failure was for space (a writer that
    /// cleaned up after itself: a tool, libgit2); otherwise the error as it was.
    pub fn or_quota(self, session: &Session) -> Self {
        let for_space = self.code == ErrorCode::StorageFull || says_no_space(&self.message);
        self.quota_if(session.usage(), for_space)
    }

    fn quota_if(self, usage: Option<hearth_volume::Usage>, for_space: bool) -> Self {
        match usage {
            Some(usage) if for_space || usage.is_full() => Self::quota_exceeded(&usage),
            _ => self,
        }
    }
}

/// The answer to a write into a session's volume that failed with `cause`. The cause is read
/// before it becomes an answer: a 5xx answer keeps none of its words, and "No space left on
/// device" is what tells a quota from a fault.
pub fn write_failure<E>(cause: E, usage: Option<hearth_volume::Usage>) -> ApiError
where
    E: std::fmt::Display + Into<ApiError>,
{
    let for_space = says_no_space(&cause.to_string());
    let answer: ApiError = cause.into();
    let for_space = for_space || answer.code == ErrorCode::StorageFull;
    answer.quota_if(usage, for_space)
}

impl ApiError {
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code;
        let body = ErrorBody {
            error: ErrorInfo {
                code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        // Lets the logging middleware count errors by code without parsing bodies.
        response.extensions_mut().insert(code);
        response
    }
}

impl From<crate::processes::ProcessError> for ApiError {
    fn from(e: crate::processes::ProcessError) -> Self {
        use crate::processes::ProcessError as P;
        let code = match &e {
            P::NotFound(_) => ErrorCode::ProcessNotFound,
            P::SessionLimit(_) | P::WorkerLimit(_) => ErrorCode::ProcessLimit,
            P::Closed => ErrorCode::SessionNotFound,
            P::StdinClosed | P::StdinBusy => ErrorCode::StdinClosed,
            P::Start(_) => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::InvalidId(_) => Self::new(ErrorCode::InvalidSessionId, message),
            SessionError::Exists(_) => Self::new(ErrorCode::SessionExists, message),
            SessionError::NotFound(_) => Self::new(ErrorCode::SessionNotFound, message),
            SessionError::Expired { snapshot, .. } => Self::new(ErrorCode::SessionExpired, message)
                .with_details(json!({ "snapshot": snapshot })),
            SessionError::Moved { worker, epoch, .. } => {
                let details = json!({ "worker": worker, "epoch": epoch });
                Self::new(ErrorCode::SessionMoved, message).with_details(details)
            }
            SessionError::Full(_) => Self::new(ErrorCode::SessionLimit, message),
            SessionError::Storage(e) => e.into(),
            SessionError::InvalidView(_) | SessionError::Io(_) => Self::internal(message),
        }
    }
}

/// `ENOSPC` or `EDQUOT` in the words a tool's or libgit2's message carries them.
fn says_no_space(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["no space left", "insufficient space", "disk quota exceeded"]
        .iter()
        .any(|words| message.contains(words))
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let message = e.to_string();
        match e {
            StorageError::InvalidQuota(_) => Self::new(ErrorCode::InvalidQuota, message),
            StorageError::Full { .. } => Self::new(ErrorCode::StorageFull, message),
            StorageError::Volume(_) | StorageError::Unavailable(_) => Self::internal(message),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let code = match &e {
            CallError::UnknownTool(_) => ErrorCode::UnknownTool,
            CallError::InvalidArguments { .. } => ErrorCode::InvalidArguments,
            CallError::Tool { kind, .. } => match kind {
                ToolErrorKind::InvalidInput => ErrorCode::InvalidInput,
                ToolErrorKind::InvalidPath => ErrorCode::InvalidPath,
                ToolErrorKind::NotFound => ErrorCode::FileNotFound,
                ToolErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
                ToolErrorKind::IsDirectory => ErrorCode::IsDirectory,
                ToolErrorKind::Conflict => ErrorCode::Conflict,
                ToolErrorKind::TooLarge => ErrorCode::TooLarge,
                ToolErrorKind::Other => ErrorCode::ToolError,
            },
            CallError::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            CallError::MemoryExceeded { .. } => ErrorCode::MemoryExceeded,
            CallError::ResultTooLarge { .. } => ErrorCode::ResultTooLarge,
            // The tool is broken, not the worker: say what happened so its author can fix it.
            CallError::Crashed { .. } => ErrorCode::ToolCrashed,
            CallError::InvalidResult { .. } => ErrorCode::InvalidResult,
            CallError::Host { .. } => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<hearth_git::GitError> for ApiError {
    fn from(e: hearth_git::GitError) -> Self {
        use hearth_git::GitError as G;
        let code = match &e {
            G::InvalidInput(_) => ErrorCode::InvalidGitRequest,
            G::RemoteNotAllowed(_) => ErrorCode::RemoteNotAllowed,
            G::UnknownRemote(_) => ErrorCode::RemoteNotFound,
            G::UnknownRevision(_) => ErrorCode::RevisionNotFound,
            G::UnknownRemoteBranch(_) => ErrorCode::RemoteBranchNotFound,
            G::MergeInProgress => ErrorCode::MergeInProgress,
            G::NoMergeInProgress => ErrorCode::NoMergeInProgress,
            G::UnresolvedConflicts(files) => {
                return Self::new(ErrorCode::UnresolvedConflicts, e.to_string())
                    .with_details(json!({ "files": files }));
            }
            G::UncommittedChanges(files) => {
                return Self::new(ErrorCode::UncommittedChanges, e.to_string())
                    .with_details(json!({ "files": files }));
            }
            // The remote's failure, not ours; the message is already free of credentials.
            G::Remote { .. } => ErrorCode::RemoteFailed,
            G::TimedOut { .. } => ErrorCode::GitTimeout,
            G::TooDeep { .. } => ErrorCode::TooDeep,
            G::PathTooLong { .. } => ErrorCode::PathTooLong,
            G::Internal { .. } | G::HelperFailed(_) => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        Self::new(ErrorCode::InvalidPath, e.to_string())
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        let code = match &e {
            SnapshotError::BadReference(_) => ErrorCode::InvalidSnapshotReference,
            SnapshotError::NotFound(_) => ErrorCode::SnapshotNotFound,
            SnapshotError::Corrupt { .. } => ErrorCode::SnapshotCorrupt,
            SnapshotError::TooDeep { .. } => ErrorCode::TooDeep,
            SnapshotError::TooLarge { .. } => ErrorCode::SnapshotTooLarge,
            SnapshotError::Capture { .. } => ErrorCode::CaptureFailed,
            SnapshotError::Store(_) => ErrorCode::StoreUnavailable,
            SnapshotError::Changed { .. } => ErrorCode::SessionBusy,
            SnapshotError::Config(_) | SnapshotError::Io(_) => return ApiError::internal(e),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<TakeError> for ApiError {
    fn from(e: TakeError) -> Self {
        match e {
            TakeError::Session(e) => e.into(),
            TakeError::Snapshot(e) => e.into(),
        }
    }
}
