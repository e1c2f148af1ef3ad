//! Tools: what a worker offers, and calling one in a session.

use serde::{Deserialize, Serialize};

/// A tool, as `GET /v1/tools` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    /// The JSON Schema its arguments must match.
    pub input_schema: serde_json::Value,
    /// Whether the tool only reads (it then shares the session with other readers).
    pub read_only: bool,
}

/// `POST /v1/sessions/{id}/tools/{name}`: what the tool returned (its output schema is the
/// tool's own; `GET /v1/tools` describes the tool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolAnswer {
    pub result: serde_json::Value,
}

/// `GET /v1/tools/{name}`: a tool as the operator sees it — what agents see, and its version,
/// origin, policy and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolDetail {
    #[serde(flatten)]
    pub tool: ToolInfo,
    /// The SHA-256 of the component, in hex.
    pub version: String,
    /// `builtin`, `installed`, or the operator's tools directory it was read from.
    pub source: String,
    pub limits: ToolLimits,
    /// The view areas the tool sees, each `read-only` or `read-write` (null: the whole view).
    pub mounts: Option<std::collections::BTreeMap<String, String>>,
    /// The environment variables it is given, by name (their values are never shown).
    pub env: Vec<String>,
    /// The hosts its HTTP requests may go to (`host:port`); empty: none.
    pub network: Vec<String>,
    /// When it was loaded, in ms since the epoch.
    pub loaded_at_ms: u64,
    /// How long loading it took (compiling, or reading the compiled artifact; linking; asking
    /// it what it is).
    pub load_ms: u64,
}

/// What one call of a tool may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolLimits {
    pub deadline_ms: u64,
    pub memory_bytes: u64,
    pub result_bytes: u64,
}

/// `PUT /v1/tools/{name}`: the tool now serving, and the version it replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolInstalled {
    pub tool: ToolDetail,
    /// The version replaced (null for a new tool).
    pub previous_version: Option<String>,
}

/// `DELETE /v1/tools/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolRemoved {
    pub name: String,
    /// The version that was removed.
    pub version: String,
}

/// A tool that could not be loaded when the worker started: skipped, not fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedTool {
    /// Where it came from (`builtin:<name>`, its directory).
    pub source: String,
    pub error: String,
}
