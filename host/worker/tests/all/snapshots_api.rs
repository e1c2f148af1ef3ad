//! Snapshots over HTTP: on demand, incremental, in the background, restored on another worker
//! (local store and a loopback S3), exported, pruned; and the faults: a corrupt blob, a store
//! that goes down and comes back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{JsonCalls, S3Server, Worker, assert_client_error, read, write};

async fn snapshot(w: &Worker, s: &str) -> (u16, Value) {
    w.raw(
        reqwest::Method::POST,
        &format!("/v1/sessions/{s}/snapshots"),
        Some(crate::support::TOKEN),
        None,
    )
    .await
}

async fn info(w: &Worker, s: &str) -> Value {
    w.raw(
        reqwest::Method::GET,
        &format!("/v1/sessions/{s}"),
        Some(crate::support::TOKEN),
        None,
    )
    .await
    .1
}

/// A project with a subpackage, an executable script, a symlink and git history.
async fn project(w: &Worker, s: &str) {
    let c = &w.client;
    write(
        c,
        s,
        "/workspace/utils.py",
        "def answer():\n    return 42\n",
    )
    .await;
    write(c, s, "/workspace/pkg/__init__.py", "").await;
    write(
        c,
        s,
        "/workspace/main.py",
        "import utils\nprint(utils.answer())\n",
    )
    .await;
    c.git(s, "commit", json!({ "message": "project" }))
        .await
        .unwrap();
    c.exec_json(s, json!({ "command": "printf '#!/bin/sh\\necho run\\n' > run.sh && chmod +x run.sh && ln -s utils.py link.py" }))
        .await
        .unwrap();
}

/// Checks `s` on `w` is the project, history included.
async fn assert_project(w: &Worker, s: &str) {
    let c = &w.client;
    assert_eq!(
        read(c, s, "workspace/utils.py").await,
        "def answer():\n    return 42\n"
    );
    let run = c
        .exec_json(
            s,
            json!({ "command": "./run.sh && readlink link.py && python3 main.py" }),
        )
        .await
        .unwrap();
    assert_eq!(run["stdout"], "run\nutils.py\n42\n", "{run}");
    let log = c.git_view(s, "log", &[]).await.unwrap();
    assert_eq!(log["commits"][0]["summary"], "project", "{log}");
}

#[tokio::test]
async fn snapshot_incremental_and_restore_on_another_worker() {
    let first = Worker::start().await;
    let c = &first.client;
    let s = c.create_session(Some("agent-1")).await.unwrap().session.id;
    project(&first, &s).await;
    let pending = info(&first, &s).await;
    assert_eq!(pending["snapshot"]["pending"], true, "{pending}");

    let (status, full) = snapshot(&first, &s).await;
    assert_eq!(status, 201, "{full}");
    assert_eq!(full["latest"], true);
    let info_after = info(&first, &s).await;
    assert_eq!(info_after["snapshot"]["pending"], false, "{info_after}");
    assert_eq!(info_after["snapshot"]["last"]["id"], full["id"]);

    write(
        c,
        &s,
        "/workspace/utils.py",
        "def answer():\n    return 42  # checked\n",
    )
    .await;
    let (_, next) = snapshot(&first, &s).await;
    assert_eq!(next["uploaded_blobs"], 1, "only the changed file: {next}");
    assert_eq!(
        next["objects_written"], 3,
        "blob, manifest, pointer: {next}"
    );
    let listed = c.git_view(&s, "status", &[]).await.unwrap();
    assert_eq!(listed["changes"][0]["path"], "link.py", "{listed}");

    // A second worker, its own data dir, the same store.
    let second = first.sibling().await;
    let restored = second
        .client
        .create_session_json(json!({ "id": "agent-1", "from_snapshot": "agent-1" }))
        .await
        .unwrap();
    assert_eq!(restored.id, "agent-1");
    assert_eq!(
        read(&second.client, "agent-1", "workspace/utils.py").await,
        "def answer():\n    return 42  # checked\n"
    );
    let c2 = &second.client;
    let run = c2
        .exec_json(
            "agent-1",
            json!({ "command": "./run.sh && readlink link.py && python3 main.py" }),
        )
        .await
        .unwrap();
    assert_eq!(run["stdout"], "run\nutils.py\n42\n", "{run}");
    let log = c2.git_view("agent-1", "log", &[]).await.unwrap();
    assert_eq!(log["commits"][0]["summary"], "project", "{log}");
    // The first snapshot, by its id, into another session.
    let older = c2
        .create_session_json(json!({ "from_snapshot": full["id"] }))
        .await
        .unwrap()
        .session
        .id;
    assert_project(&second, &older).await;
    // A restore into another session trusts none of the source's blobs for its first snapshot.
    let (_, fresh) = snapshot(&second, &older).await;
    assert!(fresh["uploaded_blobs"].as_u64().unwrap() >= 4, "{fresh}");
    // The restored session snapshots incrementally from what it restored.
    let (_, again) = snapshot(&second, "agent-1").await;
    assert_eq!(again["uploaded_blobs"], 0, "{again}");

    let listed = second
        .raw(
            reqwest::Method::GET,
            "/v1/sessions/agent-1/snapshots",
            Some(crate::support::TOKEN),
            None,
        )
        .await
        .1;
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 3, "{listed}");
    assert_client_error(
        c2.create_session_json(json!({ "from_snapshot": "nobody" }))
            .await,
        404,
        "snapshot_not_found",
    );
    assert_client_error(
        c2.create_session_json(json!({ "from_snapshot": "a/../b" }))
            .await,
        400,
        "invalid_snapshot_reference",
    );
}

#[tokio::test]
async fn changes_are_snapshotted_in_the_background() {
    let w = Worker::start_with(|c| c.snapshots.auto_delay_s = 0.2).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    write(&w.client, &s, "/workspace/a.txt", "a\n").await;
    let started = std::time::Instant::now();
    loop {
        let info = info(&w, &s).await;
        if info["snapshot"]["pending"] == false && !info["snapshot"]["last"].is_null() {
            assert_eq!(info["snapshot"]["last"]["files"], 1, "{info}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no background snapshot: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_corrupt_blob_fails_the_restore_and_leaves_no_session() {
    let w = Worker::start().await;
    let s = w
        .client
        .create_session(Some("victim"))
        .await
        .unwrap()
        .session
        .id;
    write(&w.client, &s, "/workspace/data.txt", "precious\n").await;
    let (status, taken) = snapshot(&w, &s).await;
    assert_eq!(status, 201, "{taken}");
    // Find the blob of data.txt in the local store and damage it.
    let blobs = w.data.path().join("store/blobs");
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(b"precious\n")
    };
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(blobs.join(&hash[..2]).join(&hash), "tampered\n").unwrap();
    assert_client_error(
        w.client
            .create_session_json(json!({ "id": "restored", "from_snapshot": "victim" }))
            .await,
        422,
        "snapshot_corrupt",
    );
    assert_client_error(w.client.session("restored").await, 404, "session_not_found");
    assert!(!w.data.path().join("sessions/restored").exists());
    // The victim's next snapshot no longer counts on the blobs it remembered: it uploads them
    // again, and repairs what the store lost.
    write(&w.client, &s, "/workspace/more.txt", "more\n").await;
    let (status, again) = snapshot(&w, &s).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["uploaded_blobs"], 2, "{again}");
    let restored = w
        .client
        .create_session_json(json!({ "id": "restored", "from_snapshot": "victim" }))
        .await
        .unwrap()
        .session
        .id;
    assert_eq!(
        read(&w.client, &restored, "workspace/data.txt").await,
        "precious\n"
    );
}

#[tokio::test]
async fn export_and_delete_with_a_last_snapshot() {
    let w = Worker::start().await;
    let s = w
        .client
        .create_session(Some("episode"))
        .await
        .unwrap()
        .session
        .id;
    project(&w, &s).await;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/sessions/{s}/export", w.url))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let archive = response.bytes().await.unwrap();
    let tar = zstd::decode_all(&archive[..]).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for expected in ["workspace/main.py", "workspace/link.py", "git/HEAD"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    let stored = w
        .raw(
            reqwest::Method::POST,
            &format!("/v1/sessions/{s}/export"),
            Some(crate::support::TOKEN),
            None,
        )
        .await;
    assert_eq!(stored.0, 201, "{stored:?}");
    let key = stored.1["key"].as_str().unwrap().to_owned();
    let on_disk = w.data.path().join("store").join(&key);
    assert!(on_disk.is_file(), "{key}");
    // Listed and downloaded through the API, byte for byte what the store holds.
    let (status, listed) = w
        .raw(
            reqwest::Method::GET,
            &format!("/v1/sessions/{s}/exports"),
            Some(crate::support::TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["exports"][0]["key"], key, "{listed}");
    let name = listed["exports"][0]["name"].as_str().unwrap().to_owned();
    let downloaded = reqwest::Client::new()
        .get(format!("{}/v1/sessions/{s}/exports/{name}", w.url))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(
        downloaded.bytes().await.unwrap(),
        std::fs::read(&on_disk).unwrap()
    );
    // The same through the client.
    assert_eq!(w.client.list_exports(&s).await.unwrap().len(), 1);
    let archive = w.client.download_export(&s, &name).await.unwrap();
    assert_eq!(archive, std::fs::read(&on_disk).unwrap());
    for bad in ["0000000000000.tar.zst", "..%2F..%2Fx", "snapshot.json"] {
        let missing = w
            .raw(
                reqwest::Method::GET,
                &format!("/v1/sessions/{s}/exports/{bad}"),
                Some(crate::support::TOKEN),
                None,
            )
            .await;
        crate::support::assert_error(&missing, 404, "export_not_found");
    }
    // Another session's exports are its own.
    let other = w
        .client
        .create_session(Some("episode-2"))
        .await
        .unwrap()
        .session
        .id;
    let (_, none) = w
        .raw(
            reqwest::Method::GET,
            &format!("/v1/sessions/{other}/exports"),
            Some(crate::support::TOKEN),
            None,
        )
        .await;
    assert_eq!(none["exports"], serde_json::json!([]), "{none}");

    let deleted = w
        .raw(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{s}?snapshot=true"),
            Some(crate::support::TOKEN),
            None,
        )
        .await;
    assert_eq!(deleted.0, 200, "{deleted:?}");
    assert_eq!(deleted.1["snapshot"]["session"], "episode");
    let back = w
        .client
        .create_session_json(json!({ "id": "episode", "from_snapshot": "episode" }))
        .await
        .unwrap();
    assert_project(&w, &back.id).await;
}

#[tokio::test]
async fn on_s3_snapshots_restore_multipart_and_survive_the_store_going_down() {
    let mut s3 = S3Server::start().await;
    let w = Worker::start_with(|c| {
        s3.configure(c);
        c.snapshots.multipart_threshold_mib = 1;
        c.snapshots.part_mib = 1;
    })
    .await;
    let c = &w.client;
    let s = c.create_session(Some("cloud")).await.unwrap().session.id;
    project(&w, &s).await;
    // 3 MiB of distinct content: a multipart upload in 1 MiB parts.
    c.exec_json(&s, json!({ "command": "python3 -c \"import os; open('big.bin','wb').write(os.urandom(3*1024*1024))\"" }))
        .await
        .unwrap();
    let (status, full) = snapshot(&w, &s).await;
    assert_eq!(status, 201, "{full}");
    assert_eq!(full["multipart_uploads"], 1, "{full}");
    write(
        c,
        &s,
        "/workspace/main.py",
        "import utils\nprint(utils.answer() + 1)\n",
    )
    .await;
    let (_, next) = snapshot(&w, &s).await;
    assert_eq!(next["uploaded_blobs"], 1, "{next}");

    // The store goes away: the snapshot fails clearly, the session keeps working, info says so.
    s3.down().await;
    let (status, failed) = snapshot(&w, &s).await;
    assert_eq!(status, 503, "{failed}");
    assert_eq!(failed["error"]["code"], "store_unavailable");
    write(
        c,
        &s,
        "/workspace/later.txt",
        "written while the store was down\n",
    )
    .await;
    let during = info(&w, &s).await;
    assert_eq!(during["snapshot"]["pending"], true, "{during}");
    assert!(during["snapshot"]["error"].is_string(), "{during}");
    assert_eq!(
        during["snapshot"]["last"]["id"], next["id"],
        "the last good one stays"
    );

    // It comes back: the next snapshot catches up, and a second worker restores all of it.
    s3.up().await;
    let (status, caught_up) = snapshot(&w, &s).await;
    assert_eq!(status, 201, "{caught_up}");
    assert_eq!(info(&w, &s).await["snapshot"]["error"], Value::Null);
    // Collecting garbage on S3 leaves every kept snapshot whole (the restore below proves it).
    let gc = w
        .raw(
            reqwest::Method::POST,
            "/v1/snapshots/gc",
            Some(crate::support::TOKEN),
            Some(br#"{"grace_s": 0}"#.to_vec()),
        )
        .await;
    assert_eq!(gc.0, 200, "{gc:?}");
    assert!(gc.1["manifests"].as_u64().unwrap() >= 3, "{gc:?}");
    let second = Worker::start_with(|config| s3.configure(config)).await;
    let restored = second
        .client
        .create_session_json(json!({ "from_snapshot": "cloud" }))
        .await
        .unwrap()
        .session
        .id;
    assert_eq!(
        read(&second.client, &restored, "workspace/later.txt").await,
        "written while the store was down\n"
    );
    let sums = second
        .client
        .exec_json(
            &restored,
            json!({ "command": "python3 main.py; wc -c < big.bin" }),
        )
        .await
        .unwrap();
    assert_eq!(sums["stdout"], "43\n3145728\n", "{sums}");
    let log = second.client.git_view(&restored, "log", &[]).await.unwrap();
    assert_eq!(log["commits"][0]["summary"], "project");
}

#[tokio::test]
async fn two_workers_racing_on_s3_the_sessions_owner_wins() {
    let s3 = S3Server::start().await;
    let a = Worker::start_with(|c| s3.configure(c)).await;
    let s = a
        .client
        .create_session(Some("shared"))
        .await
        .unwrap()
        .session
        .id;
    write(&a.client, &s, "/workspace/x.txt", "x\n").await;
    let (status, _) = snapshot(&a, &s).await;
    assert_eq!(status, 201);
    let b = Worker::start_with(|c| s3.configure(c)).await;
    b.client
        .create_session_json(json!({ "id": "shared", "from_snapshot": "shared" }))
        .await
        .unwrap();
    write(&a.client, &s, "/workspace/x.txt", "from a\n").await;
    write(&b.client, &s, "/workspace/x.txt", "from b\n").await;
    let (ra, rb) = tokio::join!(snapshot(&a, &s), snapshot(&b, &s));
    // B restored it, and so owns it (a newer epoch): its snapshot is the latest, and A, which
    // lost it, publishes nothing and stops serving it, whichever came first.
    assert_eq!((ra.0, rb.0), (404, 201), "{ra:?} {rb:?}");
    assert_eq!(ra.1["error"]["code"], "session_moved", "{ra:?}");
    assert_eq!(rb.1["latest"], true, "{rb:?}");
    let newer = &rb.1;
    let third = Worker::start_with(|c| s3.configure(c)).await;
    let listed = third
        .raw(
            reqwest::Method::GET,
            "/v1/sessions/shared/snapshots",
            Some(crate::support::TOKEN),
            None,
        )
        .await;
    assert_eq!(
        listed.0, 404,
        "the third worker has no such session: {listed:?}"
    );
    let restored = third
        .client
        .create_session_json(json!({ "from_snapshot": "shared" }))
        .await
        .unwrap()
        .session
        .id;
    assert_eq!(
        read(&third.client, &restored, "workspace/x.txt").await,
        "from b\n",
        "a: {ra:?}\nb: {rb:?} (latest {})",
        newer["id"]
    );
}

/// Found by schemathesis: a grace period longer than the calendar reaches back made the
/// subtraction panic, and the connection closed without an answer.
#[tokio::test]
async fn any_grace_period_is_an_answer() {
    let w = Worker::start().await;
    let gc = |grace: u64| {
        let body = serde_json::to_vec(&serde_json::json!({ "grace_s": grace })).unwrap();
        w.raw(
            reqwest::Method::POST,
            "/v1/snapshots/gc",
            Some(crate::support::TOKEN),
            Some(body),
        )
    };
    for grace in [8_336_513_094_016u64, i64::MAX as u64, 0] {
        let (status, answer) = gc(grace).await;
        assert_eq!(status, 200, "{grace}: {answer}");
    }
    // Past what the document's `int64` allows: refused, as the document says.
    crate::support::assert_error(&gc(u64::MAX).await, 400, "invalid_request");
}
