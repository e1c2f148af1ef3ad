//! Draining: a worker that stops takes no more work, ends its programs and snapshots every
//! session that changed, so another worker serves each from what this one acknowledged.

use std::time::Duration;

use hearth_client::wire::exec::ExecRequest;
use reqwest::Method;
use serde_json::json;

use crate::binary::serve;
use crate::support::{JsonCalls, TOKEN, Worker, assert_error, read, write};

#[tokio::test]
async fn a_draining_worker_refuses_work_and_snapshots_what_it_acknowledged() {
    let first = Worker::start().await;
    let c = &first.client;
    c.create_session(Some("busy")).await.unwrap();
    c.create_session(Some("idle")).await.unwrap();
    write(c, "busy", "/workspace/kept.txt", "acknowledged\n").await;
    c.exec_json("busy", json!({ "command": "echo ran > ran.txt" }))
        .await
        .unwrap();
    // A program still running: the drain ends it (it does not wait for it).
    c.exec_background("busy", &ExecRequest::command("sleep 600"))
        .await
        .unwrap();
    assert_eq!(first.raw(Method::GET, "/v1/ready", None, None).await.0, 200);

    hearth::drain::drain(first.app()).await;

    assert_error(
        &first.raw(Method::GET, "/v1/ready", None, None).await,
        503,
        "draining",
    );
    assert_eq!(
        first.raw(Method::GET, "/v1/health", None, None).await.0,
        200
    );
    let create = json!({ "id": "late" }).to_string().into_bytes();
    assert_error(
        &first
            .raw(Method::POST, "/v1/sessions", Some(TOKEN), Some(create))
            .await,
        503,
        "draining",
    );
    assert_error(
        &first
            .raw(
                Method::GET,
                "/v1/sessions/busy/files/workspace/kept.txt",
                Some(TOKEN),
                None,
            )
            .await,
        503,
        "draining",
    );

    // Another worker on the same store serves the session from its last snapshot.
    let second = first.sibling().await;
    let restored = second
        .client
        .create_session_json(json!({ "id": "busy", "from_snapshot": "busy" }))
        .await
        .unwrap();
    assert_eq!(restored.id, "busy");
    assert_eq!(
        read(&second.client, "busy", "workspace/kept.txt").await,
        "acknowledged\n"
    );
    assert_eq!(
        read(&second.client, "busy", "workspace/ran.txt").await,
        "ran\n"
    );
    // The unchanged session was not snapshotted again, and the program ended with the drain.
    assert!(
        second
            .client
            .create_session_json(json!({ "id": "idle", "from_snapshot": "idle" }))
            .await
            .is_err()
    );
}

/// The real binary on SIGTERM: readiness goes false at once, the worker exits within its
/// bound, and nothing it acknowledged is lost.
#[tokio::test]
async fn sigterm_drains_the_binary_within_its_bound() {
    use hearth_client::Client;
    let data = crate::support::DataDir::new();
    let store = crate::support::DataDir::new();
    let config = data.path().join("drain.toml");
    std::fs::write(
        &config,
        format!(
            "drain_timeout_s = 20\n[snapshots]\nstore_url = \"file://{}\"\nauto_delay_s = 0\n",
            store.path().display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let (child, url) = serve(data.path(), &["--config", &config_arg]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    for i in 0..5 {
        let s = format!("d{i}");
        client.create_session(Some(&s)).await.unwrap();
        write(&client, &s, "/workspace/a.txt", &format!("session {i}\n")).await;
    }
    let pid = child.id().unwrap();
    let started = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    assert!(started.elapsed() < Duration::from_secs(25));
    let other = crate::support::DataDir::new();
    let config = other.path().join("restore.toml");
    std::fs::write(
        &config,
        format!(
            "[snapshots]\nstore_url = \"file://{}\"\n",
            store.path().display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let (_child, url) = serve(other.path(), &["--config", &config_arg]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    for i in 0..5 {
        let s = format!("d{i}");
        client
            .create_session_json(json!({ "id": s, "from_snapshot": s }))
            .await
            .unwrap();
        assert_eq!(
            read(&client, &s, "workspace/a.txt").await,
            format!("session {i}\n")
        );
    }
}
