//! A session's network namespace: made once, shared by all of the session's runs, so a test run
//! reaches the dev server a background run started. Its only interface is loopback; nothing in
//! it is routed anywhere. The worker reaches into it without a listening socket on the host's
//! network: a socket made by a thread that entered the namespace stays in it, and the worker
//! uses it from anywhere (a port forwarded to a program's server, the egress proxy's listener).
//!
//! The namespace is kept alive, between runs and without a process in it, by a bind mount of
//! its `nsfs` file on a file of the worker's (as `ip netns add` does), which a run's
//! [`crate::spec::JailSpec::network`] names.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Why a namespace could not be made, entered or used.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("{what}: {error}")]
    Io {
        what: &'static str,
        error: std::io::Error,
    },
    #[error("the namespace thread died")]
    Thread,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> NetnsError {
    move |error| NetnsError::Io { what, error }
}

fn errno(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> NetnsError {
    move |e| NetnsError::Io {
        what,
        error: std::io::Error::from(e),
    }
}

/// Makes a network namespace with loopback up, bound on `path` (created, mode 0600; its parent
/// must exist). An existing binding at `path` (a worker that stopped without removing it) is
/// removed first: what was listening in it is gone with its worker.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    remove(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating the namespace's file"))?;
    let target = path.to_owned();
    let made = on_fresh_thread(move || {
        unshare(CloneFlags::CLONE_NEWNET).map_err(errno("unsharing the network namespace"))?;
        loopback_up()?;
        let none: Option<&str> = None;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            none,
            MsFlags::MS_BIND,
            none,
        )
        .map_err(errno("binding the namespace"))
    });
    if made.is_err() {
        remove(path);
    }
    made
}

/// Removes the namespace bound at `path` (it ends once nothing else holds it). Quiet when there
/// is none.
pub fn remove(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(path);
}

/// Connects to `address` (loopback, normally) from inside the namespace bound at `path`.
pub fn connect(path: &Path, address: SocketAddr) -> Result<TcpStream, NetnsError> {
    let namespace = path.to_owned();
    on_fresh_thread(move || {
        enter(&namespace)?;
        TcpStream::connect(address).map_err(io("connecting"))
    })
}

/// Listens on `address` inside the namespace bound at `path`.
pub fn listen(path: &Path, address: SocketAddr) -> Result<TcpListener, NetnsError> {
    let namespace = path.to_owned();
    on_fresh_thread(move || {
        enter(&namespace)?;
        TcpListener::bind(address).map_err(io("listening"))
    })
}

/// Enters the namespace bound at `path` (this thread only).
fn enter(path: &PathBuf) -> Result<(), NetnsError> {
    let namespace = fs::File::open(path).map_err(io("opening the namespace"))?;
    setns(namespace, CloneFlags::CLONE_NEWNET).map_err(errno("entering the namespace"))
}

/// Runs `work` on a thread of its own, which ends with it: a thread that changed namespace is
/// never reused for anything else.
fn on_fresh_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NetnsError> + Send + 'static,
) -> Result<T, NetnsError> {
    std::thread::Builder::new()
        .name("hearth-netns".into())
        .spawn(work)
        .map_err(io("starting a thread"))?
        .join()
        .map_err(|_| NetnsError::Thread)?
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> Result<(), NetnsError> {
    // Unbound: loopback is down, so there is nothing to bind to yet.
    let socket = socket_only().map_err(io("a socket for ioctl"))?;
    // SAFETY: `ifreq` is plain data; zeroed is a valid value of it.
    #[expect(unsafe_code, reason = "zeroed ifreq, see the SAFETY comment")]
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: a valid socket and a valid, initialised `ifreq` for both ioctls.
    #[expect(
        unsafe_code,
        reason = "SIOCGIFFLAGS/SIOCSIFFLAGS, see the SAFETY comment"
    )]
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(io("reading lo's flags")(std::io::Error::last_os_error()));
        }
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(io("bringing lo up")(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// An unbound inet datagram socket.
fn socket_only() -> std::io::Result<std::net::UdpSocket> {
    // SAFETY: socket(2) takes integers.
    #[expect(unsafe_code, reason = "raw socket(2), see the SAFETY comment")]
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    #[expect(unsafe_code, reason = "adopting a fresh fd, see the SAFETY comment")]
    Ok(unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}
