//! The HTTP layer (v1): the router, the middleware around it, the extractors, the error mapping,
//! and one handler module per area. Services (sessions, exec, git, snapshots, files) know nothing
//! of HTTP; what their errors answer is decided here (`error`). `docs/openapi.json` documents
//! exactly these routes; a test fails when the two drift.

pub mod error;
mod exec;
pub mod extract;
mod files;
mod git;
mod health;
mod middleware;
pub mod serve;
mod sessions;
mod snapshots;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::App;
use error::ApiError;

/// The OpenAPI document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Most files one bulk upload or download may name.
pub const MAX_BULK_FILES: usize = 1_000;

/// The router with every route and middleware.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.config.max_body_bytes;
    Router::new()
        .route("/v1/health", get(health::health))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/metrics", get(health::metrics))
        .route("/v1/tools", get(health::list_tools))
        .route(
            "/v1/sessions",
            get(sessions::list_sessions).post(sessions::create_session),
        )
        .route(
            "/v1/sessions/{id}",
            get(sessions::session_info).delete(sessions::delete_session),
        )
        .route("/v1/sessions/{id}/token", post(sessions::replace_token))
        .route("/v1/sessions/{id}/tools/{name}", post(tools::call_tool))
        .route(
            "/v1/sessions/{id}/files/{*path}",
            get(files::get_file).put(files::put_file),
        )
        .route("/v1/sessions/{id}/exec", post(exec::exec))
        .route("/v1/sessions/{id}/exec/stream", post(exec::exec_stream))
        .route("/v1/sessions/{id}/upload", post(files::upload))
        .route("/v1/sessions/{id}/download", post(files::download))
        .route(
            "/v1/sessions/{id}/snapshots",
            get(snapshots::list).post(snapshots::take),
        )
        .route(
            "/v1/sessions/{id}/export",
            get(snapshots::export_download).post(snapshots::export_to_store),
        )
        .route("/v1/sessions/{id}/exports", get(snapshots::list_exports))
        .route(
            "/v1/sessions/{id}/exports/{name}",
            get(snapshots::download_export),
        )
        .route("/v1/snapshots/gc", post(snapshots::collect_garbage))
        .route("/v1/sessions/{id}/git/status", get(git::status))
        .route("/v1/sessions/{id}/git/log", get(git::log))
        .route("/v1/sessions/{id}/git/diff", get(git::diff))
        .route("/v1/sessions/{id}/git/commit", post(git::commit))
        .route("/v1/sessions/{id}/git/push", post(git::push))
        .route("/v1/sessions/{id}/git/pull", post(git::pull))
        .route(
            "/v1/sessions/{id}/git/merge/continue",
            post(git::merge_continue),
        )
        .route("/v1/sessions/{id}/git/merge/abort", post(git::merge_abort))
        .route("/v1/sessions/{id}/git/reset", post(git::reset))
        .route("/v1/sessions/{id}/git/remotes", post(git::set_remote))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                "no such route; see /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(app.clone(), middleware::read_whole_body))
        .layer(from_fn_with_state(app.clone(), middleware::authenticate))
        .layer(from_fn_with_state(app.clone(), middleware::observe))
        .with_state(app)
}
