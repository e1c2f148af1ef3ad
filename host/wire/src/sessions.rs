//! Sessions: create, list, look at, delete, and their tokens.

use serde::{Deserialize, Serialize};

use crate::snapshots::SnapshotInfo;

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The session's id (1–64 ASCII letters, digits, `-` or `_`, starting with a letter or
    /// digit); without it, a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    )]
    pub id: Option<String>,
    /// Start from this snapshot (`<session>` for its latest, or `<session>/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_snapshot: Option<String>,
    /// Clone this remote into the workspace; without it, an empty repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// This session's limits, within the worker's maximum; without it, the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaRequest>,
    /// What the session's programs may reach; without it, what the worker allows every
    /// session (its `[egress] allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRequest>,
}

/// A session's network, asked for at create: at most what the worker allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// Where programs may connect through the worker's egress proxy: `host` (ports 80 and
    /// 443), `host:port`, `*.domain`; each within the worker's own list. Empty: nowhere.
    pub allow: Vec<String>,
}

/// What a session's programs may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionNetwork {
    /// The allow-list (`host:port` patterns); empty: programs reach nothing outside the
    /// session (its runs still reach each other on loopback).
    pub allow: Vec<String>,
    /// The proxy programs reach it through, set in their `HTTP_PROXY`/`HTTPS_PROXY`; null
    /// without egress.
    pub proxy: Option<String>,
    /// Background processes running now.
    pub running_processes: usize,
}

/// Where a new session's repository comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    /// A remote the worker's policy allows.
    pub url: String,
    /// The branch to check out; without it, the remote's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// A session's limits, asked for at create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotaRequest {
    /// Bytes the session's files (workspace, /tmp, git history) may take.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::numbers::whole"
    )]
    #[cfg_attr(feature = "openapi", schema(maximum = 9223372036854775807_u64))]
    pub bytes: Option<u64>,
    /// Files and directories the session may hold.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::numbers::whole"
    )]
    #[cfg_attr(feature = "openapi", schema(maximum = 9223372036854775807_u64))]
    pub inodes: Option<u64>,
}

/// A session, as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: String,
    /// RFC 3339, in milliseconds.
    pub created_at: String,
    /// The session's view: what tools and programs see, and whether they may write there.
    pub mounts: Vec<Mount>,
    pub tool_calls: u64,
    /// What the session's files take of its quota (null without a quota).
    pub quota: Option<QuotaUsage>,
    pub snapshot: SnapshotState,
    pub network: SessionNetwork,
    /// Which worker serves the session, and since which ownership epoch.
    pub owner: SessionOwner,
}

/// Which worker serves a session (see "Running a fleet" in the README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionOwner {
    /// The worker's id (`worker_id`).
    pub worker: String,
    /// The ownership epoch it holds (0: not claimed in the store yet).
    pub epoch: u64,
    /// Where the fleet reaches that worker (`fleet.advertise_url`); null outside a fleet.
    pub url: Option<String>,
}

/// A created session: its info, and its own token (said once: the worker keeps its hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedSession {
    #[serde(flatten)]
    pub session: SessionInfo,
    /// Opens this session's routes and nothing else.
    pub token: String,
}

/// A created session is a session, with its token beside it.
impl std::ops::Deref for CreatedSession {
    type Target = SessionInfo;

    fn deref(&self) -> &SessionInfo {
        &self.session
    }
}

/// A path of the session's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mount {
    /// Where tools and programs see it (`/workspace`, `/tmp`, …).
    pub path: String,
    pub writable: bool,
}

/// A session's usage of its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUsage {
    pub bytes_used: u64,
    pub bytes_limit: u64,
    pub inodes_used: u64,
    pub inodes_limit: u64,
}

/// A session's snapshots: the last durable one, whether changes wait, and the last error while
/// the store fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotState {
    pub last: Option<SnapshotInfo>,
    pub pending: bool,
    pub error: Option<String>,
}

/// `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `POST /v1/sessions/{id}/token`: the session's new token (the one it had is revoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionToken {
    pub id: String,
    pub token: String,
}

/// `DELETE /v1/sessions/{id}`'s query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Take a last snapshot first (default: the worker's `snapshots.snapshot_on_delete`).
    pub snapshot: Option<bool>,
}

/// `DELETE /v1/sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
    /// The last snapshot taken before the delete, when one was asked for.
    pub snapshot: Option<SnapshotInfo>,
}
