//! Per-session quotas and the worker-wide free-space floor: every writer meets the same limit
//! (files API, upload, tools, programs, git, restore), the answer says so, and one session's
//! full volume is nobody else's problem.

use base64::Engine;
use hearth::Config;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{JsonCalls, TOKEN, Worker, assert_client_error, assert_error};

const MIB: u64 = 1 << 20;

/// A worker whose sessions get 32 MiB and 2,048 inodes unless they ask otherwise.
async fn small_quota_worker(adjust: impl FnOnce(&mut Config)) -> Worker {
    Worker::start_with(|c| {
        c.quota.bytes_mib = 32;
        c.quota.inodes = 2048;
        c.quota.max_bytes_mib = 128;
        c.quota.max_inodes = 16_384;
        c.quota.warm_volumes = 1;
        adjust(c);
    })
    .await
}

/// Runs `command` in session `s`; the exec answer.
async fn run(w: &Worker, s: &str, command: impl Into<String>) -> Value {
    w.client
        .exec_json(s, json!({ "command": command.into() }))
        .await
        .unwrap()
}

/// Takes a snapshot of session `s`: (status, body).
async fn snapshot(w: &Worker, s: &str) -> (u16, Value) {
    w.raw(
        Method::POST,
        &format!("/v1/sessions/{s}/snapshots"),
        Some(TOKEN),
        Some(b"{}".to_vec()),
    )
    .await
}

async fn info(w: &Worker, s: &str) -> Value {
    let (status, body) = w
        .raw(Method::GET, &format!("/v1/sessions/{s}"), Some(TOKEN), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Fills the session's volume with 4 MiB files through the files API until it answers 507;
/// returns that answer.
async fn fill_with_files(w: &Worker, s: &str) -> (u16, Value) {
    let chunk = vec![b'x'; 4 * MIB as usize];
    for n in 0..64 {
        let answer = w
            .raw(
                Method::PUT,
                &format!("/v1/sessions/{s}/files/workspace/fill-{n}.bin"),
                Some(TOKEN),
                Some(chunk.clone()),
            )
            .await;
        if answer.0 != 201 {
            return answer;
        }
    }
    panic!("a 32 MiB session took 256 MiB");
}

#[tokio::test]
async fn session_info_shows_usage_against_the_quota() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let before = w.client.session(&s).await.unwrap().quota.unwrap();
    assert!(
        before.bytes_limit >= 32 * MIB && before.bytes_limit < 40 * MIB,
        "{before:?}"
    );
    assert!(before.inodes_limit >= 2048, "{before:?}");
    w.client
        .put_file(&s, "/workspace/one.bin", vec![1u8; 3 * MIB as usize])
        .await
        .unwrap();
    let after = w.client.session(&s).await.unwrap().quota.unwrap();
    assert!(
        after.bytes_used >= before.bytes_used + 3 * MIB,
        "{before:?} {after:?}"
    );
    assert!(
        after.inodes_used > before.inodes_used,
        "{before:?} {after:?}"
    );
}

#[tokio::test]
async fn the_files_api_and_upload_answer_quota_exceeded_and_other_sessions_do_not_notice() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let other = w.client.create_session(None).await.unwrap().session.id;
    let answer = fill_with_files(&w, &s).await;
    assert_error(&answer, 507, "quota_exceeded");
    let details = &answer.1["error"]["details"];
    assert!(
        details["bytes_used"].as_u64().unwrap() + MIB > details["bytes_limit"].as_u64().unwrap(),
        "{answer:?}"
    );
    // Upload says it per file.
    let content = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 4 * MIB as usize]);
    let uploaded = w.client.upload(&s, &[("/workspace/up.bin", content)]).await;
    let uploaded = serde_json::to_value(uploaded.unwrap()).unwrap();
    assert_eq!(uploaded[0]["error"], "quota_exceeded", "{uploaded}");
    // The neighbour is untouched.
    w.client
        .put_file(&other, "/workspace/fine.bin", vec![2u8; 8 * MIB as usize])
        .await
        .unwrap();
    // Deleting makes room again.
    run(&w, &s, "rm /workspace/fill-0.bin /workspace/fill-1.bin").await;
    w.client
        .put_file(&s, "/workspace/again.bin", vec![3u8; MIB as usize])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tool_that_writes_past_the_quota_is_answered_quota_exceeded() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let big = "y".repeat(20 * MIB as usize);
    for name in ["a", "b"] {
        let path = format!("/workspace/{name}.txt");
        let written = w
            .client
            .call_tool(
                &s,
                "write_file",
                json!({ "file_path": path, "content": big }),
            )
            .await;
        if name == "b" {
            assert_client_error(written, 507, "quota_exceeded");
        } else {
            written.unwrap();
        }
    }
    // Reading still works at the limit.
    w.client
        .call_tool(&s, "ls", json!({ "path": "/workspace" }))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_program_past_the_quota_gets_enospc_and_the_answer_says_quota_exceeded() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let ok = run(&w, &s, "echo small > /workspace/small.txt").await;
    assert_eq!(ok["quota_exceeded"], false, "{ok}");
    // Bytes: /tmp counts with the workspace.
    let out = run(
        &w,
        &s,
        "head -c 40000000 /dev/zero > /tmp/zeros; echo status=$?",
    )
    .await;
    assert_eq!(out["quota_exceeded"], true, "{out}");
    assert!(
        out["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{out}"
    );
    // Inodes: a program that makes files until it cannot.
    run(&w, &s, "rm -f /tmp/zeros").await;
    let out = run(&w, &s, "mkdir /workspace/many && cd /workspace/many && i=0; while touch f$i 2>/dev/null; do i=$((i+1)); done; echo made=$i").await;
    assert_eq!(out["quota_exceeded"], true, "{out}");
    let made: u64 = out["stdout"].as_str().unwrap().trim()["made=".len()..]
        .parse()
        .unwrap();
    assert!((1500..=2048).contains(&made), "{out}");
    // A tool that must create a file is refused the same way.
    let written = w
        .client
        .call_tool(
            &s,
            "write_file",
            json!({ "file_path": "/workspace/one-more.txt", "content": "x" }),
        )
        .await;
    assert_client_error(written, 507, "quota_exceeded");
}

#[tokio::test]
async fn a_create_names_its_quota_within_the_operators_maximum() {
    let w = small_quota_worker(|_| {}).await;
    let s = w
        .client
        .create_session_json(json!({ "quota": { "bytes": 64 * MIB, "inodes": 4096 } }))
        .await
        .unwrap();
    let usage = s.quota.unwrap();
    assert!(
        usage.bytes_limit >= 64 * MIB && usage.bytes_limit < 72 * MIB,
        "{usage:?}"
    );
    assert!(usage.inodes_limit >= 4096, "{usage:?}");
    for quota in [
        json!({ "bytes": 129 * MIB }),
        json!({ "inodes": 100_000 }),
        json!({ "bytes": MIB }),
        json!({ "bytes": 16 * MIB, "inodes": 16_000 }),
        json!({ "bytes": -1 }),
        json!({ "files": 3 }),
    ] {
        let answer = w
            .raw(
                Method::POST,
                "/v1/sessions",
                Some(TOKEN),
                Some(serde_json::to_vec(&json!({ "quota": quota })).unwrap()),
            )
            .await;
        assert_eq!(answer.0, 400, "{quota}: {answer:?}");
    }
    assert_eq!(w.client.list_sessions().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_restore_larger_than_the_quota_is_refused_and_leaves_nothing() {
    let w = small_quota_worker(|_| {}).await;
    let s = w
        .client
        .create_session_json(json!({ "id": "big", "quota": { "bytes": 64 * MIB } }))
        .await
        .unwrap()
        .session
        .id;
    let out = run(
        &w,
        &s,
        "head -c 40000000 /dev/urandom > /workspace/noise.bin",
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let snap = snapshot(&w, &s).await;
    assert_eq!(snap.0, 201, "{snap:?}");
    let restored = w
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(TOKEN),
            Some(serde_json::to_vec(&json!({ "id": "small", "from_snapshot": "big" })).unwrap()),
        )
        .await;
    assert_error(&restored, 507, "quota_exceeded");
    assert!(!w.data.path().join("sessions/small").exists());
    // With room enough it restores.
    let restored = w
        .client
        .create_session_json(
            json!({ "id": "roomy", "from_snapshot": "big", "quota": { "bytes": 64 * MIB } }),
        )
        .await
        .unwrap();
    assert_eq!(restored.id, "roomy");
}

#[tokio::test]
async fn a_git_checkout_past_the_quota_is_refused_as_quota_exceeded() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    // 14 MB a file: its blob (on the volume too) and one file fit 32 MiB, a third copy does not.
    let noise = "head -c 14000000 /dev/urandom";
    run(&w, &s, format!("{noise} > /workspace/a.bin")).await;
    w.client
        .git(&s, "commit", json!({ "message": "a" }))
        .await
        .unwrap();
    // Room for one of the two files, not both.
    run(
        &w,
        &s,
        format!("rm /workspace/a.bin && {noise} > /workspace/b.bin"),
    )
    .await;
    let reset = w.client.git(&s, "reset", json!({})).await;
    assert_client_error(reset, 507, "quota_exceeded");
}

/// The history is on the session's volume too: commit after commit of new content cannot grow
/// the host's disk past the quota (the git directory is no back door).
#[tokio::test]
async fn commits_count_against_the_quota() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let mut refused = None;
    for n in 0..6 {
        let out = run(
            &w,
            &s,
            format!("rm -f /workspace/*.bin; head -c 9000000 /dev/urandom > /workspace/{n}.bin"),
        )
        .await;
        if out["exit_code"] != 0 {
            refused = Some(out.to_string());
            break;
        }
        if let Err(e) = w
            .client
            .git(&s, "commit", json!({ "message": format!("round {n}") }))
            .await
        {
            refused = Some(format!("{:?} {:?}", e.status(), e.code()));
            break;
        }
    }
    let refused = refused.expect("six commits of 9 MB each fit a 32 MiB quota");
    assert!(
        refused.contains("quota_exceeded") || refused.contains("\"quota_exceeded\":true"),
        "{refused}"
    );
    assert!(
        w.git_dir(&s)
            .starts_with(w.data.path().join("sessions").join(&s).join("volume"))
    );
}

/// A sparse file takes no room on the volume but its full size in a snapshot: a snapshot may
/// store what the session can hold and no more, and says which file is in the way.
#[tokio::test]
async fn a_sparse_file_past_the_quota_fails_the_snapshot_loudly() {
    let w = small_quota_worker(|_| {}).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let out = run(&w, &s, "truncate -s 900M /workspace/huge.bin").await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let started = std::time::Instant::now();
    let answer = snapshot(&w, &s).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_error(&answer, 422, "snapshot_too_large");
    let info = info(&w, &s).await;
    assert!(
        info["snapshot"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("huge.bin"),
        "{info}"
    );
}

#[tokio::test]
async fn with_quotas_off_sessions_have_no_volume_and_asking_for_one_is_an_error() {
    let w = Worker::start_with(|c| c.quota.enabled = false).await;
    let s = w.client.create_session(None).await.unwrap();
    assert_eq!(s.quota, None);
    assert!(info(&w, &s.id).await["quota"].is_null());
    assert!(
        !w.data
            .path()
            .join("sessions")
            .join(&s.id)
            .join("volume")
            .exists()
    );
    let answer = w
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(TOKEN),
            Some(br#"{"quota": {"bytes": 100000000}}"#.to_vec()),
        )
        .await;
    assert_error(&answer, 400, "invalid_quota");
}

/// The floor on a real filesystem: the data dir on a 160 MiB tmpfs, a floor of 64 MiB, and
/// sessions of 48 MiB each. Images are sparse, so quotas add up past the disk; the floor is what
/// stops the second session from taking the last of it.
#[tokio::test]
async fn the_free_space_floor_stops_writes_before_the_disk_fills() {
    let disk = tempfile::tempdir().unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        disk.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=160m"),
    )
    .unwrap();
    let _unmount = Unmount(disk.path().to_path_buf());
    let data = disk.path().join("data");
    let w = small_quota_worker(|c| {
        c.data_dir = data.clone();
        c.quota.bytes_mib = 48;
        c.quota.min_free_mib = 64;
        c.quota.warm_volumes = 0;
    })
    .await;
    let a = w.client.create_session(None).await.unwrap().session.id;
    let b = w.client.create_session(None).await.unwrap().session.id;
    let answer = fill_with_files(&w, &a).await;
    assert_error(&answer, 507, "quota_exceeded");
    std::process::Command::new("sync").status().unwrap();
    // 160 - 48 leaves less than the floor after a few more MiB: b is stopped by the floor.
    let mut refused = None;
    for n in 0..16 {
        let answer = w
            .raw(
                Method::PUT,
                &format!("/v1/sessions/{b}/files/workspace/f{n}.bin"),
                Some(TOKEN),
                Some(vec![b'z'; 4 * MIB as usize]),
            )
            .await;
        if answer.0 != 201 {
            refused = Some(answer);
            break;
        }
        // The volume's writes reach the disk under it at writeback: make that now.
        std::process::Command::new("sync").status().unwrap();
    }
    let refused = refused.expect("the floor never stopped a write");
    assert_error(&refused, 507, "storage_full");
    let created = w
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(TOKEN),
            Some(b"{}".to_vec()),
        )
        .await;
    assert_error(&created, 507, "storage_full");
    // Reads, snapshots and deletes still work: the way out.
    w.client
        .get_file(&a, "/workspace/fill-0.bin")
        .await
        .unwrap();
    w.client.delete_session(&a).await.unwrap();
    w.client
        .put_file(&b, "/workspace/after.bin", vec![1u8; MIB as usize])
        .await
        .unwrap();
    drop(w);
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        hearth_volume::unmount_all_under(&self.0);
    }
}
