//! What a worker is: its health and the tools it offers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
    /// How many tools the worker offers.
    pub tools: usize,
    /// How many sessions it holds.
    pub sessions: usize,
    /// Each confinement layer and its state (`enforced…`, or why not); `exec` says
    /// `unavailable: <why>` when programs cannot run here.
    pub jail: BTreeMap<String, String>,
    /// Tools that failed to load at start (the worker serves without them).
    pub tools_failed: Vec<crate::tools::FailedTool>,
}

/// `GET /v1/ready`: whether this worker takes work. It stops as soon as it drains (on SIGTERM):
/// the answer is then 503 `draining`, so a load balancer sends nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready {
    pub ready: bool,
}
