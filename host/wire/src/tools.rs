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
