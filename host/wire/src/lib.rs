//! The Hearth HTTP API (v1), as types: every request body, query and answer the worker takes or
//! gives, and every error code it answers with.
//!
//! This crate is the contract's one definition. The worker's handlers answer `Json<T>` of these
//! types, its OpenAPI document (`docs/openapi.json`, served at `/v1/openapi.json`) is generated
//! from them and the router, and the Rust client reads its answers into them. Nothing here knows
//! HTTP frameworks or the worker's services: only serde, and `utoipa::ToSchema` behind the
//! `openapi` feature (the worker turns it on; clients do not compile utoipa).
//!
//! Field docs are the schema's descriptions: write them for a client's author.

mod numbers;

pub mod error;
pub mod exec;
pub mod files;
pub mod git;
pub mod health;
pub mod processes;
pub mod sessions;
pub mod snapshots;
pub mod tools;

pub use error::{ErrorBody, ErrorCode, ErrorInfo};
