//! The real `hearth` binary: start-up refusals, the CLI, and graceful shutdown on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{JsonCalls, TOKEN};

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// Starts `hearth serve` on a free loopback port; returns the child and its URL.
pub(crate) async fn serve(data_dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
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

/// Runs `hearth serve` with `args` on `data_dir`, expecting it to refuse to start; its stderr.
async fn refused_start(data_dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(HEARTH)
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
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
async fn a_typo_in_the_required_jail_layers_stops_the_start() {
    let data = crate::support::DataDir::new();
    let config = data.path().join("hearth.toml");
    std::fs::write(&config, "[exec]\nrequired_layers = [\"landlok\"]\n").unwrap();
    let config = config.to_str().unwrap();
    let stderr = refused_start(
        data.path(),
        &["--listen", "127.0.0.1:0", "--config", config],
    )
    .await;
    assert!(
        stderr.contains("landlok") && stderr.contains("required_layers"),
        "{stderr}"
    );
}

#[tokio::test]
async fn refuses_to_listen_off_loopback_without_a_token() {
    let data = crate::support::DataDir::new();
    let stderr = refused_start(data.path(), &["--listen", "0.0.0.0:0"]).await;
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[tokio::test]
async fn cli_creates_sessions_and_calls_tools() {
    let data = crate::support::DataDir::new();
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

    // Programs: the foreground run's code is the CLI's; a background one is followed.
    let run = |args: &[&str]| {
        std::process::Command::new(HEARTH)
            .args(args)
            .env_clear()
            .env("HEARTH_URL", &url)
            .env("HEARTH_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let ran = run(&["exec", "cli", "--", "cat hello.txt; exit 3"]);
    assert_eq!(ran.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hi");
    let id = cli(&[
        "exec",
        "cli",
        "--background",
        "--",
        "echo one; sleep 0.5; echo two",
    ]);
    assert_eq!(id.trim(), "p1");
    assert!(cli(&["ps", "cli"]).starts_with("p1\t"));
    assert_eq!(cli(&["logs", "cli", "p1", "--follow"]), "one\ntwo\n");
    assert!(cli(&["ps", "cli"]).contains("exited 0"));
    cli(&["exec", "cli", "--background", "--", "sleep 60"]);
    cli(&["kill", "cli", "p2", "--signal", "term"]);
    let bad = run(&["kill", "cli", "p2", "--signal", "stop"]);
    assert!(!bad.status.success());
    cli(&["kill", "cli", "p2"]);
    assert!(!cli(&["ps", "cli"]).contains("p2"));
    drop(child);
}

/// A worker that dies (SIGKILL: nothing of it runs on) takes its programs with it, through the
/// lifeline its jails hold; the restarted worker reports them lost.
#[tokio::test]
async fn a_killed_worker_takes_its_programs_with_it_and_reports_them_lost() {
    use hearth_client::Client;
    use hearth_client::wire::exec::ExecRequest;
    use hearth_client::wire::processes::ProcessState;
    let data = crate::support::DataDir::new();
    let (mut child, url) = serve(data.path(), &[]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    client.create_session(Some("alive")).await.unwrap();
    let beat = ExecRequest::command("while true; do date +%s%N > beat; sleep 0.05; done");
    let process = client.exec_background("alive", &beat).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !client
            .get_file("alive", "/workspace/beat")
            .await
            .unwrap()
            .is_empty()
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let (child, url) = serve(data.path(), &[]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    let first = client.get_file("alive", "/workspace/beat").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = client.get_file("alive", "/workspace/beat").await.unwrap();
    assert_eq!(first, second, "nothing of the old worker's runs writes on");
    let listed = client.processes("alive").await.unwrap().processes;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].state),
        (process.id.as_str(), ProcessState::Lost)
    );
    // The session runs programs again, in a network of its own.
    let again = client
        .exec_json("alive", serde_json::json!({ "command": "echo back" }))
        .await
        .unwrap();
    assert_eq!(again["stdout"], "back\n");
    drop(child);
}

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish() {
    let data = crate::support::DataDir::new();
    let tools = hearth_tests::tools_dir(&[(
        "hostile",
        hearth_tests::HOSTILE_WASM,
        Some("deadline_ms = 1500\n"),
    )]);
    let config = data.path().join("hearth.toml");
    std::fs::write(&config, format!("tools_dir = {:?}\n", tools.path())).unwrap();
    let (mut child, url) = serve(data.path(), &["--config", config.to_str().unwrap()]).await;
    let client = hearth_client::Client::new(&url, Some(TOKEN.into()));
    let session = client.create_session(None).await.unwrap().session.id;

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

/// `kill -9` in the middle of writes, edits, runs, commits and snapshots in three sessions;
/// then a restart on the same data dir finds every acknowledged write, no torn file, every
/// session, and no snapshot that does not restore.
#[tokio::test]
async fn a_worker_killed_mid_load_restarts_with_everything_it_acknowledged() {
    use hearth_client::Client;
    use serde_json::json;
    let data = crate::support::DataDir::new();
    let (mut child, url) = serve(data.path(), &[]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    let sessions = ["crash-a", "crash-b", "crash-c"];
    for s in sessions {
        client.create_session(Some(s)).await.unwrap();
    }
    let body = |i: usize| format!("version {i}\n").repeat(2_000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            let (client, stop, url) = (client.clone(), stop.clone(), url.clone());
            tokio::spawn(async move {
                let (mut written, mut lines, mut snapshotted) = (Vec::new(), Vec::new(), false);
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let path = format!("/workspace/w{i}.txt");
                    let args = json!({ "file_path": path, "content": body(i) });
                    if client.call_tool(s, "write_file", args).await.is_ok() {
                        written.push(i);
                    }
                    match i % 4 {
                        0 => {
                            let command = format!("echo line{i} >> log.txt");
                            let ran = client.exec_json(s, json!({ "command": command })).await;
                            if ran.is_ok_and(|answer| answer["exit_code"] == 0) {
                                lines.push(i);
                            }
                        }
                        1 => {
                            let message = format!("step {i}");
                            let _ = client.git(s, "commit", json!({ "message": message })).await;
                        }
                        2 => {
                            let edit = json!({
                                "file_path": path, "old_string": "version", "new_string": "edited"
                            });
                            let _ = client.call_tool(s, "edit_file", edit).await;
                        }
                        _ => {
                            let taken = reqwest::Client::new()
                                .post(format!("{url}/v1/sessions/{s}/snapshots"))
                                .bearer_auth(TOKEN)
                                .json(&json!({}))
                                .send()
                                .await;
                            snapshotted |= taken.is_ok_and(|r| r.status() == 201);
                        }
                    }
                }
                (written, lines, snapshotted)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for load in loads {
        acknowledged.push(load.await.unwrap());
    }

    let (_again, url) = serve(data.path(), &[]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    let listed: Vec<String> = client
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    for (s, (written, lines, snapshotted)) in sessions.into_iter().zip(acknowledged) {
        assert!(listed.iter().any(|id| id == s), "{s} is gone: {listed:?}");
        assert!(written.len() >= 2, "{s}: too little load to mean anything");
        for i in written {
            let content = client
                .get_file(s, &format!("workspace/w{i}.txt"))
                .await
                .unwrap();
            let text = String::from_utf8(content).unwrap();
            // Written whole, then perhaps edited whole: never a mix, never cut.
            let edited = body(i).replace("version", "edited");
            assert!(text == body(i) || text == edited, "{s}: w{i}.txt is torn");
        }
        let log = if lines.is_empty() {
            String::new()
        } else {
            String::from_utf8(client.get_file(s, "workspace/log.txt").await.unwrap()).unwrap()
        };
        for i in lines {
            assert!(log.contains(&format!("line{i}\n")), "{s}: line{i} lost");
        }
        let status = client.git_view(s, "status", &[]).await.unwrap();
        assert_eq!(status["branch"], "main", "{status}");
        if snapshotted {
            let restored = client
                .create_session_json(json!({ "from_snapshot": s }))
                .await;
            assert!(
                restored.is_ok(),
                "{s}'s latest snapshot does not restore: {restored:?}"
            );
        }
    }
}

/// Quotas on the real binary: a program and the files API meet the quota; a `kill -9` leaves the
/// volumes mounted and a restart serves them as they were; a SIGTERM leaves no mount behind.
#[tokio::test]
async fn the_binary_enforces_quotas_and_keeps_volumes_across_a_kill() {
    let data = crate::support::DataDir::new();
    let config = data.path().join("hearth.toml");
    std::fs::write(
        &config,
        "[quota]\nbytes_mib = 32\ninodes = 2048\nwarm_volumes = 1\n",
    )
    .unwrap();
    let config_arg = ["--config", config.to_str().unwrap()];
    let (mut child, url) = serve(data.path(), &config_arg).await;
    let client = hearth_client::Client::new(&url, Some(TOKEN.into()));
    let s = client.create_session(Some("q")).await.unwrap().session.id;
    let out = client
        .exec_json(
            &s,
            serde_json::json!({ "command": "echo kept > /workspace/kept.txt; head -c 40000000 /dev/zero > /tmp/z" }),
        )
        .await
        .unwrap();
    assert_eq!(out["quota_exceeded"], true, "{out}");
    let put = client
        .put_file(&s, "/workspace/more.bin", vec![0u8; 1 << 20])
        .await;
    crate::support::assert_client_error(put, 507, "quota_exceeded");
    client
        .exec_json(&s, serde_json::json!({ "command": "rm /tmp/z" }))
        .await
        .unwrap();

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let volume = data.path().join("sessions/q/volume");
    assert!(
        hearth_volume::is_mount_point(&volume),
        "a kill leaves the volume mounted"
    );
    let (child, url) = serve(data.path(), &config_arg).await;
    let client = hearth_client::Client::new(&url, Some(TOKEN.into()));
    assert_eq!(
        client.get_file(&s, "/workspace/kept.txt").await.unwrap(),
        b"kept\n"
    );
    let usage = client.session(&s).await.unwrap().quota.unwrap();
    assert!(
        usage.bytes_limit >= 32 << 20 && usage.bytes_used + (1 << 20) <= usage.bytes_limit,
        "{usage:?}"
    );

    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success());
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = data.path().canonicalize().unwrap();
    assert!(
        !table.contains(root.to_str().unwrap()),
        "a stopped worker left mounts in its data dir"
    );
}
