//! End-to-end tests of the worker through a real listening socket (and, where the process itself
//! matters, the real `hearth` binary).

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod support;

mod api_contract;
mod binary;
mod boundary;
mod bounded;
mod drain;
mod exec_api;
mod files_api;
mod fleet;
mod fleet_binary;
mod fleet_tools;
mod git_api;
mod live_session;
mod mcp_api;
mod ownership;
mod quota;
mod sessions_api;
mod snapshots_api;
mod tokens_api;
mod tools_api;
mod tools_registry;
