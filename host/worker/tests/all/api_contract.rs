//! Auth and the OpenAPI document: every documented route exists, every route is documented.

use reqwest::Method;
use serde_json::Value;

use crate::support::{TOKEN, Worker, assert_error};

fn documented() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(hearth::http::OPENAPI).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    ops.sort();
    ops
}

/// The routes the router registers, read from its source: `.route("/path", get(..).post(..))`.
fn routed() -> Vec<(String, String)> {
    let source = include_str!("../../src/http/mod.rs");
    let router = &source[source.find("pub fn router(").unwrap()..];
    let router = &router[..router.find(".fallback(").unwrap()];
    let mut ops = Vec::new();
    for chunk in router.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap().replace("{*", "{");
        for method in ["get", "post", "put", "delete", "patch"] {
            if chunk.contains(&format!("{method}(")) {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[test]
fn code_and_document_do_not_drift() {
    assert_eq!(routed(), documented());
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "s1")
        .replace("{name}", "ls")
        .replace("{path}", "workspace/x")
}

#[tokio::test]
async fn every_documented_route_is_served_and_guarded() {
    let w = Worker::start().await;
    w.client.create_session(Some("s1")).await.unwrap();
    for (method, path) in documented() {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let url = concrete(&path);
        let with_token = w
            .raw(method.clone(), &url, Some(TOKEN), Some(b"{}".to_vec()))
            .await;
        let code = with_token.1["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "route_not_found" && code != "method_not_allowed",
            "{method} {path}: {with_token:?}"
        );
        if path == "/v1/health" {
            continue;
        }
        assert_error(
            &w.raw(method.clone(), &url, None, None).await,
            401,
            "unauthorized",
        );
        assert_error(
            &w.raw(method.clone(), &url, Some("wrong-token"), None).await,
            401,
            "unauthorized",
        );
    }
}

#[tokio::test]
async fn the_served_document_is_the_file() {
    let w = Worker::start().await;
    let (status, served) = w
        .raw(Method::GET, "/v1/openapi.json", Some(TOKEN), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        served,
        serde_json::from_str::<Value>(hearth::http::OPENAPI).unwrap()
    );
}
