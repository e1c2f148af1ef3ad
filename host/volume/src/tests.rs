//! These make real volumes: they need root and mkfs.ext4, as the worker does.

use std::io::Write;

use super::*;

const SMALL: Quota = Quota {
    bytes: 32 << 20,
    inodes: 1024,
};

fn pool(dir: &Path, warm: usize) -> Arc<Volumes> {
    Volumes::open(&dir.join("pool"), SMALL, &["workspace", "tmp"], warm).unwrap()
}

/// A volume of `SMALL` attached at `<dir>/s`, from a pool with `warm` volumes ahead; the pool
/// is returned with it (its drop releases what it holds).
fn attached(dir: &Path, warm: usize) -> (Arc<Volumes>, PathBuf) {
    let volumes = pool(dir, warm);
    let at = dir.join("s");
    volumes.attach(&dir.join("s.img"), &at, SMALL).unwrap();
    (volumes, at)
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        unmount_all_under(self.0);
    }
}

#[test]
fn a_pooled_volume_is_moved_into_place_with_its_layout_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let _unmount = Unmount(dir.path());
    let (_volumes, at) = attached(dir.path(), 1);
    assert!(is_mount_point(&at));
    assert!(at.join("workspace").is_dir() && at.join("tmp").is_dir());
    let usage = Usage::of(&at).unwrap();
    assert!(usage.bytes_limit >= SMALL.bytes, "{usage:?}");
    assert!(usage.bytes_limit < SMALL.bytes + (8 << 20), "{usage:?}");
    assert!(usage.inodes_limit >= SMALL.inodes, "{usage:?}");
    assert!(!usage.is_full());
    // The loop device reads and writes the image directly (no second page cache) and goes
    // away with the mount.
    let device = mount_source(&at).unwrap();
    let listed = run("losetup", &["/usr/sbin/losetup"], |c| {
        c.args(["--list", "--noheadings", "--output", "DIO,AUTOCLEAR"])
            .arg(&device);
    })
    .unwrap();
    assert_eq!(
        listed.split_whitespace().collect::<Vec<_>>(),
        ["1", "1"],
        "{listed}"
    );
    let flags = nix::sys::statvfs::statvfs(&at).unwrap().flags();
    assert!(
        flags.contains(nix::sys::statvfs::FsFlags::ST_NOSUID),
        "{flags:?}"
    );
    assert!(
        flags.contains(nix::sys::statvfs::FsFlags::ST_NODEV),
        "{flags:?}"
    );
}

#[test]
fn writes_past_the_bytes_fail_with_no_space_and_the_volume_says_full() {
    let dir = tempfile::tempdir().unwrap();
    let _unmount = Unmount(dir.path());
    let (_volumes, at) = attached(dir.path(), 0);
    let mut file = File::create(at.join("workspace/big")).unwrap();
    let chunk = vec![7u8; 1 << 20];
    let error = (0..64)
        .find_map(|_| file.write_all(&chunk).and_then(|()| file.sync_all()).err())
        .expect("a 32 MiB volume took 64 MiB");
    assert_eq!(error.raw_os_error(), Some(libc_enospc()), "{error}");
    let usage = Usage::of(&at).unwrap();
    assert!(usage.is_full(), "{usage:?}");
    // Deleting gives the room back.
    drop(file);
    std::fs::remove_file(at.join("workspace/big")).unwrap();
    assert!(!Usage::of(&at).unwrap().is_full());
}

#[test]
fn inodes_run_out_at_the_inode_limit() {
    let dir = tempfile::tempdir().unwrap();
    let _unmount = Unmount(dir.path());
    let (_volumes, at) = attached(dir.path(), 0);
    let limit = Usage::of(&at).unwrap().inodes_limit;
    let error = (0..limit + 10)
        .find_map(|n| File::create(at.join(format!("tmp/{n}"))).err())
        .expect("more files than inodes");
    assert_eq!(error.raw_os_error(), Some(libc_enospc()), "{error}");
    assert!(Usage::of(&at).unwrap().is_full());
}

#[test]
fn a_volume_comes_back_after_release_with_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let _unmount = Unmount(dir.path());
    let volumes = pool(dir.path(), 0);
    let custom = Quota {
        bytes: 48 << 20,
        inodes: 2048,
    };
    let (image, at) = (dir.path().join("s.img"), dir.path().join("s"));
    volumes.attach(&image, &at, custom).unwrap();
    std::fs::write(at.join("workspace/kept"), "yes").unwrap();
    release(&at);
    assert!(!is_mount_point(&at));
    // The loop device went with the mount (autoclear): none is left on the image.
    let attached = run("losetup", &["/usr/sbin/losetup", "/sbin/losetup"], |c| {
        c.arg("--associated").arg(&image);
    })
    .unwrap();
    assert_eq!(attached.trim(), "", "a loop device outlived its volume");
    Volumes::mount_existing(&image, &at).unwrap();
    Volumes::mount_existing(&image, &at).unwrap();
    assert_eq!(
        std::fs::read_to_string(at.join("workspace/kept")).unwrap(),
        "yes"
    );
    assert!(Usage::of(&at).unwrap().bytes_limit >= custom.bytes);
}

#[test]
fn a_device_left_attached_by_a_killed_worker_is_detached_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let _unmount = Unmount(dir.path());
    let image = dir.path().join("orphan.img");
    format(&image, SMALL).unwrap();
    let losetup = |args: &[&str]| {
        run("losetup", &["/usr/sbin/losetup"], |c| {
            c.args(args).arg(&image);
        })
        .unwrap()
    };
    // What a worker killed between its attach and its mount leaves.
    losetup(&["--find", "--show"]);
    assert_ne!(losetup(&["--associated"]).trim(), "");
    let _volumes = pool(dir.path(), 0);
    assert_eq!(
        losetup(&["--associated"]).trim(),
        "",
        "the stale device is still attached"
    );
}

#[test]
fn quotas_that_cannot_be_a_volume_are_refused() {
    for (bytes, inodes) in [(1 << 20, 1024), (32 << 20, 10), (32 << 20, 1 << 20)] {
        assert!(Quota { bytes, inodes }.check().is_err(), "{bytes} {inodes}");
    }
    assert!(SMALL.check().is_ok());
}

#[test]
fn mountinfo_escapes_are_undone() {
    assert_eq!(unescape_mountinfo(r"/tmp/a\040b\134c"), "/tmp/a b\\c");
    assert_eq!(unescape_mountinfo(r"/x\0"), r"/x\0");
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}
