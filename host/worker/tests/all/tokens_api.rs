//! Session tokens: each opens its own session's routes and nothing else, survives a restart,
//! and dies with a replacement or the session.

use reqwest::Method;
use serde_json::json;

use crate::support::{JsonCalls, TOKEN, Worker, assert_error};

#[tokio::test]
async fn a_session_token_opens_its_session_and_nothing_else() {
    let w = Worker::start().await;
    let mine = w.client.create_session(Some("mine")).await.unwrap();
    let other = w.client.create_session(Some("other")).await.unwrap();
    let token = mine.token.clone();
    assert!(token.starts_with("hst_"), "{token}");
    assert_ne!(token, other.token);
    // Said once: neither info nor the list repeats it.
    let (_, info) = w
        .raw(Method::GET, "/v1/sessions/mine", Some(TOKEN), None)
        .await;
    assert!(info.get("token").is_none(), "{info}");
    let (_, list) = w.raw(Method::GET, "/v1/sessions", Some(TOKEN), None).await;
    assert!(!list.to_string().contains(&token));

    let scoped = hearth_client::Client::new(&w.url, Some(token.clone()));
    scoped.session("mine").await.unwrap();
    scoped
        .call_tool(
            "mine",
            "write_file",
            json!({ "file_path": "/workspace/a.txt", "content": "a" }),
        )
        .await
        .unwrap();
    let ran = scoped
        .exec_json("mine", json!({ "command": "cat /workspace/a.txt" }))
        .await
        .unwrap();
    assert_eq!(ran["stdout"], "a");
    assert_eq!(
        scoped.get_file("mine", "/workspace/a.txt").await.unwrap(),
        b"a"
    );

    for (method, path, body) in [
        (Method::GET, "/v1/sessions/other", None),
        (
            Method::POST,
            "/v1/sessions/other/tools/ls",
            Some(br#"{"path": "/workspace"}"#.to_vec()),
        ),
        (Method::DELETE, "/v1/sessions/other", None),
        (Method::GET, "/v1/sessions", None),
        (Method::POST, "/v1/sessions", Some(b"{}".to_vec())),
        (Method::GET, "/v1/tools", None),
        (Method::GET, "/metrics", None),
        (Method::POST, "/v1/snapshots/gc", Some(b"{}".to_vec())),
        (Method::POST, "/v1/sessions/mine/token", None),
        (Method::GET, "/v1/sessions/%6Dine", None),
    ] {
        let answer = w.raw(method.clone(), path, Some(&token), body).await;
        assert_error(&answer, 403, "token_scope");
    }
    // The API-key header carries it as well; health needs no token at all.
    let by_key = reqwest::Client::new()
        .get(format!("{}/v1/sessions/mine", w.url))
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 200);
    let unknown = w
        .raw(
            Method::GET,
            "/v1/sessions/mine",
            Some("hst_not-a-token"),
            None,
        )
        .await;
    assert_error(&unknown, 401, "unauthorized");
    // Deleting the session with its own token is one of its routes; the token dies with it.
    scoped.delete_session("mine").await.unwrap();
    let gone = w
        .raw(Method::GET, "/v1/sessions/mine", Some(&token), None)
        .await;
    assert_error(&gone, 401, "unauthorized");
}

#[tokio::test]
async fn a_replaced_token_is_revoked_and_tokens_survive_a_restart() {
    let w = Worker::start().await;
    let first = w.client.create_session(Some("s")).await.unwrap().token;
    let second = w.client.replace_token("s").await.unwrap();
    assert_ne!(first, second);
    let old = w
        .raw(Method::GET, "/v1/sessions/s", Some(&first), None)
        .await;
    assert_error(&old, 401, "unauthorized");
    let w = w.restart().await;
    let (status, _) = w
        .raw(Method::GET, "/v1/sessions/s", Some(&second), None)
        .await;
    assert_eq!(status, 200);
    let missing = w
        .raw(Method::POST, "/v1/sessions/nobody/token", Some(TOKEN), None)
        .await;
    assert_error(&missing, 404, "session_not_found");
}
