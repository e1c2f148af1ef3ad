//! Garbage collection beside a snapshot in progress, with no grace at all: the snapshot's blobs
//! are announced before they are uploaded, so nothing it needs is ever collected.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod common;

use common::snapshots;
use std::time::Duration;

use hearth_snapshots::{FileCache, Source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collecting_with_no_grace_during_a_snapshot_loses_nothing() {
    let store = tempfile::tempdir().unwrap();
    let snapshots = snapshots(store.path());
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("workspace");
    for i in 0..3_000 {
        let dir = ws.join(format!("d{}", i % 30));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), format!("content {i}\n")).unwrap();
    }
    let sources = vec![Source {
        name: "workspace".into(),
        dir: ws,
    }];
    let taking = {
        let (snapshots, sources) = (snapshots.clone(), sources.clone());
        tokio::spawn(async move {
            snapshots
                .take("busy", &sources, &mut FileCache::default(), None)
                .await
        })
    };
    let mut spared = 0;
    while !taking.is_finished() {
        let report = snapshots.collect_garbage(Duration::ZERO).await.unwrap();
        spared += report.in_progress;
    }
    taking.await.unwrap().unwrap();
    assert!(
        spared > 0,
        "no collection ran while the snapshot was in progress"
    );
    let report = snapshots.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");

    let back = tempfile::tempdir().unwrap();
    let targets = vec![Source {
        name: "workspace".into(),
        dir: back.path().join("workspace"),
    }];
    std::fs::create_dir_all(&targets[0].dir).unwrap();
    let manifest = snapshots.resolve("busy").await.unwrap();
    snapshots.restore(&manifest, &targets).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(targets[0].dir.join("d7/f2707")).unwrap(),
        "content 2707\n"
    );
}

#[tokio::test]
async fn a_session_called_inflight_keeps_its_snapshots() {
    let store = tempfile::tempdir().unwrap();
    let snapshots = snapshots(store.path());
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("workspace")).unwrap();
    std::fs::write(root.path().join("workspace/kept.txt"), "kept\n").unwrap();
    let sources = vec![Source {
        name: "workspace".into(),
        dir: root.path().join("workspace"),
    }];
    snapshots
        .take("inflight", &sources, &mut FileCache::default(), None)
        .await
        .unwrap();
    let report = snapshots.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!((report.manifests, report.deleted), (1, 0), "{report:?}");
    assert!(snapshots.resolve("inflight").await.is_ok());
}
