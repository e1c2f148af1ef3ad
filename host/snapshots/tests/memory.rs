//! A restore holds one chunk of a file in memory, whatever its size, and puts sparse files
//! back sparse. (Its own test binary: it reads the process's peak memory.)

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod common;

use common::snapshots;
use std::os::unix::fs::MetadataExt;

use hearth_snapshots::{FileCache, Source};

/// The peak resident memory of this process, in MiB.
fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test]
async fn a_large_sparse_file_restores_sparse_in_bounded_memory() {
    const SIZE: u64 = 512 * 1024 * 1024;
    let store = tempfile::tempdir().unwrap();
    let snapshots = snapshots(store.path());
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    let sparse = std::fs::File::create(ws.join("big.bin")).unwrap();
    sparse.set_len(SIZE).unwrap();
    std::fs::write(ws.join("small.txt"), "small\n").unwrap();
    let sources = vec![Source {
        name: "workspace".into(),
        dir: ws,
    }];
    snapshots
        .take("sparse", &sources, &mut FileCache::default(), None)
        .await
        .unwrap();
    let before = peak_mib();

    let back = tempfile::tempdir().unwrap();
    let targets = vec![Source {
        name: "workspace".into(),
        dir: back.path().join("workspace"),
    }];
    std::fs::create_dir_all(&targets[0].dir).unwrap();
    let manifest = snapshots.resolve("sparse").await.unwrap();
    snapshots.restore(&manifest, &targets).await.unwrap();
    let after = peak_mib();
    assert!(
        after < before + 64,
        "the restore's peak memory grew from {before} MiB to {after} MiB"
    );
    let restored = std::fs::metadata(targets[0].dir.join("big.bin")).unwrap();
    assert_eq!(restored.len(), SIZE);
    assert!(
        restored.blocks() * 512 < SIZE / 16,
        "restored with {} bytes on disk",
        restored.blocks() * 512
    );
    assert_eq!(
        std::fs::read_to_string(targets[0].dir.join("small.txt")).unwrap(),
        "small\n"
    );
}
