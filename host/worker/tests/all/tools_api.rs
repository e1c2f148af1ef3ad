//! Tool calls over HTTP: results, every kind of bad input, isolation, concurrency, limits.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TOKEN, Worker, assert_client_error, assert_error};

#[tokio::test]
async fn tools_are_listed_from_the_components() {
    let w = Worker::start().await;
    let tools = w.client.tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for builtin in [
        "delete",
        "edit_file",
        "glob",
        "grep",
        "ls",
        "read_file",
        "write_file",
    ] {
        assert!(names.contains(&builtin), "{names:?}");
    }
    let read = tools.iter().find(|t| t.name == "read_file").unwrap();
    assert!(read.read_only);
    assert_eq!(read.input_schema["required"], json!(["file_path"]));
}

#[tokio::test]
async fn write_read_edit_over_http() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let c = &w.client;
    c.call_tool(
        &s,
        "write_file",
        json!({ "file_path": "/workspace/app/main.py", "content": "x = 1\n" }),
    )
    .await
    .unwrap();
    let edit = c
        .call_tool(
            &s,
            "edit_file",
            json!({ "file_path": "/workspace/app/main.py", "old_string": "1", "new_string": "2" }),
        )
        .await
        .unwrap();
    assert_eq!(edit["occurrences"], 1);
    let read = c
        .call_tool(
            &s,
            "read_file",
            json!({ "file_path": "/workspace/app/main.py" }),
        )
        .await
        .unwrap();
    assert_eq!(read["content"], "x = 2\n");
    assert_eq!(
        std::fs::read_to_string(w.workspace(&s).join("app/main.py")).unwrap(),
        "x = 2\n"
    );
    let skills = c
        .call_tool(
            &s,
            "read_file",
            json!({ "file_path": "/workspace/skills/SKILL.md" }),
        )
        .await
        .unwrap();
    assert_eq!(skills["content"], "# shared skill\n");
}

#[tokio::test]
async fn bad_inputs_get_json_errors() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let tool = |name: &str| format!("/v1/sessions/{s}/tools/{name}");
    let post = |path: String, body: &str| {
        let body = body.as_bytes().to_vec();
        let w = &w;
        async move { w.raw(Method::POST, &path, Some(TOKEN), Some(body)).await }
    };
    assert_error(
        &post(tool("read_file"), "{not json").await,
        400,
        "invalid_json",
    );
    // Whitespace is not JSON (no body at all is: no arguments).
    assert_error(&post(tool("ls"), " \n\t ").await, 400, "invalid_json");
    assert_error(
        &post("/v1/sessions".into(), "   ").await,
        400,
        "invalid_json",
    );
    assert_error(
        &post(tool("read_file"), r#"{"file_path": 42}"#).await,
        400,
        "invalid_arguments",
    );
    assert_error(
        &post(
            tool("read_file"),
            r#"{"file_path": "/workspace/x", "offset": -3}"#,
        )
        .await,
        400,
        "invalid_arguments",
    );
    assert_error(
        &post(tool("read_file"), "[1, 2]").await,
        400,
        "invalid_arguments",
    );
    assert_error(&post(tool("nope"), "{}").await, 404, "unknown_tool");
    assert_error(
        &post("/v1/sessions/missing/tools/ls".into(), "{}").await,
        404,
        "session_not_found",
    );
    assert_error(
        &post(tool("read_file"), r#"{"file_path": "/workspace/none"}"#).await,
        404,
        "file_not_found",
    );
    assert_error(
        &post(tool("read_file"), r#"{"file_path": "relative.txt"}"#).await,
        400,
        "invalid_path",
    );
    assert_error(
        &post(
            tool("write_file"),
            r#"{"file_path": "/workspace/skills/x", "content": "x"}"#,
        )
        .await,
        403,
        "permission_denied",
    );
    assert_error(
        &post(tool("read_file"), r#"{"file_path": "/workspace"}"#).await,
        422,
        "is_directory",
    );
    assert_error(
        &post(
            tool("edit_file"),
            r#"{"file_path": "/workspace/skills/SKILL.md", "old_string": "a", "new_string": "b"}"#,
        )
        .await,
        403,
        "permission_denied",
    );
    assert_error(
        &post(tool("hostile"), r#"{"action": "spin"}"#).await,
        504,
        "deadline_exceeded",
    );
    assert_error(
        &post(tool("hostile"), r#"{"action": "hog"}"#).await,
        507,
        "memory_exceeded",
    );
    assert_error(
        &post(tool("hostile"), r#"{"action": "panic"}"#).await,
        502,
        "tool_crashed",
    );
    assert_error(
        &w.raw(Method::GET, &tool("ls"), Some(TOKEN), None).await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &w.raw(Method::GET, "/v1/nothing-here", Some(TOKEN), None)
            .await,
        404,
        "route_not_found",
    );
    // The worker is still fine after all that.
    w.client
        .call_tool(&s, "ls", json!({ "path": "/workspace" }))
        .await
        .unwrap();
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let w = Worker::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let big =
        json!({ "file_path": "/workspace/big.txt", "content": "x".repeat(100 * 1024) }).to_string();
    let answer = w
        .raw(
            Method::POST,
            &format!("/v1/sessions/{s}/tools/write_file"),
            Some(TOKEN),
            Some(big.into_bytes()),
        )
        .await;
    assert_error(&answer, 413, "body_too_large");
    assert!(!w.workspace(&s).join("big.txt").exists());
}

#[tokio::test]
async fn path_escapes_write_nothing_outside() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let before = hearth_tests::snapshot_tree(w.data.path());
    for path in [
        "/workspace/../../escape.txt",
        "/etc/hearth-escape",
        "/workspace/../state/session.json",
        "../x",
    ] {
        let result = w
            .client
            .call_tool(
                &s,
                "write_file",
                json!({ "file_path": path, "content": "pwned" }),
            )
            .await;
        assert_client_error(result, 400, "invalid_path");
    }
    std::os::unix::fs::symlink(w.data.path(), w.workspace(&s).join("out")).unwrap();
    let via_link = w
        .client
        .call_tool(
            &s,
            "write_file",
            json!({ "file_path": "/workspace/out/escape.txt", "content": "pwned" }),
        )
        .await;
    assert!(via_link.is_err(), "{via_link:?}");
    std::fs::remove_file(w.workspace(&s).join("out")).unwrap();
    assert_eq!(
        before,
        hearth_tests::snapshot_tree(w.data.path()),
        "nothing in the data dir changed"
    );
    assert!(!std::path::Path::new("/etc/hearth-escape").exists());
}

#[tokio::test]
async fn sessions_are_isolated() {
    let w = Worker::start().await;
    let a = w.client.create_session(Some("a")).await.unwrap().session.id;
    let b = w.client.create_session(Some("b")).await.unwrap().session.id;
    w.client
        .call_tool(
            &a,
            "write_file",
            json!({ "file_path": "/workspace/secret.txt", "content": "a only" }),
        )
        .await
        .unwrap();
    w.client
        .call_tool(
            &a,
            "write_file",
            json!({ "file_path": "/tmp/scratch", "content": "a only" }),
        )
        .await
        .unwrap();
    for path in [
        "/workspace/secret.txt",
        "/tmp/scratch",
        "/workspace/../../a/workspace/secret.txt",
    ] {
        let result = w
            .client
            .call_tool(&b, "read_file", json!({ "file_path": path }))
            .await;
        assert!(result.is_err(), "{path}: {result:?}");
    }
    assert!(
        w.client
            .get_file(&b, "/workspace/secret.txt")
            .await
            .is_err()
    );
    let grep = w
        .client
        .call_tool(&b, "grep", json!({ "pattern": "a only", "path": "/" }))
        .await
        .unwrap();
    assert_eq!(grep["matches"], json!([]));
}

#[tokio::test]
async fn concurrent_edits_in_one_session_are_never_lost() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let lines: String = (0..32).map(|i| format!("line-{i}: todo\n")).collect();
    w.client
        .call_tool(
            &s,
            "write_file",
            json!({ "file_path": "/workspace/list.txt", "content": lines }),
        )
        .await
        .unwrap();
    let edits = (0..32).map(|i| {
        let client = w.client.clone();
        let s = s.clone();
        tokio::spawn(async move {
            client
                .call_tool(
                    &s,
                    "edit_file",
                    json!({
                        "file_path": "/workspace/list.txt",
                        "old_string": format!("line-{i}: todo"),
                        "new_string": format!("line-{i}: done"),
                    }),
                )
                .await
        })
    });
    for edit in edits {
        edit.await.unwrap().unwrap();
    }
    let text = std::fs::read_to_string(w.workspace(&s).join("list.txt")).unwrap();
    assert_eq!(text.matches(": done").count(), 32, "{text}");
}

#[tokio::test]
async fn metrics_count_calls_errors_and_sessions() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    w.client.call_tool(&s, "ls", json!({})).await.unwrap();
    let _ = w
        .client
        .call_tool(
            &s,
            "read_file",
            json!({ "file_path": "/workspace/missing" }),
        )
        .await;
    let text = w.client.metrics().await.unwrap();
    assert!(
        text.contains("hearth_tool_calls_total{tool=\"ls\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hearth_tool_calls_total{tool=\"read_file\",outcome=\"file_not_found\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hearth_errors_total{code=\"file_not_found\"} 1"),
        "{text}"
    );
    assert!(text.contains("hearth_sessions_live 1"), "{text}");
    assert!(
        text.contains(
            "hearth_http_request_duration_seconds_bucket{route=\"/v1/sessions/{id}/tools/{name}\""
        ),
        "{text}"
    );
}

#[tokio::test]
async fn request_ids_are_returned() {
    let w = Worker::start().await;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/health", w.url))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = reqwest::get(format!("{}/v1/health", w.url)).await.unwrap();
    assert!(!response.headers()["x-request-id"].is_empty());
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["jail"].is_object());
}
