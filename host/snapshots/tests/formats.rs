//! Snapshots keep every byte: names and link targets that are not UTF-8 round-trip exactly,
//! and snapshots written by round 1 (manifest format 1, in `fixtures/round1-store`) still
//! restore.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod common;

use common::snapshots;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hearth_snapshots::{FileCache, Source};

fn sources(root: &Path) -> Vec<Source> {
    ["workspace", "git"]
        .into_iter()
        .map(|name| Source {
            name: name.into(),
            dir: root.join(name),
        })
        .collect()
}

fn name(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

#[tokio::test]
async fn names_and_link_targets_that_are_not_utf8_round_trip_exactly() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("workspace");
    std::fs::create_dir_all(ws.join(name(b"dir-\xfe"))).unwrap();
    std::fs::create_dir_all(root.path().join("git")).unwrap();
    std::fs::write(ws.join(name(b"\xff.txt")), "one").unwrap();
    std::fs::write(ws.join(name(b"\xfe.txt")), "two").unwrap();
    std::fs::write(
        ws.join(name(b"dir-\xfe")).join(name(b"in\x80side")),
        "three",
    )
    .unwrap();
    std::os::unix::fs::symlink(name(b"\xff.txt"), ws.join("link")).unwrap();
    let store = tempfile::tempdir().unwrap();
    let snapshots = snapshots(store.path());
    let info = snapshots
        .take(
            "odd",
            &sources(root.path()),
            &mut FileCache::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(info.files, 3);

    let back = tempfile::tempdir().unwrap();
    let targets = sources(back.path());
    for t in &targets {
        std::fs::create_dir_all(&t.dir).unwrap();
    }
    let manifest = snapshots.resolve("odd").await.unwrap();
    assert_eq!(manifest.version, hearth_snapshots::MANIFEST_VERSION);
    snapshots.restore(&manifest, &targets).await.unwrap();
    let ws = back.path().join("workspace");
    assert_eq!(std::fs::read(ws.join(name(b"\xff.txt"))).unwrap(), b"one");
    assert_eq!(std::fs::read(ws.join(name(b"\xfe.txt"))).unwrap(), b"two");
    assert_eq!(
        std::fs::read(ws.join(name(b"dir-\xfe")).join(name(b"in\x80side"))).unwrap(),
        b"three"
    );
    assert_eq!(
        std::fs::read_link(ws.join("link")).unwrap().as_os_str(),
        name(b"\xff.txt")
    );
}

#[tokio::test]
async fn a_snapshot_written_by_round_1_still_restores() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/round1-store");
    let store = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", fixture.display()))
        .arg(store.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let snapshots = snapshots(store.path());
    let manifest = snapshots.resolve("round1").await.unwrap();
    assert_eq!(manifest.version, 1);
    let back = tempfile::tempdir().unwrap();
    let targets = sources(back.path());
    for t in &targets {
        std::fs::create_dir_all(&t.dir).unwrap();
    }
    snapshots.restore(&manifest, &targets).await.unwrap();
    let ws = back.path().join("workspace");
    assert_eq!(
        std::fs::read_to_string(ws.join("main.py")).unwrap(),
        "import pkg\nprint('hello')\n"
    );
    assert_eq!(
        std::fs::metadata(ws.join("main.py"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read(ws.join("pkg/sub/data.bin")).unwrap(),
        [0, 1, 2, 255, 254]
    );
    assert_eq!(std::fs::read(ws.join("pkg/__init__.py")).unwrap(), b"");
    assert_eq!(
        std::fs::read_link(ws.join("link")).unwrap(),
        Path::new("pkg/sub/data.bin")
    );
    assert_eq!(
        std::fs::read_to_string(back.path().join("git/HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
}

#[tokio::test]
async fn a_manifest_cannot_make_a_link_through_a_link() {
    let store = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let manifest = serde_json::json!({
        "version": 2,
        "session": "evil",
        "name": "0000000000001-aaaaaaaa",
        "created_at_ms": 1,
        "entries": [
            { "path": "workspace/a", "kind": "symlink", "size": 0, "mode": 41471,
              "target": outside.path() },
            { "path": "workspace/a/planted", "kind": "symlink", "size": 0, "mode": 41471,
              "target": "/etc/passwd" }
        ]
    });
    let dir = store.path().join("sessions/evil/snapshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0000000000001-aaaaaaaa.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let snapshots = snapshots(store.path());
    let manifest = snapshots
        .resolve("evil/0000000000001-aaaaaaaa")
        .await
        .unwrap();
    let back = tempfile::tempdir().unwrap();
    let targets = sources(back.path());
    for t in &targets {
        std::fs::create_dir_all(&t.dir).unwrap();
    }
    let restored = snapshots.restore(&manifest, &targets).await;
    assert!(
        matches!(
            restored,
            Err(hearth_snapshots::SnapshotError::Corrupt { .. })
        ),
        "{restored:?}"
    );
    assert!(!outside.path().join("planted").exists());
}
