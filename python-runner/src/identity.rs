//! Who the program runs as: [`JAIL_ID`], an unprivileged uid and gid of its own, not root.
//!
//! The worker (root) owns every file of a session, and tools, git and snapshots read and write
//! them as such. An unprivileged program could not touch them through plain binds. So the
//! session's directories (the workspace, `/tmp`, the read-only areas) are mounted **idmapped**: through the mount, on-disk uid 0
//! appears as [`JAIL_ID`] and [`JAIL_ID`] writes as uid 0. The program owns its workspace inside the jail,
//! and every file it creates is root's on the host, as if a tool had written it. Outside those
//! mounts it is an unprivileged user of the host kernel: nothing is reachable on the strength
//! of being uid 0.

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Uid, fork, pipe, read, setgroups, setresgid, setresuid, write};

/// The jail's uid and gid. Not `nobody` (65534): host daemons run as that, and a process of the
/// same uid may signal a jailed one. This one is far above accounts (< 60000), systemd's
/// dynamic users (61184–65519) and the usual subordinate-id ranges of containers.
pub const JAIL_ID: u32 = 2_147_483_646;

// The new mount API (Linux 5.12+ for idmapped mounts), not wrapped by nix.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A user namespace whose only mapping is jail id 0 ↔ host id [`JAIL_ID`]: what an idmapped
/// mount needs to show root's files as the jail user's. Made by a short-lived child (a user
/// namespace is only reachable through a process in it); call it before the pid namespace is
/// unshared, or that child would become its pid 1.
pub fn idmap_namespace() -> std::io::Result<OwnedFd> {
    let (ready_rx, ready_tx) = pipe().map_err(io_err)?;
    let (done_rx, done_tx) = pipe().map_err(io_err)?;
    // SAFETY: the helper is single-threaded; the child only calls async-signal-safe functions
    // (unshare, write, read, _exit).
    #[expect(
        unsafe_code,
        reason = "fork is unsafe by contract; see the SAFETY comment"
    )]
    let forked = unsafe { fork() }.map_err(io_err)?;
    let child = match forked {
        ForkResult::Child => {
            let status = match unshare(CloneFlags::CLONE_NEWUSER) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            let _ = write(&ready_tx, &[status]);
            let _ = read(&done_rx, &mut [0u8]);
            // SAFETY: `_exit` ends the child without running the parent's destructors.
            #[expect(unsafe_code, reason = "_exit, see the SAFETY comment")]
            unsafe {
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop((ready_tx, done_rx));
    let mapped = (|| {
        let mut status = [1u8];
        read(&ready_rx, &mut status).map_err(io_err)?;
        if status[0] != 0 {
            return Err(std::io::Error::other(
                "the child could not create a user namespace",
            ));
        }
        let proc = Path::new("/proc").join(child.as_raw().to_string());
        fs::write(proc.join("uid_map"), format!("0 {JAIL_ID} 1\n"))?;
        fs::write(proc.join("setgroups"), "deny\n")?;
        fs::write(proc.join("gid_map"), format!("0 {JAIL_ID} 1\n"))?;
        fs::File::open(proc.join("ns/user")).map(OwnedFd::from)
    })();
    let _ = write(&done_tx, &[0]);
    let _ = kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
    mapped
}

/// A detached copy of the tree at `source` (nosuid, nodev, recursive, read-only unless
/// `writable`), seen through `userns`'s idmapping when there is one, ready to be [`attach`]ed.
/// Preparing every tree before attaching any lets a caller fall back to plain trees for all of
/// them.
pub fn detached_tree(
    source: &Path,
    userns: Option<BorrowedFd<'_>>,
    writable: bool,
) -> std::io::Result<OwnedFd> {
    let source = std::ffi::CString::new(source.as_os_str().as_encoded_bytes())?;
    // SAFETY: the path is a valid C string for the call's duration.
    #[expect(unsafe_code, reason = "raw open_tree, see the SAFETY comment")]
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
        )
    };
    if tree < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    #[expect(unsafe_code, reason = "adopting a fresh fd, see the SAFETY comment")]
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = MountAttr {
        attr_set: if userns.is_some() {
            MOUNT_ATTR_IDMAP
        } else {
            0
        } | MOUNT_ATTR_NOSUID
            | MOUNT_ATTR_NODEV
            | if writable { 0 } else { MOUNT_ATTR_RDONLY },
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: userns.map_or(0, |ns| ns.as_raw_fd() as u64),
    };
    // SAFETY: `attr` is a valid `struct mount_attr` of the size passed; the path is empty.
    #[expect(unsafe_code, reason = "raw mount_setattr, see the SAFETY comment")]
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tree)
}

/// Mounts a tree made by [`detached_tree`] on `target`, a descriptor of the mount point (opened
/// without following links, see `jail::mount_point`): never a path, which the session could
/// turn into a link between a check and the mount.
pub fn attach(tree: OwnedFd, target: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: valid descriptors and empty C strings for the call's duration.
    #[expect(unsafe_code, reason = "raw move_mount, see the SAFETY comment")]
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if moved != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` with the file-system ids of the jail user when `jail_user`, then root's again:
/// what it creates through an idmapped mount is then root's on disk, as the mount maps it.
pub fn as_jail_user_if<T>(
    jail_user: bool,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    if !jail_user {
        return f();
    }
    // SAFETY: setfsuid/setfsgid take integers and only change this (single) thread's ids.
    #[expect(unsafe_code, reason = "setfsuid(2), see the SAFETY comment")]
    let (uid, gid) = unsafe { (libc::setfsuid(JAIL_ID), libc::setfsgid(JAIL_ID)) };
    let result = f();
    // SAFETY: as above, restoring the previous ids.
    #[expect(unsafe_code, reason = "setfsuid(2), see the SAFETY comment")]
    unsafe {
        libc::setfsgid(gid as u32);
        libc::setfsuid(uid as u32);
    }
    result
}

/// Becomes [`JAIL_ID`] (no supplementary groups). Needs CAP_SETUID and CAP_SETGID; once every
/// uid is non-zero the kernel empties the permitted and effective capability sets.
pub fn become_jail_user() -> nix::Result<()> {
    setgroups(&[])?;
    let gid = Gid::from_raw(JAIL_ID);
    setresgid(gid, gid, gid)?;
    let uid = Uid::from_raw(JAIL_ID);
    setresuid(uid, uid, uid)
}

fn io_err(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}
