//! Error answers: `{"error": {"code", "message", "details"?}}`, and every code with the one
//! status it is answered with. The worker builds its errors from [`ErrorCode`], so a code cannot
//! be answered with another status than the document says, nor be answered undocumented.

use serde::{Deserialize, Serialize};

/// An error answer's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorInfo {
    /// What a program branches on.
    pub code: ErrorCode,
    /// For a person. A 5xx message says only that the worker failed; the cause is in its log.
    pub message: String,
    /// What a caller needs to act on the error beyond its message (the files of a merge
    /// conflict, a session's usage at its quota, the last snapshot of an expired session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Declares [`ErrorCode`] with each code's status, its wire name and what it means, once.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $status:literal, $name:literal;)*) => {
        /// Every error code the API answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The HTTP status this code is always answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }

            /// The code as it is on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// What the code means, for a reader of the document.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc),*).trim_ascii(),)*
                }
            }
        }
    };
}

error_codes! {
    // ---- Any request
    /// No token, or a token that opens nothing.
    Unauthorized = 401, "unauthorized";
    /// A session's token used outside that session's routes.
    TokenScope = 403, "token_scope";
    /// Too many requests for this token; `Retry-After` says when to try again.
    RateLimited = 429, "rate_limited";
    /// No such route.
    RouteNotFound = 404, "route_not_found";
    /// The route does not take this method.
    MethodNotAllowed = 405, "method_not_allowed";
    /// The body is not JSON (a body of only whitespace is not either).
    InvalidJson = 400, "invalid_json";
    /// The body is JSON of the wrong shape, or a request that cannot be done as asked.
    InvalidRequest = 400, "invalid_request";
    /// The body could not be read.
    InvalidBody = 400, "invalid_body";
    /// The body is larger than the worker's `max_body_bytes`.
    BodyTooLarge = 413, "body_too_large";
    /// A path segment or view path that is not valid.
    InvalidPath = 400, "invalid_path";
    /// A query string that is not valid.
    InvalidQuery = 400, "invalid_query";
    /// The worker failed; its log has the cause under the request's id.
    InternalError = 500, "internal_error";
    /// The worker is draining (stopping): it takes no more work; its sessions' last snapshots
    /// are being taken. Another worker serves them from those.
    Draining = 503, "draining";
    // ---- Sessions and storage
    /// A session id must be 1–64 ASCII letters, digits, `-` or `_`, starting with a letter or digit.
    InvalidSessionId = 400, "invalid_session_id";
    /// A session with this id exists.
    SessionExists = 409, "session_exists";
    /// No such session.
    SessionNotFound = 404, "session_not_found";
    /// The session expired after being idle; `details.snapshot` brings it back.
    SessionExpired = 404, "session_expired";
    /// Another worker took the session over (its ownership moved on in the snapshot store);
    /// this worker's copy is parked, not served. `details` says who and at which epoch.
    SessionMoved = 404, "session_moved";
    /// The session's owner (another worker of the fleet) did not answer the forwarded request,
    /// and its lease has not lapsed yet; `details.retry_after_ms` says when another worker may
    /// take the session over.
    OwnerUnreachable = 503, "owner_unreachable";
    /// The worker holds its maximum number of sessions.
    SessionLimit = 507, "session_limit";
    /// The session kept changing while its last snapshot was taken; it is kept.
    SessionBusy = 409, "session_busy";
    /// A quota beyond the worker's maximum, or one it cannot make.
    InvalidQuota = 400, "invalid_quota";
    /// The worker's disk is below its floor: writes wait until room comes back.
    StorageFull = 507, "storage_full";
    /// The session is at its quota; `details` has its usage.
    QuotaExceeded = 507, "quota_exceeded";
    // ---- Tools
    /// No tool by this name.
    UnknownTool = 404, "unknown_tool";
    /// The arguments do not match the tool's input schema.
    InvalidArguments = 400, "invalid_arguments";
    /// The tool refused its input.
    InvalidInput = 422, "invalid_input";
    /// No such file.
    FileNotFound = 404, "file_not_found";
    /// The view does not allow this (a read-only path, a path outside the view).
    PermissionDenied = 403, "permission_denied";
    /// A directory where a file was expected.
    IsDirectory = 422, "is_directory";
    /// The tool's precondition failed (an edit's text is not there, or is there twice).
    Conflict = 409, "conflict";
    /// A file or request larger than allowed.
    TooLarge = 413, "too_large";
    /// The tool failed for a reason of its own.
    ToolError = 422, "tool_error";
    /// The tool ran past its deadline.
    DeadlineExceeded = 504, "deadline_exceeded";
    /// The tool used more memory than it may.
    MemoryExceeded = 507, "memory_exceeded";
    /// The tool trapped.
    ToolCrashed = 502, "tool_crashed";
    /// The tool's result is larger than allowed.
    ResultTooLarge = 413, "result_too_large";
    /// The tool's result is not what its contract says.
    InvalidResult = 502, "invalid_result";
    // ---- The tool registry
    /// The route needs the operator's token (`tools.operator_token`); without one configured,
    /// installs are off.
    OperatorOnly = 403, "operator_only";
    /// The component or its manifest cannot be loaded (not a `hearth:tool` component, a schema
    /// outside the subset, a manifest asking beyond the operator's grant); the old version
    /// keeps serving.
    InvalidTool = 400, "invalid_tool";
    /// A built-in tool, or one from the operator's tools directory: not replaced or removed
    /// through the API.
    ToolProtected = 409, "tool_protected";
    // ---- Files
    /// More files in one bulk upload or download than allowed.
    TooManyFiles = 413, "too_many_files";
    // ---- Exec
    /// Exec is off on this worker (its jail could not be proved); `/v1/health` says why.
    ExecUnavailable = 503, "exec_unavailable";
    /// The exec request is not valid.
    InvalidExec = 400, "invalid_exec";
    /// The session's directories cannot be prepared for a run.
    WorkspaceUnusable = 409, "workspace_unusable";
    /// The jail refused this session's state.
    JailRefused = 409, "jail_refused";
    /// No process by this id in the session.
    ProcessNotFound = 404, "process_not_found";
    /// The session runs as many programs as it may (`exec.max_background`, `exec.max_runs`).
    ProcessLimit = 429, "process_limit";
    /// The process's stdin is closed (it ended, or it was closed).
    StdinClosed = 409, "stdin_closed";
    // ---- Ports and network
    /// Nothing in the session listens on this port.
    PortUnreachable = 502, "port_unreachable";
    /// A network allow-list entry that is not `host[:port]`, or one the operator's
    /// `[egress] allow` does not cover.
    InvalidNetwork = 400, "invalid_network";
    // ---- git
    /// A git request that is not valid (an author with `<`, a revision too long, …).
    InvalidGitRequest = 400, "invalid_git_request";
    /// The remote is not allowed by the worker's policy.
    RemoteNotAllowed = 403, "remote_not_allowed";
    /// No remote by this name.
    RemoteNotFound = 404, "remote_not_found";
    /// No such revision.
    RevisionNotFound = 404, "revision_not_found";
    /// The remote has no such branch.
    RemoteBranchNotFound = 404, "remote_branch_not_found";
    /// A merge is in progress: continue or abort it first.
    MergeInProgress = 409, "merge_in_progress";
    /// No merge is in progress.
    NoMergeInProgress = 409, "no_merge_in_progress";
    /// Files still have conflict markers; `details.files` names them.
    UnresolvedConflicts = 409, "unresolved_conflicts";
    /// Uncommitted changes are in the way; `details.files` names them.
    UncommittedChanges = 409, "uncommitted_changes";
    /// The remote's changes conflict with the session's; `details.conflicts` names the files.
    MergeConflict = 409, "merge_conflict";
    /// The remote refused the push; `details.reason` says why.
    PushRejected = 409, "push_rejected";
    /// The remote failed (unreachable, refused the credentials, …).
    RemoteFailed = 502, "remote_failed";
    /// git ran past the worker's deadline.
    GitTimeout = 504, "git_timeout";
    /// The work tree is nested deeper than allowed.
    TooDeep = 422, "too_deep";
    /// A path in the work tree is longer than allowed.
    PathTooLong = 422, "path_too_long";
    // ---- Snapshots and exports
    /// A snapshot reference that is not `<session>` or `<session>/<name>`.
    InvalidSnapshotReference = 400, "invalid_snapshot_reference";
    /// No such snapshot.
    SnapshotNotFound = 404, "snapshot_not_found";
    /// The snapshot's objects are damaged.
    SnapshotCorrupt = 422, "snapshot_corrupt";
    /// The session holds more than a snapshot may (files past the quota).
    SnapshotTooLarge = 422, "snapshot_too_large";
    /// A file changed or could not be read while the snapshot was taken.
    CaptureFailed = 422, "capture_failed";
    /// The object store failed or is unreachable.
    StoreUnavailable = 503, "store_unavailable";
    /// The session has no export by this name.
    ExportNotFound = 404, "export_not_found";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_serde_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap_or_default();
            assert_eq!(json, code.as_str(), "{code:?}");
            assert!(!code.meaning().is_empty(), "{code:?} says what it means");
        }
    }
}
