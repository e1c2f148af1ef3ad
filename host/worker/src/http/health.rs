//! What the worker is: health, the contract, metrics, the tools it offers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::OPENAPI;
use crate::App;

pub(super) async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    let mut jail = serde_json::Map::new();
    jail.insert("wasm_tools".into(), "enforced".into());
    match &app.exec.unavailable {
        Some(why) => {
            jail.insert("exec".into(), format!("unavailable: {why}").into());
        }
        None => {
            for (layer, state) in &app.exec.layers {
                jail.insert(layer.clone(), state.clone().into());
            }
        }
    }
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "tools": app.runtime.tools().count(),
        "sessions": app.sessions.len(),
        "jail": jail,
    }))
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(app.sessions.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(super) async fn list_tools(State(app): State<Arc<App>>) -> Json<Value> {
    let tools: Vec<Value> = app
        .runtime
        .tools()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "input_schema": t.input_schema,
                "read_only": t.read_only,
            })
        })
        .collect();
    Json(Value::Array(tools))
}
