//! The worker's own code is a boundary: whatever a session's programs plant in `/workspace` and
//! `/tmp` (links, FIFOs, deep trees, odd modes, nested repositories), the host neither reads
//! elsewhere, nor hangs, nor grants more, and every other session goes on being served.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use hearth_client::Client;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{JsonCalls, Worker, assert_error, write};

/// A worker whose git operations give up after a few seconds.
async fn worker() -> Worker {
    Worker::start_with(|c| c.git.timeout_s = 3.0).await
}

async fn run(c: &Client, s: &str, command: &str) -> Value {
    let answer = c.exec_json(s, json!({ "command": command })).await.unwrap();
    assert_eq!(answer["exit_code"], 0, "{command}: {answer}");
    answer
}

/// How long an `ls` of another session takes, in the worst of a few tries.
async fn ls_time(c: &Client, s: &str) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        c.call_tool(s, "ls", json!({ "path": "/workspace" }))
            .await
            .unwrap();
        worst = worst.max(started.elapsed());
    }
    worst
}

#[tokio::test]
async fn files_api_never_follows_a_link_or_waits_on_a_fifo() {
    let w = worker().await;
    let c = &w.client;
    let victim = c.create_session(Some("victim")).await.unwrap().session.id;
    write(c, &victim, "/workspace/creds.json", "{\"secret\": 1}").await;
    let s = c.create_session(None).await.unwrap().session.id;
    let creds = w.workspace(&victim).join("creds.json");
    run(
        c,
        &s,
        &format!(
            "ln -s {} /workspace/abs && ln -s /dev/zero /workspace/zero && mkfifo /workspace/fifo \
             && ln -s .. /workspace/up && mkdir /workspace/d && echo inner > /workspace/d/f \
             && ln -s d /workspace/dlink && ln -s d/f /workspace/flink",
            creds.display()
        ),
    )
    .await;
    for path in [
        "abs",
        "zero",
        "fifo",
        "dlink/f",
        "flink",
        "up/workspace/d/f",
    ] {
        let started = Instant::now();
        let answer = w
            .raw(
                Method::GET,
                &format!("/v1/sessions/{s}/files/workspace/{path}"),
                Some(crate::support::TOKEN),
                None,
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
        assert!(
            answer.0 == 400 && answer.1["error"]["code"] == "invalid_path",
            "{path}: {answer:?}"
        );
    }
    // A write over a link replaces the link; through a linked directory it is refused.
    c.put_file(&s, "workspace/abs", b"mine".to_vec())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&creds).unwrap(), b"{\"secret\": 1}");
    let through = c.put_file(&s, "workspace/dlink/g", b"x".to_vec()).await;
    assert_eq!(through.unwrap_err().code(), Some("invalid_path"));
    // deepagents' download keeps its literals per file.
    let files = c
        .download(&s, &["/workspace/fifo", "/workspace/d/f"])
        .await
        .unwrap();
    assert_eq!(files[0].error.as_deref(), Some("invalid_path"));
    assert!(files[1].error.is_none());
}

#[tokio::test]
async fn a_fifo_or_link_where_git_reads_costs_one_deadline_and_no_other_session_anything() {
    let w = worker().await;
    let c = &w.client;
    let other = c
        .create_session(Some("bystander"))
        .await
        .unwrap()
        .session
        .id;
    let normal = ls_time(c, &other).await;
    let s = c.create_session(None).await.unwrap().session.id;
    run(
        c,
        &s,
        "mkfifo /workspace/.gitignore && mkdir -p sub && mkfifo sub/.gitattributes \
         && ln -s /etc/shadow /workspace/.gitattributes",
    )
    .await;
    // Many calls pile up on the wedged session; none of them may take a thread while waiting.
    let piled: Vec<_> = (0..40)
        .map(|_| {
            let c = c.clone();
            let s = s.clone();
            tokio::spawn(async move { c.git_view(&s, "status", &[]).await })
        })
        .collect();
    // Every other way in at once, from a third session: FIFOs and links through the files API,
    // and calls whose functions plant links and FIFOs in /tmp before returning.
    let third = c.create_session(None).await.unwrap().session.id;
    run(
        c,
        &third,
        "mkfifo /workspace/p && ln -s /dev/zero /workspace/z",
    )
    .await;
    write(
        c,
        &third,
        "/workspace/evil.py",
        "import os\ndef go():\n    os.mkfifo('/tmp/f')\n    os.symlink('/dev/zero', '/tmp/z')\n    return 1\n",
    )
    .await;
    let others: Vec<_> = (0..30)
        .map(|i| {
            let (c, s) = (c.clone(), third.clone());
            tokio::spawn(async move {
                match i % 3 {
                    0 => c.get_file(&s, "workspace/p").await.map(drop),
                    1 => c.get_file(&s, "workspace/z").await.map(drop),
                    _ => c
                        .exec_json(&s, json!({ "call": "evil:go" }))
                        .await
                        .map(drop),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = ls_time(c, &other).await;
    for call in others {
        // Each answers (an error for the FIFO and the link), none hangs.
        let _ = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .unwrap();
    }
    // Before, it hung once the blocking threads were taken; a loaded CI machine is slower.
    assert!(
        during < normal * 4 + Duration::from_secs(2),
        "another session's ls took {during:?} (normally {normal:?})"
    );
    let bytes = c.get_file(&other, "workspace").await;
    assert!(bytes.is_err());
    // The first status waits one deadline, then answers 504; the rest queue behind it.
    let started = Instant::now();
    let first = c.git_view(&s, "status", &[]).await;
    assert_eq!(first.unwrap_err().code(), Some("git_timeout"));
    assert!(started.elapsed() < Duration::from_secs(200));
    for call in piled {
        let answer = call.await.unwrap();
        assert_eq!(answer.unwrap_err().code(), Some("git_timeout"));
    }
    // Commit too (exclusive), then the session is usable again once the FIFOs are gone.
    let commit = c.git(&s, "commit", json!({ "message": "x" })).await;
    assert_eq!(commit.unwrap_err().code(), Some("git_timeout"));
    run(c, &s, "rm /workspace/.gitignore sub/.gitattributes").await;
    let status = c.git_view(&s, "status", &[]).await.unwrap();
    assert_eq!(status["state"], "clean", "{status}");
}

#[tokio::test]
async fn git_reads_nothing_outside_the_session_through_a_planted_link() {
    let w = worker().await;
    let c = &w.client;
    let victim = c.create_session(Some("victim")).await.unwrap().session.id;
    write(c, &victim, "/workspace/secret.txt", "hunter2\n").await;
    let s = c.create_session(None).await.unwrap().session.id;
    let secret = w.workspace(&victim).join("secret.txt");
    // If git read the victim's file as ignore rules, `hunter2` would be ignored.
    run(
        c,
        &s,
        &format!(
            "ln -s {} /workspace/.gitignore && echo x > /workspace/hunter2 \
             && ln -s /dev/zero /workspace/.gitattributes",
            secret.display()
        ),
    )
    .await;
    let status = c.git_view(&s, "status", &[]).await.unwrap();
    let paths: Vec<&str> = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert!(paths.contains(&"hunter2"), "{status}");
    let commit = c
        .git(&s, "commit", json!({ "message": "with links" }))
        .await
        .unwrap();
    assert_eq!(commit["status"], "committed", "{commit}");
}

#[tokio::test]
async fn a_tree_deeper_than_the_limit_is_too_deep_everywhere_and_still_deletable() {
    let w = Worker::start_with(|c| {
        c.git.timeout_s = 20.0;
        c.max_tree_depth = 100;
    })
    .await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    run(
        c,
        &s,
        "python3 -c \"import os\nfor _ in range(3000):\n os.mkdir('d'); os.chdir('d')\nopen('leaf','w').write('x')\"",
    )
    .await;
    let path = format!("/v1/sessions/{s}/snapshots");
    let snapshot = w
        .raw(
            Method::POST,
            &path,
            Some(crate::support::TOKEN),
            Some(b"{}".to_vec()),
        )
        .await;
    assert_error(&snapshot, 422, "too_deep");
    assert!(
        snapshot.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100")
    );
    let path = format!("/v1/sessions/{s}/export");
    let export = w
        .raw(Method::GET, &path, Some(crate::support::TOKEN), None)
        .await;
    assert_error(&export, 422, "too_deep");
    let commit = c.git(&s, "commit", json!({ "message": "deep" })).await;
    let e = commit.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(422), Some("too_deep")), "{e}");
    c.delete_session(&s).await.unwrap();
    assert!(!w.data.path().join("sessions").join(&s).exists());
}

#[tokio::test]
async fn a_session_cannot_lock_its_own_runs_out() {
    let w = worker().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    run(c, &s, "chmod 000 /workspace").await;
    run(c, &s, "test -w /workspace && ls /workspace/skills").await;
    // A link through the workspace lets a tool reach the mount point of the read-only area.
    run(c, &s, "chmod 000 /tmp && ln -s . /workspace/self").await;
    c.call_tool(
        &s,
        "delete",
        json!({ "file_path": "/workspace/self/skills" }),
    )
    .await
    .unwrap();
    write(c, &s, "/workspace/self/skills", "a file in the way").await;
    let answer = run(c, &s, "cat /workspace/skills/SKILL.md && touch /tmp/ok").await;
    assert!(
        answer["stdout"].as_str().unwrap().contains("shared skill"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_data_dir_is_private_to_the_worker() {
    let data = crate::support::DataDir::new();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = Worker::start_with(|c| c.data_dir = data.path().to_path_buf()).await;
    let mode = std::fs::metadata(data.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700);
    drop(w);
}

#[tokio::test]
async fn paths_longer_than_the_kernel_takes_are_handled_everywhere() {
    let w = worker().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    run(
        c,
        &s,
        "python3 -c \"import os\nfor _ in range(20):\n os.mkdir('n' * 255); os.chdir('n' * 255)\nopen('leaf','w').write('deep')\"",
    )
    .await;
    let path = format!("/v1/sessions/{s}/snapshots");
    let token = Some(crate::support::TOKEN);
    let snapshot = w
        .raw(Method::POST, &path, token, Some(b"{}".to_vec()))
        .await;
    assert_eq!(snapshot.0, 201, "{snapshot:?}");
    let path = format!("/v1/sessions/{s}/export");
    let export = reqwest::Client::new()
        .get(format!("{}{path}", w.url))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(!export.bytes().await.unwrap().is_empty());
    let commit = c.git(&s, "commit", json!({ "message": "long" })).await;
    let e = commit.unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
    c.delete_session(&s).await.unwrap();
    assert!(!w.data.path().join("sessions").join(&s).exists());
}

#[tokio::test]
async fn git_works_whatever_modes_a_program_gave_its_files() {
    let w = worker().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    run(
        c,
        &s,
        "echo x > f && chmod 000 f && mkdir d && echo y > d/g && chmod 000 d",
    )
    .await;
    let commit = c
        .git(&s, "commit", json!({ "message": "m" }))
        .await
        .unwrap();
    assert_eq!(commit["status"], "committed", "{commit}");
    assert_eq!(commit["files_changed"], 2, "{commit}");
}
