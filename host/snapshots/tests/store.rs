//! The snapshot store against the local directory store: incremental uploads, the latest
//! pointer under racing writers, restore checks, and garbage collection beside a snapshot in
//! progress.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod common;

use common::snapshots;
use std::time::Duration;

use hearth_snapshots::{FileCache, Source};
use object_store::ObjectStoreExt;

fn sources(root: &std::path::Path) -> Vec<Source> {
    vec![
        Source {
            name: "workspace".into(),
            dir: root.join("workspace"),
        },
        Source {
            name: "git".into(),
            dir: root.join("git"),
        },
    ]
}

fn tree(root: &std::path::Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("workspace/d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::create_dir_all(root.join("git/refs/heads")).unwrap();
    std::fs::write(root.join("git/HEAD"), "ref: refs/heads/main\n").unwrap();
}

#[tokio::test]
async fn an_incremental_snapshot_uploads_only_the_changed_blob() {
    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = snapshots(store.path());
    tree(work.path(), 100);
    let mut cache = FileCache::default();
    let full = s
        .take("s1", &sources(work.path()), &mut cache, None)
        .await
        .unwrap();
    assert_eq!(full.files, 101);
    assert_eq!(full.uploaded_blobs, 101);
    std::fs::write(work.path().join("workspace/d3/f3.txt"), "changed\n").unwrap();
    let next = s
        .take("s1", &sources(work.path()), &mut cache, None)
        .await
        .unwrap();
    assert_eq!(next.uploaded_blobs, 1, "{next:?}");
    assert_eq!(
        next.objects_written, 3,
        "one blob, the manifest, the pointer"
    );
    assert!(next.latest);

    // Restore: the changed file, every other file, byte for byte.
    let target = tempfile::tempdir().unwrap();
    let manifest = s.resolve("s1").await.unwrap();
    assert_eq!(format!("s1/{}", manifest.name), next.id);
    s.restore(&manifest, &sources(target.path())).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(target.path().join("workspace/d3/f3.txt")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(target.path().join("git/HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
}

#[tokio::test]
async fn racing_writers_never_overwrite_each_others_pointer() {
    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    tree(work.path(), 5);
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let s = snapshots(store.path());
            let sources = sources(work.path());
            tokio::spawn(async move {
                let mut cache = FileCache::default();
                s.take("raced", &sources, &mut cache, None).await.unwrap()
            })
        })
        .collect();
    let mut taken = Vec::new();
    for writer in writers {
        taken.push(writer.await.unwrap());
    }
    // The newest writer knows it is the latest, whatever order the pointers landed in.
    let newest_taken = taken.iter().max_by(|a, b| a.id.cmp(&b.id)).unwrap();
    assert!(newest_taken.latest, "{taken:?}");
    // The pointer names the newest snapshot of them all.
    let newest = taken.iter().map(|t| t.id.clone()).max().unwrap();
    let latest = snapshots(store.path()).resolve("raced").await.unwrap();
    assert_eq!(format!("raced/{}", latest.name), newest);
}

#[tokio::test]
async fn a_corrupt_or_missing_blob_fails_the_restore_clearly() {
    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = snapshots(store.path());
    tree(work.path(), 3);
    s.take("c", &sources(work.path()), &mut FileCache::default(), None)
        .await
        .unwrap();
    let manifest = s.resolve("c").await.unwrap();
    let victim = manifest
        .entries
        .iter()
        .find(|e| e.path == "workspace/d1/f1.txt")
        .unwrap();
    let hash = victim.sha256.clone().unwrap();
    let blob = store.path().join(format!("blobs/{}/{hash}", &hash[..2]));
    std::fs::write(&blob, "tampered").unwrap();
    let error = s
        .restore(&manifest, &sources(tempfile::tempdir().unwrap().path()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "snapshot_corrupt", "{error}");
    assert!(error.to_string().contains("workspace/d1/f1.txt"), "{error}");
    std::fs::remove_file(&blob).unwrap();
    let error = s
        .restore(&manifest, &sources(tempfile::tempdir().unwrap().path()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
}

#[tokio::test]
async fn a_manifest_cannot_write_outside_its_targets() {
    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = snapshots(store.path());
    tree(work.path(), 1);
    s.take("m", &sources(work.path()), &mut FileCache::default(), None)
        .await
        .unwrap();
    let mut manifest = s.resolve("m").await.unwrap();
    manifest.entries[0].path = "workspace/../../escape.txt".into();
    let target = tempfile::tempdir().unwrap();
    let error = s
        .restore(&manifest, &sources(&target.path().join("in")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "snapshot_corrupt", "{error}");
    assert!(!target.path().join("escape.txt").exists());
}

#[tokio::test]
async fn retention_and_garbage_collection_spare_a_snapshot_in_progress() {
    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = snapshots(store.path());
    tree(work.path(), 3);
    let mut cache = FileCache::default();
    for round in 0..4 {
        std::fs::write(
            work.path().join("workspace/round.txt"),
            format!("{round}\n"),
        )
        .unwrap();
        s.take("r", &sources(work.path()), &mut cache, None)
            .await
            .unwrap();
    }
    assert_eq!(s.prune("r", 2).await.unwrap(), 2);
    assert_eq!(s.list("r").await.unwrap().len(), 2);
    // A concurrent snapshot has uploaded a blob but not yet written its manifest.
    let in_progress = object_store::path::Path::from(format!("blobs/ab/ab{}", "0".repeat(62)));
    s.store().put(&in_progress, "new".into()).await.unwrap();

    let report = s.collect_garbage(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    assert!(
        report.kept_recent >= 3,
        "rounds 0, 1 and the blob in progress: {report:?}"
    );
    s.store().head(&in_progress).await.unwrap();

    let report = s.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted, 3, "{report:?}");
    assert!(s.store().head(&in_progress).await.is_err());
    // What the kept snapshots need is all still there.
    let latest = s.resolve("r").await.unwrap();
    s.restore(&latest, &sources(tempfile::tempdir().unwrap().path()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_worker_killed_mid_snapshot_leaves_the_previous_one_intact() {
    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = snapshots(store.path());
    tree(work.path(), 10);
    let mut cache = FileCache::default();
    let good = s
        .take("k", &sources(work.path()), &mut cache, None)
        .await
        .unwrap();

    // Killed after uploading its blobs, before its manifest: only orphan blobs remain.
    let orphan = object_store::path::Path::from(format!("blobs/cd/cd{}", "1".repeat(62)));
    s.store().put(&orphan, "half-way".into()).await.unwrap();
    // Killed after its manifest, before the pointer: a manifest nobody points at.
    let mut unpointed = s.resolve("k").await.unwrap();
    unpointed.name = "0000000000001-deadbeef".into();
    s.store()
        .put(
            &format!("sessions/k/snapshots/{}.json", unpointed.name).into(),
            serde_json::to_vec(&unpointed).unwrap().into(),
        )
        .await
        .unwrap();

    let latest = s.resolve("k").await.unwrap();
    assert_eq!(
        format!("k/{}", latest.name),
        good.id,
        "the pointer still names the last good one"
    );
    let target = tempfile::tempdir().unwrap();
    s.restore(&latest, &sources(target.path())).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(target.path().join("workspace/d1/f1.txt")).unwrap(),
        "file 1\n"
    );
    // The orphan blob goes at the next collection; the next snapshot moves the pointer on.
    let report = s.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");
    std::fs::write(work.path().join("workspace/d1/f1.txt"), "after\n").unwrap();
    let next = s
        .take("k", &sources(work.path()), &mut cache, None)
        .await
        .unwrap();
    assert_eq!(next.uploaded_blobs, 1);
    assert_eq!(next.objects_written, 3);
}

#[tokio::test]
async fn a_restore_keeps_permission_bits_and_drops_setuid_and_setgid() {
    use std::os::unix::fs::PermissionsExt;

    let (store, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = snapshots(store.path());
    tree(work.path(), 1);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    for (name, bits) in [
        ("run.sh", 0o755),
        ("suid", 0o4755),
        ("sgid", 0o2750),
        ("private", 0o600),
    ] {
        let path = work.path().join("workspace").join(name);
        std::fs::write(&path, name).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits)).unwrap();
        assert_eq!(mode(&path), bits);
    }
    s.take(
        "modes",
        &sources(work.path()),
        &mut FileCache::default(),
        None,
    )
    .await
    .unwrap();

    let target = tempfile::tempdir().unwrap();
    let manifest = s.resolve("modes").await.unwrap();
    s.restore(&manifest, &sources(target.path())).await.unwrap();
    let restored = |name: &str| mode(&target.path().join("workspace").join(name));
    assert_eq!(
        [
            restored("run.sh"),
            restored("suid"),
            restored("sgid"),
            restored("private")
        ],
        [0o755, 0o755, 0o750, 0o600]
    );
}

/// A snapshot may store what the session can hold and no more: a sparse file of a terabyte is
/// refused before a byte of it is read, and a hard link is not a second file's worth.
#[tokio::test]
async fn a_snapshot_past_its_budget_fails_before_reading_and_hard_links_count_once() {
    let store = tempfile::tempdir().unwrap();
    let s = snapshots(store.path());
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("workspace")).unwrap();
    let ws = work.path().join("workspace");
    std::fs::write(ws.join("data.bin"), vec![7u8; 4 << 20]).unwrap();
    for n in 0..10 {
        std::fs::hard_link(ws.join("data.bin"), ws.join(format!("link-{n}"))).unwrap();
    }
    s.take(
        "linked",
        &sources(work.path()),
        &mut FileCache::default(),
        Some(16 << 20),
    )
    .await
    .unwrap();

    std::fs::File::create(ws.join("huge.bin"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let started = std::time::Instant::now();
    let refused = s
        .take(
            "sparse",
            &sources(work.path()),
            &mut FileCache::default(),
            Some(16 << 20),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it read the file"
    );
    assert_eq!(refused.code(), "snapshot_too_large", "{refused}");
    assert!(refused.to_string().contains("huge.bin"), "{refused}");
    // Without a budget (a worker with quotas off) nothing changes.
    std::fs::remove_file(ws.join("huge.bin")).unwrap();
    s.take(
        "unbounded",
        &sources(work.path()),
        &mut FileCache::default(),
        None,
    )
    .await
    .unwrap();
}

/// The lost-update sequence: a worker that lost a session (a newer owner claimed it) writes a
/// snapshot later, with a later name, and it still never becomes the latest.
#[tokio::test]
async fn a_worker_that_lost_the_session_never_publishes_the_latest() {
    let (store, a_dir, b_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let s = snapshots(store.path());
    tree(a_dir.path(), 3);
    tree(b_dir.path(), 3);
    std::fs::write(a_dir.path().join("workspace/who.txt"), "a\n").unwrap();
    std::fs::write(b_dir.path().join("workspace/who.txt"), "b\n").unwrap();
    // A worker's snapshot of its directory at the epoch it holds.
    let publish = |epoch: u64, dir: &std::path::Path| {
        let (s, sources) = (s.clone(), sources(dir));
        async move {
            s.take_as("moved", epoch, &sources, &mut FileCache::default(), None)
                .await
                .unwrap()
        }
    };
    let a = s.claim("moved", "worker-a", None).await.unwrap();
    assert_eq!(a.epoch, 1);
    let first = publish(a.epoch, a_dir.path()).await;
    assert!(first.latest);
    let b = s.claim("moved", "worker-b", None).await.unwrap();
    assert_eq!(b.epoch, 2);
    assert_eq!(s.owner("moved").await.unwrap().unwrap().worker, "worker-b");
    let by_b = publish(b.epoch, b_dir.path()).await;
    assert!(by_b.latest);
    // A, stale, publishes again (its name is later: its clock is ahead, or it is just later).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let stale = publish(a.epoch, a_dir.path()).await;
    assert!(!stale.latest, "{stale:?}");
    assert!(stale.id > by_b.id, "the stale one has the later name");
    let latest = s.resolve("moved").await.unwrap();
    assert_eq!(format!("moved/{}", latest.name), by_b.id);
    // A pointer of the old format (before epochs) reads as epoch 0, below any claimed one.
    let old = object_store::path::Path::from(
        "sessions/moved/latest/00000000000000000099-9999999999999-ffffffff",
    );
    s.store()
        .put(&old, bytes::Bytes::from_static(b"x").into())
        .await
        .unwrap();
    assert_eq!(
        format!("moved/{}", s.resolve("moved").await.unwrap().name),
        by_b.id
    );
}

/// Two workers claiming one session at once: each gets an epoch of its own, never the same.
#[tokio::test]
async fn racing_claims_get_distinct_epochs() {
    let store = tempfile::tempdir().unwrap();
    let s = snapshots(store.path());
    let claims: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.claim("contested", &format!("w{i}"), None).await.unwrap() })
        })
        .collect();
    let mut epochs = Vec::new();
    for claim in claims {
        epochs.push(claim.await.unwrap().epoch);
    }
    epochs.sort_unstable();
    assert_eq!(epochs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(s.owner("contested").await.unwrap().unwrap().epoch, 6);
    assert!(s.owner("nobody").await.unwrap().is_none());
}
