//! MCP's boundaries on the real HTTP stack (the SDK tests in `scripts/mcp.sh` cover the protocol):
//! a session's token opens its own session's endpoint and no other's, and a `Host` the worker
//! was not told to answer (DNS rebinding) is refused.

use serde_json::json;

use crate::support::{TOKEN, Worker};

async fn initialize(w: &Worker, session: &str, token: &str, host: Option<&str>) -> (u16, String) {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": "test", "version": "1" } } });
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/sessions/{session}/mcp", w.url))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_session_token_opens_its_own_endpoint_only() {
    let w = Worker::start().await;
    let mine = w.client.create_session(Some("mine")).await.unwrap();
    w.client.create_session(Some("other")).await.unwrap();
    let (status, answer) = initialize(&w, "mine", &mine.token, None).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"protocolVersion\""), "{answer}");
    let (status, answer) = initialize(&w, "other", &mine.token, None).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("token_scope"), "{answer}");
}

#[tokio::test]
async fn a_host_it_does_not_answer_is_refused() {
    let w = Worker::start().await;
    w.client.create_session(Some("s1")).await.unwrap();
    let (status, answer) = initialize(&w, "s1", TOKEN, Some("evil.example:80")).await;
    assert!((400..500).contains(&status), "{status}: {answer}");
    assert!(!answer.contains("\"protocolVersion\""), "{answer}");
}
