//! Auth and the OpenAPI document: every documented route exists, every route is documented.

use reqwest::Method;
use serde_json::Value;

use crate::support::{TOKEN, Worker, assert_error};

/// Every operation, and whether the document says it needs a token (`security: [{}]` is the
/// one way it says none is needed).
fn documented_with_security() -> Vec<(String, String, bool)> {
    let doc: Value = serde_json::from_str(hearth::http::openapi_json()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let open = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|r| r.is_empty()))
            });
            ops.push((method.to_uppercase(), path.clone(), !open));
        }
    }
    ops.sort();
    ops
}

/// `docs/openapi.json` is the document the code makes, byte for byte. To accept a change to
/// the contract: `cargo run -p hearth --bin hearth -- openapi > docs/openapi.json` (or run this test with
/// `HEARTH_BLESS=1`), and read the diff.
#[test]
fn the_committed_document_is_the_generated_one() {
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = hearth::http::openapi_json();
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(committed, generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/openapi.json differs from the generated document; regenerate it with \
         `cargo run -p hearth --bin hearth -- openapi > docs/openapi.json` and review the diff"
    );
}

/// Every error code the API has is answered by some operation of the document, and every
/// operation says what it answers on success.
#[test]
fn every_error_code_is_documented() {
    let doc: Value = serde_json::from_str(hearth::http::openapi_json()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {operation}: no success answer"
            );
            for answer in responses.values() {
                let codes = answer.pointer(
                    "/content/application~1json/schema/properties/error/properties/code/enum",
                );
                for code in codes.and_then(Value::as_array).into_iter().flatten() {
                    seen.insert(code.as_str().unwrap().to_owned());
                }
            }
        }
    }
    for code in hearth_wire::ErrorCode::ALL {
        let global = matches!(
            code,
            hearth_wire::ErrorCode::RouteNotFound | hearth_wire::ErrorCode::MethodNotAllowed
        );
        assert!(
            global || seen.contains(code.as_str()),
            "`{code}` is answered by no documented operation"
        );
    }
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
    for (method, path, guarded) in documented_with_security() {
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
        if !guarded {
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
        serde_json::from_str::<Value>(hearth::http::openapi_json()).unwrap()
    );
}
