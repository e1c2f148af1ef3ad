//! Every failure the HTTP API can answer with, in one place:
//! `{"error": {"code": "<snake_case>", "message": "<for a person>"}}` with a fitting status.
//!
//! 4xx answers carry the message meant for the caller. 5xx answers say only that something
//! went wrong on the worker; the cause is logged with the request id instead, so internal paths
//! and errors do not leak to agents.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_runtime::{CallError, ResolveError, ToolErrorKind};
use serde_json::json;

use crate::sessions::{Session, SessionError};
use crate::snapshots::TakeError;
use crate::storage::StorageError;
use hearth_snapshots::SnapshotError;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What a caller needs to act on the error beyond its message (e.g. the files of a merge
    /// conflict), answered as `error.details`.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A fault of the worker, not of the request: logged in full, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the worker failed to serve this request; see its logs",
        )
    }

    /// A write that did not fit the session's quota: 507 with what the volume holds and can
    /// hold.
    pub fn quota_exceeded(usage: &hearth_volume::Usage) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "quota_exceeded",
            format!(
                "the session is at its quota: {} of {} bytes, {} of {} inodes used; delete \
                 files to make room",
                usage.bytes_used, usage.bytes_limit, usage.inodes_used, usage.inodes_limit
            ),
        )
        .with_details(crate::storage::usage_json(usage))
    }

    /// What a failed write in `session` answers: `quota_exceeded` when the session has a
    /// volume and either it is at its limit or the failure was for space (a writer that
    /// cleaned up after itself: a tool, libgit2); otherwise the error as it was.
    pub fn or_quota(self, session: &Session) -> Self {
        let for_space = self.code == "storage_full" || says_no_space(&self.message);
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
    let for_space = for_space || answer.code == "storage_full";
    answer.quota_if(usage, for_space)
}

impl ApiError {
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(details) = self.details {
            body["error"]["details"] = details;
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        // Lets the logging middleware count errors by code without parsing bodies.
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The error code of an answer, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::InvalidId(_) => Self::bad_request("invalid_session_id", message),
            SessionError::Exists(_) => Self::new(StatusCode::CONFLICT, "session_exists", message),
            SessionError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "session_not_found", message)
            }
            SessionError::Expired { snapshot, .. } => {
                Self::new(StatusCode::NOT_FOUND, "session_expired", message)
                    .with_details(json!({ "snapshot": snapshot }))
            }
            SessionError::Full(_) => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, "session_limit", message)
            }
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
            StorageError::InvalidQuota(_) => Self::bad_request("invalid_quota", message),
            StorageError::Full { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, "storage_full", message)
            }
            StorageError::Volume(_) | StorageError::Unavailable(_) => Self::internal(message),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let code = e.code();
        let message = e.to_string();
        let status = match &e {
            CallError::UnknownTool(_) => StatusCode::NOT_FOUND,
            CallError::InvalidArguments { .. } => StatusCode::BAD_REQUEST,
            CallError::Tool { kind, .. } => match kind {
                ToolErrorKind::InvalidPath => StatusCode::BAD_REQUEST,
                ToolErrorKind::NotFound => StatusCode::NOT_FOUND,
                ToolErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                ToolErrorKind::Conflict => StatusCode::CONFLICT,
                ToolErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ToolErrorKind::InvalidInput | ToolErrorKind::IsDirectory | ToolErrorKind::Other => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
            },
            CallError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::MemoryExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
            CallError::ResultTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // The tool is broken, not the worker: say what happened so its author can fix it.
            CallError::Crashed { .. } | CallError::InvalidResult { .. } => StatusCode::BAD_GATEWAY,
            CallError::Host { .. } => return Self::internal(message),
        };
        Self::new(status, code, message)
    }
}

impl From<hearth_git::GitError> for ApiError {
    fn from(e: hearth_git::GitError) -> Self {
        use hearth_git::GitError as G;
        let (code, message) = (e.code(), e.to_string());
        let status = match &e {
            G::InvalidInput(_) => StatusCode::BAD_REQUEST,
            G::RemoteNotAllowed(_) => StatusCode::FORBIDDEN,
            G::UnknownRemote(_) | G::UnknownRevision(_) | G::UnknownRemoteBranch(_) => {
                StatusCode::NOT_FOUND
            }
            G::MergeInProgress | G::NoMergeInProgress => StatusCode::CONFLICT,
            G::UnresolvedConflicts(files) | G::UncommittedChanges(files) => {
                return Self::new(StatusCode::CONFLICT, code, message)
                    .with_details(json!({ "files": files }));
            }
            // The remote's failure, not ours; the message is already free of credentials.
            G::Remote { .. } => StatusCode::BAD_GATEWAY,
            G::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            G::TooDeep { .. } | G::PathTooLong { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            G::Internal(_) | G::HelperFailed(_) => return Self::internal(message),
        };
        Self::new(status, code, message)
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        Self::bad_request("invalid_path", e.to_string())
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        let status = match &e {
            SnapshotError::BadReference(_) => StatusCode::BAD_REQUEST,
            SnapshotError::NotFound(_) => StatusCode::NOT_FOUND,
            SnapshotError::Corrupt { .. }
            | SnapshotError::TooDeep { .. }
            | SnapshotError::TooLarge { .. }
            | SnapshotError::Capture { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SnapshotError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            SnapshotError::Config(_) | SnapshotError::Io(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.code(), e.to_string())
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
