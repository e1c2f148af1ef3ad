//! Session volumes: each session's writable places live on an ext4 filesystem of its own, made in
//! an image file and loop-mounted, whose size and inode count *are* the session's quota.
//!
//! Why a filesystem per session, not project quotas or accounting:
//! - The kernel enforces it for every writer alike: a tool, a jailed program, libgit2 in the git
//!   helper, a restore. A writer past the limit gets `ENOSPC` at the write that crosses it, with
//!   no window and no per-write cost in the worker.
//! - ext4 quotas need `CONFIG_QFMT_V2`, which this kind of machine's kernel lacks; XFS here has no
//!   quota support either. A loop-mounted ext4 image needs nothing but root and `mkfs.ext4`.
//! - Usage is one `statvfs`: bytes and inodes, exact, in microseconds.
//!
//! What it costs, and how that is hidden:
//! - Formatting and mounting a volume takes ~20 ms, too slow for a session that must be ready in
//!   5 ms. [`Volumes`] keeps a few volumes of the default quota formatted and mounted ahead; a
//!   session takes one by *moving* the mount, which is a single syscall. A session with its own
//!   quota pays the format.
//! - Images are sparse files: a volume costs the host disk what its files take (the mount uses
//!   `discard`, so deleted files give their blocks back). The sum of the quotas may exceed the
//!   disk; the worker's free-space floor is what keeps the host's disk from filling.
//!
//! Mounts outlive the process that made them (a worker killed with `kill -9` finds them again when
//! it restarts); [`unmount_all_under`] clears a data dir's mounts for a clean stop or a test.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// A session's limits: what its volume can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub bytes: u64,
    pub inodes: u64,
}

/// The smallest volume worth making: ext4 needs room for its own structures.
pub const MIN_BYTES: u64 = 16 << 20;
pub const MIN_INODES: u64 = 256;
/// ext4 with 4 KiB blocks holds at most one inode per block of a block group.
pub const BYTES_PER_INODE_MIN: u64 = 4096;

impl Quota {
    /// Why this quota cannot be a volume, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.bytes < MIN_BYTES {
            return Err(format!("bytes must be at least {MIN_BYTES}"));
        }
        if self.inodes < MIN_INODES {
            return Err(format!("inodes must be at least {MIN_INODES}"));
        }
        if self.inodes > self.bytes / BYTES_PER_INODE_MIN {
            return Err(format!(
                "at most one inode per {BYTES_PER_INODE_MIN} bytes: {} bytes allow {} inodes",
                self.bytes,
                self.bytes / BYTES_PER_INODE_MIN
            ));
        }
        Ok(())
    }

    /// The image's size: the bytes asked for plus what ext4 keeps for itself (inode tables, the
    /// journal, bitmaps), so that the files can use at least `bytes`.
    fn image_bytes(&self) -> u64 {
        // ext4 also keeps 2 % of the blocks (at most 16 MiB) back for its metadata.
        let kept_back = (self.bytes / 50).min(16 << 20);
        let overhead =
            self.inodes * INODE_SIZE + JOURNAL_BYTES + kept_back + self.bytes / 64 + (4 << 20);
        (self.bytes + overhead).div_ceil(4096) * 4096
    }
}

const INODE_SIZE: u64 = 256;
const JOURNAL_BYTES: u64 = 4 << 20;

/// What a volume holds now, and what it can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes_used: u64,
    pub bytes_limit: u64,
    pub inodes_used: u64,
    pub inodes_limit: u64,
}

/// Below this many free bytes a volume counts as full: a write that failed for space left at
/// most a few blocks.
const FULL_MARGIN_BYTES: u64 = 1 << 20;

impl Usage {
    /// The usage of the filesystem mounted at `mount`.
    pub fn of(mount: &Path) -> std::io::Result<Self> {
        let stat = nix::sys::statvfs::statvfs(mount).map_err(std::io::Error::from)?;
        let block = stat.fragment_size();
        // ext4 keeps some free blocks back for its own metadata (`blocks_free` counts them,
        // `blocks_available` does not): they are not the session's to use.
        let kept_back = stat.blocks_free().saturating_sub(stat.blocks_available());
        let limit = stat.blocks().saturating_sub(kept_back);
        Ok(Self {
            bytes_used: limit.saturating_sub(stat.blocks_available()) * block,
            bytes_limit: limit * block,
            inodes_used: stat.files().saturating_sub(stat.files_free()),
            inodes_limit: stat.files(),
        })
    }

    /// At its limit: so near the byte limit that a write has failed, or out of inodes.
    pub fn is_full(&self) -> bool {
        self.bytes_limit.saturating_sub(self.bytes_used) < FULL_MARGIN_BYTES
            || self.inodes_used >= self.inodes_limit
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("running `{program}`: {error} (session volumes need root and e2fsprogs' mkfs.ext4)")]
    Spawn {
        program: &'static str,
        error: std::io::Error,
    },
    #[error("`{program}` failed ({status}): {stderr}")]
    Command {
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{what} {}: {error}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid quota: {0}")]
    InvalidQuota(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |error| VolumeError::Io {
        what,
        path: path.to_path_buf(),
        error,
    }
}

/// The volumes of one worker: a pool of ready ones of the default quota, and the verbs that put
/// a volume in place for a session, find it again after a restart, and take it away.
pub struct Volumes {
    pool_dir: PathBuf,
    default: Quota,
    /// Directories every new volume gets (the session's workspace and scratch), so a volume
    /// taken from the pool is ready as it is.
    layout: Vec<String>,
    warm: usize,
    pool: Mutex<Pool>,
    wake: Condvar,
    /// Set by [`Volumes::release_all`]: no more volumes are made ahead.
    closed: std::sync::atomic::AtomicBool,
    /// Held while a volume is made ahead, so [`Volumes::release_all`] can wait for it.
    filling: Mutex<()>,
}

#[derive(Default)]
struct Pool {
    /// Mount points under `pool_dir` holding a formatted, mounted volume (image beside, `.img`).
    ready: Vec<PathBuf>,
    next: u64,
}

impl Volumes {
    /// Starts the pool in `pool_dir` (cleared of what an earlier process left there) and keeps
    /// `warm` volumes of `default` ready. The first volume is made before this returns, so a
    /// machine that cannot make volumes fails here, at start-up.
    pub fn open(
        pool_dir: &Path,
        default: Quota,
        layout: &[&str],
        warm: usize,
    ) -> Result<Arc<Self>, VolumeError> {
        default.check().map_err(VolumeError::InvalidQuota)?;
        if let Some(data_dir) = pool_dir.parent() {
            detach_stale(data_dir);
        }
        if pool_dir.exists() {
            unmount_all_under(pool_dir);
            std::fs::remove_dir_all(pool_dir).map_err(io("clearing", pool_dir))?;
        }
        std::fs::create_dir_all(pool_dir).map_err(io("creating", pool_dir))?;
        let volumes = Arc::new(Self {
            pool_dir: pool_dir.to_path_buf(),
            default,
            layout: layout.iter().map(|s| (*s).to_owned()).collect(),
            warm,
            pool: Mutex::default(),
            wake: Condvar::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            filling: Mutex::new(()),
        });
        // The first volume is made now, whatever `warm` says: it proves this machine can.
        let first = volumes.make_pooled()?;
        if warm == 0 {
            release(&first);
            let _ = std::fs::remove_dir(&first);
            let _ = std::fs::remove_file(first.with_extension("img"));
        } else {
            volumes.lock().ready.push(first);
            let weak = Arc::downgrade(&volumes);
            std::thread::Builder::new()
                .name("hearth-volumes".into())
                .spawn(move || fill(weak))
                .map_err(io("starting the volume pool in", pool_dir))?;
        }
        Ok(volumes)
    }

    pub fn default_quota(&self) -> Quota {
        self.default
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a volume of `quota` at `at` (a directory to be made), its image at `image`. A
    /// volume of the default quota comes from the pool when one is ready.
    pub fn attach(&self, image: &Path, at: &Path, quota: Quota) -> Result<(), VolumeError> {
        quota.check().map_err(VolumeError::InvalidQuota)?;
        std::fs::create_dir(at).map_err(io("creating", at))?;
        let pooled = (quota == self.default)
            .then(|| self.lock().ready.pop())
            .flatten();
        self.wake.notify_one();
        match pooled {
            Some(ready) => {
                let moved = std::fs::rename(ready.with_extension("img"), image)
                    .map_err(io("moving a pooled image to", image))
                    .and_then(|()| move_mount(&ready, at));
                let _ = std::fs::remove_dir(&ready);
                if let Err(e) = moved {
                    release(&ready);
                    return Err(e);
                }
                Ok(())
            }
            None => {
                format(image, quota)?;
                mount_image(image, at)?;
                self.make_layout(at)
            }
        }
    }

    /// Makes sure the volume whose image is `image` is mounted at `at` (after a restart, or a
    /// crash that left it mounted: both are fine).
    pub fn mount_existing(image: &Path, at: &Path) -> Result<(), VolumeError> {
        if is_mount_point(at) {
            return Ok(());
        }
        std::fs::create_dir_all(at).map_err(io("creating", at))?;
        mount_image(image, at)
    }

    fn make_layout(&self, at: &Path) -> Result<(), VolumeError> {
        for dir in &self.layout {
            let path = at.join(dir);
            std::fs::create_dir(&path).map_err(io("creating", &path))?;
        }
        Ok(())
    }

    /// Formats and mounts one volume of the default quota in the pool directory.
    fn make_pooled(&self) -> Result<PathBuf, VolumeError> {
        let n = {
            let mut pool = self.lock();
            pool.next += 1;
            pool.next
        };
        let at = self.pool_dir.join(n.to_string());
        let image = at.with_extension("img");
        std::fs::create_dir(&at).map_err(io("creating", &at))?;
        let made = format(&image, self.default)
            .and_then(|()| mount_image(&image, &at))
            .and_then(|()| self.make_layout(&at));
        if let Err(e) = made {
            release(&at);
            let _ = std::fs::remove_dir(&at);
            let _ = std::fs::remove_file(&image);
            return Err(e);
        }
        Ok(at)
    }
}

/// Keeps the pool full, until the pool is dropped.
fn fill(volumes: Weak<Volumes>) {
    loop {
        let Some(v) = volumes.upgrade() else { return };
        if v.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let wanted = {
            let pool = v.lock();
            let (pool, _) = v
                .wake
                .wait_timeout_while(pool, Duration::from_secs(1), |p| p.ready.len() >= v.warm)
                .unwrap_or_else(|p| p.into_inner());
            pool.ready.len() < v.warm
        };
        if !wanted {
            continue;
        }
        let failed = {
            let _filling = v.filling.lock().unwrap_or_else(|p| p.into_inner());
            if v.closed.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            match v.make_pooled() {
                // Made while the pool was being closed: not kept.
                Ok(at) if v.closed.load(std::sync::atomic::Ordering::Acquire) => {
                    release(&at);
                    return;
                }
                Ok(at) => {
                    v.lock().ready.push(at);
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not make a volume ahead; trying again later");
                    true
                }
            }
        };
        if failed {
            drop(v);
            std::thread::sleep(Duration::from_secs(5));
        }
    }
}

impl Volumes {
    /// Unmounts the volumes made ahead and makes no more (a stopping worker's pool).
    pub fn release_all(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_all();
        // A volume being made now is finished, then released by its maker.
        drop(self.filling.lock().unwrap_or_else(|p| p.into_inner()));
        for ready in std::mem::take(&mut self.lock().ready) {
            release(&ready);
        }
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// Takes the mount at `at` away (a lazy unmount: a volume's loop device goes with its last
/// user; its image stays where it is, to be deleted or mounted again). A link at `at` is not
/// followed, by the check or by the unmount.
pub fn release(at: &Path) {
    if is_mount_point(at)
        && let Err(e) = umount2(at, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
    {
        tracing::warn!(path = %at.display(), error = %e, "unmounting a session mount");
    }
}

/// Unmounts every mount at or below `dir`, deepest first: a data dir's volumes (and scratch
/// mounts), for a clean stop or after a test.
pub fn unmount_all_under(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let _ = umount2(&point, MntFlags::MNT_DETACH);
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A directory on another device than its parent is a mount point.
pub fn is_mount_point(dir: &Path) -> bool {
    let (Ok(own), Some(Ok(parent))) = (
        std::fs::symlink_metadata(dir),
        dir.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    own.is_dir() && own.dev() != parent.dev()
}

/// A sparse image of the quota's size, formatted ext4 with exactly its inode count.
fn format(image: &Path, quota: Quota) -> Result<(), VolumeError> {
    let file = File::create_new(image).map_err(io("creating", image))?;
    file.set_len(quota.image_bytes())
        .map_err(io("sizing", image))?;
    drop(file);
    // The image is a new sparse file, so it already reads as zeros: the inode tables and the
    // journal need no zeroing (`lazy_*_init`, and `noinit_itable` at mount).
    let made = run(
        "mkfs.ext4",
        &["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"],
        |c| {
            c.args(["-q", "-F", "-b", "4096", "-I", "256", "-m", "0"])
                .arg("-N")
                .arg(quota.inodes.to_string())
                .args(["-J", "size=4", "-E"])
                .arg("lazy_itable_init=1,lazy_journal_init=1,nodiscard")
                .arg(image);
        },
    );
    if made.is_err() {
        let _ = std::fs::remove_file(image);
    }
    made.map(drop)
}

/// Loop-mounts `image` at `at`: nothing on it runs setuid or opens devices; deleted files give
/// their blocks back to the host; an I/O error makes it read-only rather than damage it.
///
/// The loop device does direct I/O on the image: without it every block is cached twice (in
/// the volume's page cache and the image's) and a 1 MiB write-and-rename costs ~3.7× the plain
/// disk's; with it, the same as the disk. Direct I/O is set when the device is attached (~2 ms;
/// switching a mounted device costs 10–25 ms), so the device is attached by `losetup`, mounted,
/// then detached: detaching a device in use makes the kernel free it with the last unmount
/// (autoclear). A process killed between the attach and the detach leaves a device behind;
/// [`Volumes::open`] detaches those of its data dir ([`detach_stale`]).
fn mount_image(image: &Path, at: &Path) -> Result<(), VolumeError> {
    const LOSETUP: &[&str] = &["/usr/sbin/losetup", "/sbin/losetup"];
    // Two `losetup --find` at once may pick the same free device; the loser waits ~200 ms
    // before it tries again. One at a time in this process (the pool's filler and a create).
    static FINDING: Mutex<()> = Mutex::new(());
    let finding = FINDING.lock().unwrap_or_else(|p| p.into_inner());
    let device = run("losetup", LOSETUP, |c| {
        c.args(["--direct-io=on", "--find", "--show"]).arg(image);
    });
    drop(finding);
    let device = device?.trim().to_owned();
    let mounted = run("mount", &["/usr/bin/mount", "/bin/mount"], |c| {
        c.args(["-t", "ext4", "-o"])
            .arg("nosuid,nodev,noatime,discard,noinit_itable,errors=remount-ro")
            .arg(&device)
            .arg(at);
    });
    let detached = run("losetup", LOSETUP, |c| {
        c.arg("--detach").arg(&device);
    });
    mounted.and(detached).map(drop)
}

/// Detaches the loop devices whose image is under `dir` and which nothing has mounted: those of
/// a worker killed while it attached one.
pub fn detach_stale(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let Ok(devices) = std::fs::read_dir("/sys/block") else {
        return;
    };
    for device in devices.flatten() {
        let name = device.file_name().to_string_lossy().into_owned();
        let Ok(backing) = std::fs::read_to_string(device.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end();
        let backing = backing.strip_suffix(" (deleted)").unwrap_or(backing);
        let node = format!("/dev/{name}");
        let mounted = table.lines().any(|line| {
            line.split_once(" - ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .is_some_and(|source| source == node)
        });
        if Path::new(backing).starts_with(&dir) && !mounted {
            tracing::warn!(device = %node, image = backing, "detaching a loop device left attached");
            let _ = run("losetup", &["/usr/sbin/losetup", "/sbin/losetup"], |c| {
                c.arg("--detach").arg(&node);
            });
        }
    }
}

/// The device mounted at `at`, from the mount table.
#[cfg(test)]
fn mount_source(at: &Path) -> Option<String> {
    let at = at.canonicalize().ok()?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().rev().find_map(|line| {
        let (ids, rest) = line.split_once(" - ")?;
        let point = ids.split(' ').nth(4)?;
        (Path::new(&unescape_mountinfo(point)) == at)
            .then(|| rest.split(' ').nth(1).map(unescape_mountinfo))
            .flatten()
    })
}

/// Moves the mount at `from` to `to`. Where the parent mount is shared, the kernel refuses a
/// move: then a bind mount and a lazy unmount of the original do the same.
fn move_mount(from: &Path, to: &Path) -> Result<(), VolumeError> {
    let none: Option<&str> = None;
    if mount(Some(from), to, none, MsFlags::MS_MOVE, none).is_ok() {
        return Ok(());
    }
    mount(Some(from), to, none, MsFlags::MS_BIND, none)
        .map_err(|e| io("binding a pooled volume to", to)(e.into()))?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(none, to, none, flags, none)
        .map_err(|e| io("making a pooled volume nosuid at", to)(e.into()))?;
    release(from);
    Ok(())
}

/// Runs one of e2fsprogs' or util-linux's programs (the first of `candidates` that exists, or
/// `program` from PATH) with an empty environment; returns what it printed.
fn run(
    program: &'static str,
    candidates: &[&str],
    args: impl FnOnce(&mut Command),
) -> Result<String, VolumeError> {
    let path = candidates
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map_or_else(|| PathBuf::from(program), Path::to_path_buf);
    let mut command = Command::new(path);
    command.env_clear().env("LC_ALL", "C");
    args(&mut command);
    let output = command
        .output()
        .map_err(|error| VolumeError::Spawn { program, error })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(VolumeError::Command {
        program,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests;
