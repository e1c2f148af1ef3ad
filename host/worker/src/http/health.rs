//! What the worker is: health, the contract, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hearth_wire::ErrorCode;
use hearth_wire::health::{Health, Ready};
use hearth_wire::tools::FailedTool;

use crate::app::App;

/// Liveness, version and the state of each confinement layer.
///
/// The one route that needs no token.
#[utoipa::path(get, path = "/v1/health", tag = "worker", security(()),
    responses((status = 200, description = "The worker is up.", body = Health)))]
pub(super) async fn health(State(app): State<Arc<App>>) -> Json<Health> {
    let mut jail = std::collections::BTreeMap::new();
    jail.insert("wasm_tools".to_owned(), "enforced".to_owned());
    match &app.exec.unavailable {
        Some(why) => {
            jail.insert("exec".to_owned(), format!("unavailable: {why}"));
        }
        None => jail.extend(app.exec.layers.clone()),
    }
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        tools: app.runtime.tool_count(),
        sessions: app.sessions.len(),
        jail,
        tools_failed: app
            .runtime
            .failed()
            .iter()
            .map(|f| FailedTool {
                source: f.source.clone(),
                error: f.error.clone(),
            })
            .collect(),
    })
}

/// Whether this worker takes work (a load balancer's readiness probe).
///
/// No token needed. 503 `draining` from the moment the worker starts to stop (SIGTERM): it
/// then takes no more work, and its sessions' last snapshots are being taken.
#[utoipa::path(get, path = "/v1/ready", tag = "worker", security(()),
    responses((status = 200, description = "The worker takes work.", body = Ready)),
    extensions(("x-errors" = json!([ErrorCode::Draining]))))]
pub(super) async fn ready(
    State(app): State<Arc<App>>,
) -> Result<Json<Ready>, super::error::ApiError> {
    if app.draining.load(std::sync::atomic::Ordering::Acquire) {
        return Err(super::error::ApiError::new(
            ErrorCode::Draining,
            "this worker is draining (stopping)",
        ));
    }
    Ok(Json(Ready { ready: true }))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "worker",
    responses((status = 200, description = "The OpenAPI document of this API.",
        body = serde_json::Value)))]
pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json(),
    )
        .into_response()
}

/// Prometheus metrics: requests, latency histograms per route and per tool, errors by code,
/// live sessions.
#[utoipa::path(get, path = "/metrics", tag = "worker",
    responses((status = 200, description = "The Prometheus text format.",
        content_type = "text/plain", body = String)))]
pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = app.metrics.render(app.sessions.len());
    if let Some(fleet) = &app.fleet {
        text.push_str(&fleet.render_metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
