//! The real `hearth` binary: start-up refusals, the CLI, and graceful shutdown on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::TOKEN;

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// Starts `hearth serve` on a free loopback port; returns the child and its URL.
async fn serve(data_dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(HEARTH)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_clear()
        .env("HEARTH_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("hearth listening on ")
        .unwrap()
        .to_owned();
    (child, url)
}

fn sigterm(child: &Child) {
    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn refuses_to_listen_off_loopback_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(HEARTH)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[tokio::test]
async fn cli_creates_sessions_and_calls_tools() {
    let data = tempfile::tempdir().unwrap();
    let (child, url) = serve(data.path(), &[]).await;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(HEARTH)
            .args(args)
            .env_clear()
            .env("HEARTH_URL", &url)
            .env("HEARTH_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(cli(&["session", "create", "--id", "cli"]).trim(), "cli");
    cli(&[
        "call",
        "cli",
        "write_file",
        r#"{"file_path": "/workspace/hello.txt", "content": "hi"}"#,
    ]);
    assert!(cli(&["ls", "cli"]).contains("/workspace/hello.txt"));
    assert!(
        cli(&[
            "call",
            "cli",
            "read_file",
            r#"{"file_path": "/workspace/hello.txt"}"#
        ])
        .contains("\"content\": \"hi\"")
    );
    assert!(cli(&["session", "list"]).starts_with("cli\t"));
    assert!(cli(&["tools"]).contains("read_file"));
    let wrong = std::process::Command::new(HEARTH)
        .args(["session", "list", "--url", &url, "--token", "wrong"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unauthorized"));
    drop(child);
}

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish() {
    let data = tempfile::tempdir().unwrap();
    let tools = hearth_tests::tools_dir(&[(
        "hostile",
        hearth_tests::HOSTILE_WASM,
        Some("deadline_ms = 1500\n"),
    )]);
    let config = data.path().join("hearth.toml");
    std::fs::write(&config, format!("tools_dir = {:?}\n", tools.path())).unwrap();
    let (mut child, url) = serve(data.path(), &["--config", config.to_str().unwrap()]).await;
    let client = hearth_client::Client::new(&url, Some(TOKEN.into()));
    let session = client.create_session(None).await.unwrap().id;

    // A call that takes ~1.5 s, then SIGTERM while it runs.
    let slow = tokio::spawn({
        let client = client.clone();
        let session = session.clone();
        async move {
            client
                .call_tool(&session, "hostile", serde_json::json!({ "action": "spin" }))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    sigterm(&child);

    let answer = slow.await.unwrap();
    match answer {
        Err(e) => assert_eq!(
            e.code(),
            Some("deadline_exceeded"),
            "the in-flight call was answered, not dropped: {e}"
        ),
        Ok(v) => panic!("spin cannot succeed: {v}"),
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit: {status}");
    assert!(client.health().await.is_err(), "no longer listening");
}
