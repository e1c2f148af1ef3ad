//! The files API: raw bytes in and out, bulk upload/download with per-file outcomes.

use base64::Engine as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TOKEN, Worker, assert_client_error};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn raw_bytes_round_trip() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let put = w
        .client
        .put_file(&s, "/workspace/data/blob.bin", bytes.clone())
        .await
        .unwrap();
    assert!(put.created);
    assert_eq!(put.size, 1 << 20);
    assert_eq!(
        w.client
            .get_file(&s, "/workspace/data/blob.bin")
            .await
            .unwrap(),
        bytes
    );
    assert_eq!(
        std::fs::read(w.workspace(&s).join("data/blob.bin")).unwrap(),
        bytes
    );
    // The same file through a tool, at the same path.
    let read = w
        .client
        .call_tool(
            &s,
            "read_file",
            serde_json::json!({ "file_path": "/workspace/data/blob.bin" }),
        )
        .await;
    assert_client_error(read, 413, "too_large");
    let again = w
        .client
        .put_file(&s, "/workspace/data/blob.bin", b"small".to_vec())
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(
        w.client
            .get_file(&s, "/tmp/../workspace/data/blob.bin")
            .await
            .unwrap(),
        b"small"
    );
}

#[tokio::test]
async fn file_errors() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    assert_client_error(
        w.client.get_file(&s, "/workspace/missing").await,
        404,
        "file_not_found",
    );
    assert_client_error(
        w.client.get_file(&s, "/workspace").await,
        422,
        "is_directory",
    );
    assert_client_error(
        w.client.get_file(&s, "/etc/passwd").await,
        400,
        "invalid_path",
    );
    assert_client_error(
        w.client
            .put_file(&s, "/workspace/skills/SKILL.md", b"x".to_vec())
            .await,
        403,
        "permission_denied",
    );
    assert_eq!(
        std::fs::read_to_string(w.skills.path().join("SKILL.md")).unwrap(),
        "# shared skill\n"
    );
    // HTTP clients fold `..` away; a raw request makes sure the worker sees it.
    let escape = raw_http(
        &w.url,
        &format!("PUT /v1/sessions/{s}/files/workspace/../../escape"),
        b"x",
    )
    .await;
    assert_eq!(escape.0, 400, "{escape:?}");
    assert!(escape.1.contains("\"invalid_path\""), "{escape:?}");
    assert!(!w.data.path().join("sessions/escape").exists());
    std::os::unix::fs::symlink("/etc/passwd", w.workspace(&s).join("passwd")).unwrap();
    let linked = w.client.get_file(&s, "/workspace/passwd").await;
    assert!(
        linked.is_err(),
        "a symlink out of the workspace is not followed: {linked:?}"
    );
}

#[tokio::test]
async fn bulk_upload_and_download_keep_order_and_per_file_errors() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let up = w
        .client
        .upload(
            &s,
            &[
                ("/workspace/a.txt", b64(b"alpha")),
                ("/workspace/skills/no.txt", b64(b"x")),
                ("relative.txt", b64(b"x")),
                ("/workspace/dir/b.bin", b64(&[0, 1, 2, 255])),
            ],
        )
        .await
        .unwrap();
    let errors: Vec<Option<&str>> = up.iter().map(|r| r.error.as_deref()).collect();
    assert_eq!(
        errors,
        [None, Some("permission_denied"), Some("invalid_path"), None]
    );
    let down = w
        .client
        .download(
            &s,
            &[
                "/workspace/dir/b.bin",
                "/workspace/nope",
                "/workspace/dir",
                "/workspace/a.txt",
            ],
        )
        .await
        .unwrap();
    let errors: Vec<Option<&str>> = down.iter().map(|r| r.error.as_deref()).collect();
    assert_eq!(
        errors,
        [None, Some("file_not_found"), Some("is_directory"), None]
    );
    assert_eq!(
        down[0].content.as_deref(),
        Some(b64(&[0, 1, 2, 255]).as_str())
    );
    assert_eq!(down[3].content.as_deref(), Some(b64(b"alpha").as_str()));
}

/// Sends `request_line` (method and target, verbatim) with a body; returns (status, body).
async fn raw_http(url: &str, request_line: &str, body: &[u8]) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn special_files_and_long_names() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let fifo = w.workspace(&s).join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert_client_error(
        w.client.get_file(&s, "/workspace/pipe").await,
        400,
        "invalid_path",
    );
    let long = format!("/workspace/{}", "n".repeat(255));
    w.client.put_file(&s, &long, b"one".to_vec()).await.unwrap();
    w.client.put_file(&s, &long, b"two".to_vec()).await.unwrap();
    assert_eq!(w.client.get_file(&s, &long).await.unwrap(), b"two");
    let too_long = format!("/workspace/{}", "n".repeat(256));
    assert_client_error(
        w.client.put_file(&s, &too_long, b"x".to_vec()).await,
        400,
        "invalid_path",
    );
    w.client
        .put_file(&s, "/workspace/file.txt", b"x".to_vec())
        .await
        .unwrap();
    let under_a_file = w
        .client
        .put_file(&s, "/workspace/file.txt/child", b"x".to_vec())
        .await;
    assert!(
        matches!(
            under_a_file.as_ref().map_err(|e| e.status()),
            Err(Some(400 | 404))
        ),
        "{under_a_file:?}"
    );
}
