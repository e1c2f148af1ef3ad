//! Each rule of the layer, tried the way an agent would try to break it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::walk::Walk;

fn tree() -> (tempfile::TempDir, Tree) {
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::open(dir.path()).unwrap();
    (dir, tree)
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn links_are_never_followed_at_the_end_or_on_the_way() {
    let (dir, tree) = tree();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("abs")).unwrap();
    std::fs::write(dir.path().join("inside"), "x").unwrap();
    std::os::unix::fs::symlink("inside", dir.path().join("rel")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("self")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
    for name in ["abs", "rel", "zero"] {
        assert!(
            matches!(
                tree.read(Path::new(name), 1 << 20),
                Err(ContentError::Symlink)
            ),
            "{name}"
        );
    }
    for path in ["out/secret", "self/inside"] {
        assert!(
            matches!(
                tree.read(Path::new(path), 1 << 20),
                Err(ContentError::Symlink)
            ),
            "{path}"
        );
    }
    assert!(matches!(
        tree.read(Path::new("../x"), 10),
        Err(ContentError::Escapes)
    ));
    assert_eq!(tree.read(Path::new("inside"), 10).unwrap(), b"x");
    assert_eq!(tree.kind(Path::new("abs")).unwrap(), Some(Kind::Symlink));
    assert_eq!(
        tree.read_link(Path::new("abs"), 4096).unwrap(),
        outside.path().join("secret").as_os_str()
    );
}

#[test]
fn a_fifo_is_refused_at_once_never_waited_on() {
    let (dir, tree) = tree();
    mkfifo(&dir.path().join("pipe"));
    let started = Instant::now();
    assert!(matches!(
        tree.read(Path::new("pipe"), 10),
        Err(ContentError::NotAFile("FIFO"))
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        tree.kind(Path::new("pipe")).unwrap(),
        Some(Kind::Special("FIFO"))
    );
}

#[test]
fn reads_are_capped_and_sparse_files_are_refused_by_size() {
    let (dir, tree) = tree();
    let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
    sparse.set_len(1 << 40).unwrap();
    assert!(matches!(
        tree.read(Path::new("sparse"), 1 << 20),
        Err(ContentError::TooLarge { limit }) if limit == 1 << 20
    ));
    std::fs::write(dir.path().join("ten"), "0123456789").unwrap();
    assert!(matches!(
        tree.read(Path::new("ten"), 9),
        Err(ContentError::TooLarge { .. })
    ));
    assert_eq!(tree.read(Path::new("ten"), 10).unwrap().len(), 10);
}

#[test]
fn writes_replace_links_never_write_through_them_and_carry_safe_modes() {
    let (dir, tree) = tree();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("link")).unwrap();
    assert!(!tree.write_file(Path::new("link"), b"new", 0o7777).unwrap());
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(std::fs::read(dir.path().join("link")).unwrap(), b"new");
    let mode = std::fs::metadata(dir.path().join("link"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o775);
    // A link to a directory on the way is not a parent.
    std::os::unix::fs::symlink(outside.path(), dir.path().join("dirlink")).unwrap();
    assert!(matches!(
        tree.write_file(Path::new("dirlink/x"), b"x", 0o644),
        Err(ContentError::Symlink | ContentError::NotADirectory)
    ));
    assert!(!outside.path().join("x").exists());
    assert!(tree.write_file(Path::new("a/b/c"), b"x", 0o644).unwrap());
    assert!(matches!(
        tree.write_file(Path::new("a/b"), b"x", 0o644),
        Err(ContentError::IsDirectory)
    ));
    let long = "n".repeat(256);
    assert!(matches!(
        tree.write_file(Path::new(&long), b"x", 0o644),
        Err(ContentError::NameTooLong)
    ));
}

#[test]
fn entries_keep_names_as_bytes_and_say_each_type() {
    let (dir, tree) = tree();
    let odd = OsStr::from_bytes(b"\xff\xfe.txt");
    std::fs::write(dir.path().join(odd), "x").unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    mkfifo(&dir.path().join("p"));
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
    let entries = tree.entries().unwrap();
    let kinds: Vec<(&[u8], Kind)> = entries
        .iter()
        .map(|e| (e.name.as_bytes(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (&b"d"[..], Kind::Dir),
            (&b"l"[..], Kind::Symlink),
            (&b"p"[..], Kind::Special("FIFO")),
            (&b"\xff\xfe.txt"[..], Kind::File),
        ]
    );
}

fn deep(dir: &Path, depth: usize) {
    let mut path = dir.to_path_buf();
    // Built with relative mkdirs: the whole path would pass PATH_MAX.
    let mut current = Tree::open(&path).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&current, "d", Mode::from_raw_mode(0o755)).unwrap();
        current = current.dir(Path::new("d")).unwrap();
    }
    path.push("d");
    rustix::fs::openat(
        &current,
        "leaf",
        OFlags::CREATE | OFlags::WRONLY,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
}

#[test]
fn walks_stop_at_the_depth_limit_and_hold_few_descriptors() {
    let (dir, tree) = tree();
    deep(dir.path(), 3000);
    let mut seen = 0;
    let walked = Walk::new(100).run(&tree, |_| {
        seen += 1;
        Ok::<(), ContentError>(())
    });
    assert!(matches!(walked, Err(ContentError::TooDeep { limit: 100 })));
    assert_eq!(seen, 100);
    let mut paths = Vec::new();
    std::fs::create_dir_all(dir.path().join("x/y")).unwrap();
    std::fs::write(dir.path().join("x/y/f"), "f").unwrap();
    std::fs::write(dir.path().join("x/g"), "g").unwrap();
    let small = Tree::open(&dir.path().join("x")).unwrap();
    Walk::new(10)
        .run(&small, |visit| {
            paths.push((visit.path.to_owned(), visit.kind, visit.depth));
            Ok::<(), ContentError>(())
        })
        .unwrap();
    assert_eq!(
        paths,
        vec![
            ("g".into(), Kind::File, 1),
            ("y".into(), Kind::Dir, 1),
            ("y/f".into(), Kind::File, 2),
        ]
    );
}

#[test]
fn a_tree_of_any_depth_is_removed_without_following_links() {
    let (dir, _tree) = tree();
    let victim = dir.path().join("session");
    std::fs::create_dir(&victim).unwrap();
    deep(&victim, 3000);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), "keep").unwrap();
    std::os::unix::fs::symlink(outside.path(), victim.join("out")).unwrap();
    mkfifo(&victim.join("pipe"));
    std::fs::create_dir(victim.join("locked")).unwrap();
    std::fs::write(victim.join("locked/f"), "f").unwrap();
    std::fs::set_permissions(victim.join("locked"), std::fs::Permissions::from_mode(0o0)).unwrap();
    remove_tree(&victim).unwrap();
    assert!(!victim.exists());
    assert!(outside.path().join("keep").exists());
    remove_tree(&victim).unwrap();
}

#[test]
fn a_mount_point_is_repaired_whatever_was_left_there() {
    let (dir, tree) = tree();
    std::fs::write(dir.path().join("skills"), "a file in the way").unwrap();
    assert!(tree.repair_mount_point(Path::new("skills")).unwrap());
    assert!(dir.path().join("skills").is_dir());
    std::fs::remove_dir(dir.path().join("skills")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.path().join("skills")).unwrap();
    assert!(tree.repair_mount_point(Path::new("skills")).unwrap());
    assert!(
        std::fs::symlink_metadata(dir.path().join("skills"))
            .unwrap()
            .is_dir()
    );
    assert!(!tree.repair_mount_point(Path::new("skills")).unwrap());
    assert!(tree.repair_mount_point(Path::new("a/b")).is_ok());
    assert!(dir.path().join("a/b").is_dir());
}

#[test]
fn paths_longer_than_path_max_are_resolved_in_pieces() {
    let (dir, tree) = tree();
    let name = "n".repeat(255);
    let mut current = Tree::open(dir.path()).unwrap();
    let mut rel = std::path::PathBuf::new();
    for _ in 0..24 {
        rustix::fs::mkdirat(&current, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        current = current.dir(Path::new(&name)).unwrap();
        rel.push(&name);
    }
    assert!(rel.as_os_str().len() > 6000);
    let file = rel.join("leaf");
    assert!(tree.write_file(&file, b"deep", 0o644).unwrap());
    assert_eq!(tree.read(&file, 10).unwrap(), b"deep");
    let mut files = 0;
    Walk::new(100)
        .run(&tree, |visit| {
            if visit.kind == Kind::File {
                files += 1;
                assert!(visit.dir.open_listed_file(Path::new(visit.name))?.is_some());
            }
            Ok::<(), ContentError>(())
        })
        .unwrap();
    assert_eq!(files, 1);
    let victim = dir.path().join(&name);
    remove_tree(&victim).unwrap();
    assert!(!victim.exists());
}
