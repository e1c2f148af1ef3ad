//! The HTTP layer (v1): the router, the middleware around it, the extractors, the error mapping,
//! and one handler module per area. Services (sessions, exec, git, snapshots, files) know nothing
//! of HTTP; what their errors answer is decided here (`error`). The OpenAPI document is made
//! from these routes and the wire types (`docs`); `docs/openapi.json` is that document, and a
//! test fails when the two differ.

mod docs;
mod door;
pub mod error;
mod exec;
pub mod extract;
mod files;
mod git;
mod health;
mod mcp;
mod middleware;
mod ports;
mod processes;
mod relay;
pub mod serve;
mod sessions;
mod snapshots;
mod tools;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use hearth_wire::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use error::ApiError;
pub use tools::tool_detail;

/// Most files one bulk upload or download may name.
pub const MAX_BULK_FILES: usize = 1_000;

/// Every route, with what the document says of it.
fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(docs::base())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(health::openapi))
        .routes(routes!(health::metrics))
        .routes(routes!(tools::list_tools))
        .routes(routes!(
            tools::get_tool,
            tools::install_tool,
            tools::remove_tool
        ))
        .routes(routes!(sessions::list_sessions, sessions::create_session))
        .routes(routes!(sessions::get_session, sessions::delete_session))
        .routes(routes!(sessions::replace_token))
        .routes(routes!(tools::call_tool))
        .routes(routes!(files::get_file, files::put_file))
        .routes(routes!(files::upload))
        .routes(routes!(files::download))
        .routes(routes!(exec::exec))
        .routes(routes!(exec::exec_stream))
        .routes(routes!(processes::list_processes))
        .routes(routes!(processes::get_process, processes::kill_process))
        .routes(routes!(processes::read_output))
        .routes(routes!(processes::write_stdin))
        .routes(routes!(processes::signal_process))
        .routes(routes!(snapshots::take_snapshot, snapshots::list_snapshots))
        .routes(routes!(
            snapshots::export_download,
            snapshots::export_to_store
        ))
        .routes(routes!(snapshots::list_exports))
        .routes(routes!(snapshots::download_export))
        .routes(routes!(snapshots::collect_garbage))
        .routes(routes!(git::git_status))
        .routes(routes!(git::git_log))
        .routes(routes!(git::git_diff))
        .routes(routes!(git::git_commit))
        .routes(routes!(git::git_push))
        .routes(routes!(git::git_pull))
        .routes(routes!(git::git_merge_continue))
        .routes(routes!(git::git_merge_abort))
        .routes(routes!(git::git_reset))
        .routes(routes!(git::git_set_remote))
        .routes(routes!(ports::forward))
}

/// The route a port's requests take; its bodies are streamed, never read whole first.
pub(crate) const PORT_ROUTE: &str = "/v1/sessions/{id}/ports/{port}/{*path}";

/// The OpenAPI document of this API, made from the routes and the wire types.
pub fn openapi() -> serde_json::Value {
    let (_, api) = routes().split_for_parts();
    docs::finish(api)
}

/// The document as served at `/v1/openapi.json` and kept in `docs/openapi.json`: made once.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut text = serde_json::to_string_pretty(&openapi()).unwrap_or_default();
        text.push('\n');
        text
    });
    &DOCUMENT
}

/// The router with every route and middleware.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.config.max_body_bytes;
    let (routes, _) = routes().split_for_parts();
    routes
        .route_service("/v1/sessions/{id}/mcp", mcp::service(app.clone()))
        // Every method, and the port's root with or without its slash: the document lists GET.
        .route(PORT_ROUTE, axum::routing::any(ports::forward))
        .route(
            "/v1/sessions/{id}/ports/{port}",
            axum::routing::any(ports::forward),
        )
        .route(
            "/v1/sessions/{id}/ports/{port}/",
            axum::routing::any(ports::forward),
        )
        .fallback(|| async {
            ApiError::new(
                ErrorCode::RouteNotFound,
                "no such route; see /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method; see /v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(app.clone(), middleware::read_whole_body))
        .layer(from_fn_with_state(app.clone(), middleware::authenticate))
        .layer(from_fn_with_state(app.clone(), door::door))
        .layer(from_fn_with_state(app.clone(), middleware::observe))
        .with_state(app)
}
