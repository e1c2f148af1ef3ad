//! The helper's side: build the jail described by a [`JailSpec`], then run the program in it.
//!
//! `run_main` follows one fixed order (each step needs the privileges the later ones remove):
//!
//! 1. join the run's cgroups (memory, pids), named by `--join` arguments;
//! 2. `unshare` pid, network, IPC, UTS and cgroup namespaces — fail closed — and compile the
//!    seccomp filters;
//! 3. `fork`: the parent only relays the child's exit; the child is pid 1 of the new pid
//!    namespace, dies with the parent (`PR_SET_PDEATHSIG`), and takes every process it started
//!    with it when it exits. The child reads the run's [`JailSpec`] from stdin (a warm helper
//!    waits here, every step so far behind it) and `unshare`s the mount namespace, from the
//!    host's mounts as they are now;
//! 4. a minimal root on a tmpfs: the runtime read-only, the session's directories at their view
//!    paths, a minimal `/dev`, `/proc` for the jail's own pids; `pivot_root` into it, detach the
//!    old root, make the new root read-only;
//! 5. rlimits, umask 022; `no_new_privs`; every capability dropped (bounding set included), and
//!    the uid too: the program runs as [`JAIL_ID`], the session's directories idmapped (see
//!    [`crate::identity`]);
//! 6. Landlock: read everything in the jail, write only the writable directories;
//! 7. every descriptor above stderr closed (but the result channel, [`RESULT_FD`], when the
//!    spec asks for it); seccomp, last, since it forbids the mounts above;
//! 8. report the layers on stderr, `execve` with exactly the requested environment.
//!
//! The host hands the helper the write end of its result pipe as [`RESULT_FD`]. The helper takes
//! it first thing, so none of its own descriptors can land on that number; the relay (the
//! parent of the fork) closes its copy at once, so the host sees the pipe's end exactly when
//! the jail's processes are gone.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag, mknod};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, chdir, execve, fork, pivot_root, sethostname};

use crate::identity::JAIL_ID;
use crate::spec::{
    ENFORCED, JAIL_FAILED_EXIT, JOIN_FLAG, JailSpec, Layer, Layers, REPORT_PREFIX, RESULT_FD,
    Report, read_framed,
};

/// Device nodes the jail gets, bound from the host's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// The helper's entry point: never returns.
///
/// Everything that does not depend on the run happens first (cgroups, namespaces, compiling
/// the seccomp filters); then the helper waits for its spec on stdin. So a warm helper, started
/// ahead of time, has paid for the slow parts before its run arrives.
pub fn run_main() -> ! {
    let result_channel = take_result_channel();
    let mut layers = Layers::new();
    let cgroup_procs = match join_arguments() {
        Ok(files) => files,
        Err(why) => fail(&layers, &why),
    };

    // 1. cgroups: joined before the namespaces, so the cgroup namespace is rooted at them.
    if cgroup_procs.is_empty() {
        layers.insert(
            Layer::Cgroups.name().into(),
            "unavailable: not configured on this worker".into(),
        );
    } else {
        let pid = std::process::id().to_string();
        match cgroup_procs
            .iter()
            .try_for_each(|procs| fs::write(procs, &pid))
        {
            Ok(()) => layers.insert(Layer::Cgroups.name().into(), ENFORCED.into()),
            Err(e) => fail(&layers, &format!("joining the run's cgroups: {e}")),
        };
    }

    // The idmapping that lets the program run unprivileged and still own its workspace; made
    // before the pid namespace (it needs a child of its own). Without it the program runs as
    // uid 0, with no capability, and the layer says why.
    let idmap = crate::identity::idmap_namespace();

    // 2. namespaces, all or nothing. The mount namespace comes last, once the run is known:
    // a copy of the host's mounts taken earlier would miss those made since (a session's
    // scratch tmpfs), and the run would write beneath them.
    let flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    if let Err(e) = unshare(flags) {
        fail(&layers, &format!("creating namespaces: {e}"));
    }
    for namespace in [
        Layer::PidNamespace,
        Layer::NetworkNamespace,
        Layer::IpcNamespace,
        Layer::UtsNamespace,
        Layer::CgroupNamespace,
    ] {
        layers.insert(namespace.name().into(), ENFORCED.into());
    }
    let filters = match crate::seccomp::programs() {
        Ok(filters) => filters,
        Err(e) => fail(&layers, &e.to_string()),
    };

    // 3. fork into the pid namespace, still ahead of the run. The parent holds the write end
    // of `parent_alive` open for as long as it lives: the child's way to notice a parent that
    // died before its death signal was (re)armed (`getppid` says 0 across a pid namespace).
    let (parent_alive, parent_holds) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(ends) => ends,
        Err(e) => fail(&layers, &format!("pipe: {e}")),
    };
    // SAFETY: the helper is single-threaded (it starts no threads), so the child may run any
    // code after `fork`, not only async-signal-safe functions.
    #[expect(
        unsafe_code,
        reason = "fork is unsafe by contract; see the SAFETY comment"
    )]
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Parent { child }) => {
            drop(parent_alive);
            drop(result_channel);
            relay_exit(child, parent_holds)
        }
        Ok(ForkResult::Child) => drop(parent_holds),
        Err(e) => fail(&layers, &format!("fork: {e}")),
    }
    die_with_parent(&parent_alive, &layers);

    // Now the run: its spec, framed on stdin; the rest of stdin is the program's.
    let spec = match read_framed(&mut RawStdin) {
        Ok(spec) => spec,
        Err(e) => fail(&layers, &format!("reading the jail spec: {e}")),
    };
    let result_channel = result_channel.filter(|_| spec.result_channel);
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
        fail(&layers, &format!("creating the mount namespace: {e}"));
    }
    layers.insert(Layer::MountNamespace.name().into(), ENFORCED.into());

    // 4. the root.
    let unprivileged = match build_root(&spec, idmap.as_ref().ok().map(AsFd::as_fd)) {
        Ok(Ok(())) => match &idmap {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("no idmapping: {e}")),
        },
        Ok(Err(why)) => Err(why),
        Err(e) => fail(&layers, &format!("building the jail's root: {e}")),
    };
    drop(idmap);
    layers.insert(Layer::PivotRoot.name().into(), ENFORCED.into());
    layers.insert(Layer::ReadOnlyRoot.name().into(), ENFORCED.into());
    let _ = sethostname("hearth");

    // 5. limits and privileges.
    match apply_rlimits(&spec) {
        Ok(()) => layers.insert(Layer::Rlimits.name().into(), ENFORCED.into()),
        Err(e) => fail(&layers, &format!("setrlimit: {e}")),
    };
    // Nothing the program creates is writable by others: the seccomp filter keeps it from
    // clearing this bit again (see `crate::seccomp`).
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        fail(&layers, &format!("PR_SET_NO_NEW_PRIVS: {e}"));
    }
    layers.insert(Layer::NoNewPrivs.name().into(), ENFORCED.into());
    match drop_capabilities(unprivileged.is_ok()) {
        Ok(()) => layers.insert(
            Layer::Capabilities.name().into(),
            "enforced: all dropped".into(),
        ),
        Err(e) => fail(&layers, &format!("dropping capabilities: {e}")),
    };
    // A change of uid (or of the file-system ids, as building the root did) disarms the death
    // signal: arm it again.
    die_with_parent(&parent_alive, &layers);
    let uid = match unprivileged {
        Ok(()) => format!("enforced: {JAIL_ID}"),
        Err(why) => format!("unavailable: runs as uid 0 without capabilities ({why})"),
    };
    layers.insert(Layer::Uid.name().into(), uid);

    // 6. Landlock (best effort on old kernels, reported either way).
    let landlock = apply_landlock(&spec);
    layers.insert(Layer::Landlock.name().into(), landlock);

    // 7. seccomp.
    // Nothing but stdin, stdout and stderr (and the result channel, when asked for) reaches
    // the program: not this helper's descriptors, nor any the worker leaked without
    // close-on-exec when it started the helper.
    drop(parent_alive);
    close_inherited_descriptors(result_channel.as_ref());
    if let Err(e) = crate::seccomp::install(&filters) {
        fail(&layers, &e.to_string());
    }
    layers.insert(Layer::Seccomp.name().into(), ENFORCED.into());
    layers.insert(
        Layer::Environment.name().into(),
        "enforced: only the requested variables".into(),
    );

    if let Some(missing) = spec.required_layers.iter().map(|l| l.name()).find(|layer| {
        !layers
            .get(*layer)
            .is_some_and(|state| state.starts_with(ENFORCED))
    }) {
        let state = layers.get(missing).map_or("absent", String::as_str);
        fail(
            &layers,
            &format!("the required layer `{missing}` is {state}"),
        );
    }

    // 8. run.
    if let Err(e) = chdir(spec.cwd.as_str()) {
        fail(&layers, &format!("entering {}: {e}", spec.cwd));
    }
    report(&Report {
        layers: layers.clone(),
        error: None,
    });
    let Some(program) = resolve_program(&spec) else {
        // The caller's mistake, not the jail's: answer like a shell would.
        let name = spec.argv.first().map(String::as_str).unwrap_or("");
        let _ = writeln!(std::io::stderr(), "hearth-jail: {name}: command not found");
        std::process::exit(127);
    };
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .filter_map(|a| CString::new(a.as_str()).ok())
        .collect();
    let env: Vec<CString> = spec
        .env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let error = match CString::new(program.as_os_str().as_encoded_bytes()) {
        Ok(path) => execve(&path, &argv, &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    // The report line is out already; say what happened in plain words and exit like a shell.
    let _ = writeln!(
        std::io::stderr(),
        "hearth-jail: cannot execute {}: {error}",
        program.display()
    );
    std::process::exit(126);
}

/// `--join FILE` arguments: the `cgroup.procs` files to join.
fn join_arguments() -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            (JOIN_FLAG, Some(file)) => files.push(PathBuf::from(file)),
            _ => {
                return Err(format!(
                    "usage: hearth-jail [{JOIN_FLAG} CGROUP_PROCS]… < SPEC"
                ));
            }
        }
    }
    Ok(files)
}

/// Stdin without Rust's buffer: the spec must be read to its last byte and not one further,
/// since what follows is the program's input (and the program reads the same descriptor).
struct RawStdin;

impl std::io::Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        nix::unistd::read(std::io::stdin().as_fd(), buf).map_err(io_err)
    }
}

/// Writes the report line, then exits with [`JAIL_FAILED_EXIT`]: the program never started.
fn fail(layers: &Layers, why: &str) -> ! {
    report(&Report {
        layers: layers.clone(),
        error: Some(why.to_owned()),
    });
    std::process::exit(JAIL_FAILED_EXIT);
}

fn report(report: &Report) {
    let line = serde_json::to_string(report).unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{REPORT_PREFIX}{line}");
}

/// Closes every descriptor above stderr but `keep`, the result channel (which is
/// [`RESULT_FD`], the lowest of them, when there is one).
fn close_inherited_descriptors(keep: Option<&OwnedFd>) {
    let first = match keep {
        Some(channel) if channel.as_raw_fd() == RESULT_FD => RESULT_FD + 1,
        _ => RESULT_FD,
    };
    // SAFETY: close_range takes integers; closing descriptors this process no longer uses
    // (nothing below holds one: the filters are compiled, the spec read; the result channel,
    // when kept, is below `first`) is sound.
    #[expect(unsafe_code, reason = "raw close_range, see the SAFETY comment")]
    let _ = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
}

/// Takes [`RESULT_FD`], the write end of the host's result pipe, before the helper opens any
/// descriptor of its own: none can then land on that number by accident. A helper started
/// without one puts `/dev/null` there instead, for the same reason; a program that asked for
/// the channel then writes into nothing.
fn take_result_channel() -> Option<OwnedFd> {
    // SAFETY: F_GETFD on an integer only reads the descriptor's flags.
    #[expect(unsafe_code, reason = "raw fcntl, see the SAFETY comment")]
    let open = unsafe { libc::fcntl(RESULT_FD, libc::F_GETFD) } >= 0;
    if open {
        // SAFETY: the host hands this descriptor to the helper for it alone (see
        // `runner::Standby::start`), and nothing in this process has used or owns it yet.
        #[expect(unsafe_code, reason = "adopting fd 3, see the SAFETY comment")]
        let channel = unsafe { OwnedFd::from_raw_fd(RESULT_FD) };
        return Some(channel);
    }
    // 0–2 are open (the Rust runtime sees to it), so the lowest free number is RESULT_FD.
    let null = fs::OpenOptions::new().write(true).open("/dev/null").ok()?;
    (null.as_raw_fd() == RESULT_FD).then(|| OwnedFd::from(null))
}

/// Arms SIGKILL on the parent's death, then checks the parent is still there: its end of
/// `parent_alive` closes only when it exits.
fn die_with_parent(parent_alive: &OwnedFd, layers: &Layers) {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        fail(layers, &format!("PR_SET_PDEATHSIG: {e}"));
    }
    let mut poll = [PollFd::new(parent_alive.as_fd(), PollFlags::POLLIN)];
    let gone = nix::poll::poll(&mut poll, PollTimeout::ZERO).is_ok_and(|ready| ready > 0);
    if gone {
        std::process::exit(JAIL_FAILED_EXIT);
    }
}

/// The parent half of the fork: wait for the jail's pid 1 and exit the same way, holding
/// `alive` open until then (see [`die_with_parent`]).
fn relay_exit(child: nix::unistd::Pid, alive: OwnedFd) -> ! {
    let _alive = alive;
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                // Die the same way, so the host sees the signal and not a made-up exit code.
                // SAFETY: resetting a disposition to the default has no preconditions.
                #[expect(unsafe_code, reason = "signal(2), see the SAFETY comment")]
                let _ = unsafe {
                    nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)
                };
                let _ = nix::sys::signal::raise(signal);
                std::process::exit(128 + signal as i32)
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(JAIL_FAILED_EXIT),
        }
    }
}

fn io_err(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Lays out the jail's root on a tmpfs over `spec.root_dir` and pivots into it. The session's
/// directories are mounted through `idmap` when there is one; the inner result says
/// why the program cannot run unprivileged when one of them could not be.
fn build_root(
    spec: &JailSpec,
    idmap: Option<BorrowedFd<'_>>,
) -> std::io::Result<Result<(), String>> {
    let mut unprivileged = Ok(());
    let none: Option<&str> = None;
    // Nothing mounted from here on may propagate back to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(io_err)?;
    let root = &spec.root_dir;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=16m,mode=0755"),
    )
    .map_err(io_err)?;
    chdir(root.as_path()).map_err(io_err)?;
    for (link, target) in &spec.symlinks {
        symlink(target, root.join(link))?;
    }
    for bind in &spec.runtime {
        let target = inside(root, &bind.target);
        make_mount_point(&target, bind.source.is_dir())?;
        bind_mount(&bind.source, &target, false)?;
    }
    // The session's directories through the idmapping: all of them or none. A mix would leave
    // the program unable to use some of them whichever uid it ran as.
    let mut trees = None;
    if let Some(userns) = idmap {
        let prepared: std::io::Result<Vec<OwnedFd>> = spec
            .binds
            .iter()
            .map(|bind| crate::identity::idmapped_tree(&bind.source, userns, bind.writable))
            .collect();
        match prepared {
            Ok(prepared) => trees = Some(prepared.into_iter()),
            // A filesystem without idmapped mounts: plain binds, and the program stays uid 0
            // so that it can still use them.
            Err(e) => {
                unprivileged = Err(format!("the session's directories cannot be idmapped: {e}"))
            }
        }
    }
    let mut mounted: Vec<&str> = Vec::new();
    for bind in &spec.binds {
        refuse_symlinks_on_the_way(root, &bind.target)?;
        let target = inside(root, &bind.target);
        // A mount point inside an idmapped bind (a read-only area in the workspace) can only be
        // made by the id that mount maps: root's own ids are not mapped there. It is made by a
        // path relative to the root (the working directory), since the jail user may not
        // search the directories above it on the host.
        let in_idmapped =
            trees.is_some() && mounted.iter().any(|parent| is_below(&bind.target, parent));
        let source_is_dir = bind.source.is_dir();
        let relative = Path::new(bind.target.trim_start_matches('/'));
        crate::identity::as_jail_user_if(in_idmapped, || {
            make_mount_point(relative, source_is_dir)
        })?;
        match trees.as_mut().and_then(Iterator::next) {
            Some(tree) => crate::identity::attach(tree, &target)?,
            None => bind_mount(&bind.source, &target, bind.writable)?,
        }
        mounted.push(&bind.target);
    }
    // /dev: a tmpfs holding only the harmless devices, plus /dev/shm for multiprocessing.
    let dev = root.join("dev");
    fs::create_dir_all(&dev)?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
    .map_err(io_err)?;
    for device in DEVICES {
        // The same device as the host's, as a node of its own: cheaper than a bind each (and
        // one mount fewer to tear down per run).
        let host = fs::metadata(Path::new("/dev").join(device))?;
        let node = dev.join(device);
        mknod(&node, SFlag::S_IFCHR, Mode::empty(), host.rdev()).map_err(io_err)?;
        fs::set_permissions(&node, fs::Permissions::from_mode(0o666))?;
    }
    fs::create_dir_all(dev.join("shm"))?;
    mount(
        Some("tmpfs"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64m,mode=1777"),
    )
    .map_err(io_err)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(name))?;
    }
    // /proc of the new pid namespace: the jail's own processes only.
    let proc = root.join("proc");
    fs::create_dir_all(&proc)?;
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("hidepid=2"),
    )
    .map_err(io_err)?;

    // Into the new root; the old one is detached so no path reaches the host's tree.
    let old = root.join(".oldroot");
    fs::create_dir_all(&old)?;
    chdir(root.as_path()).map_err(io_err)?;
    pivot_root(".", ".oldroot").map_err(io_err)?;
    chdir("/").map_err(io_err)?;
    umount2("/.oldroot", MntFlags::MNT_DETACH).map_err(io_err)?;
    fs::remove_dir("/.oldroot")?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        none,
    )
    .map_err(io_err)?;
    Ok(unprivileged)
}

/// A mount point nested in an earlier bind (a read-only area inside the workspace) is reached
/// through directories the session controls. `mount` follows symlinks, so a link planted there
/// would move the mount elsewhere: refuse to build the jail instead. Nothing of the session
/// runs while a jail is built (exec holds the session), so the check cannot be raced.
fn refuse_symlinks_on_the_way(root: &Path, jail_path: &str) -> std::io::Result<()> {
    let mut path = root.to_path_buf();
    for component in jail_path.trim_start_matches('/').split('/') {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "`{jail_path}` is a mount point, but the session made a symlink on its way"
                )));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// An empty directory (or file, to bind a file on) at `path`, and its parents.
fn make_mount_point(path: &Path, directory: bool) -> std::io::Result<()> {
    if directory {
        return fs::create_dir_all(path);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::File::create(path).map(drop)
}

/// Whether jail path `path` is `parent` or below it.
fn is_below(path: &str, parent: &str) -> bool {
    path == parent
        || path
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/') || parent.ends_with('/'))
}

/// A jail path (absolute) below the root directory on the host side.
fn inside(root: &Path, jail_path: &str) -> PathBuf {
    root.join(jail_path.trim_start_matches('/'))
}

fn bind_mount(source: &Path, target: &Path, writable: bool) -> std::io::Result<()> {
    let none: Option<&str> = None;
    mount(
        Some(source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(io_err)?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    if source.starts_with("/dev") {
        flags.remove(MsFlags::MS_NODEV);
    }
    mount(none, target, none, flags, none).map_err(io_err)
}

fn apply_rlimits(spec: &JailSpec) -> nix::Result<()> {
    let limits = &spec.limits;
    setrlimit(Resource::RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds)?;
    setrlimit(
        Resource::RLIMIT_FSIZE,
        limits.file_size_bytes,
        limits.file_size_bytes,
    )?;
    setrlimit(
        Resource::RLIMIT_NOFILE,
        limits.open_files,
        limits.open_files,
    )?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    if limits.address_space_bytes > 0 {
        setrlimit(
            Resource::RLIMIT_AS,
            limits.address_space_bytes,
            limits.address_space_bytes,
        )?;
    }
    Ok(())
}

/// Empties the bounding and ambient sets, becomes the jail user when `unprivileged` (which
/// needs the capabilities still in the effective set), then empties the effective, permitted and
/// inheritable sets: `execve` cannot give any back.
fn drop_capabilities(unprivileged: bool) -> std::io::Result<()> {
    crate::privileges::drop_bounding_and_ambient()?;
    if unprivileged {
        crate::identity::become_jail_user().map_err(io_err)?;
    }
    crate::privileges::clear_capability_sets()
}

/// Read anywhere in the jail (there is nothing else to read), write only in its writable
/// binds and `/dev`. Read-only binds are also read-only mounts; this is the second lock.
fn apply_landlock(spec: &JailSpec) -> String {
    let abi = ABI::V5;
    let writable: Vec<&str> = spec
        .binds
        .iter()
        .filter(|b| b.writable)
        .map(|b| b.target.as_str())
        .chain(["/dev"])
        .collect();
    // Only the write rights are handled. Reading and executing are allowed everywhere in the
    // jail (there is nothing else to read), and a handled right costs a walk up the path on
    // every access: handling reads too, with a rule at `/`, made Python's start-up ~8 ms slower.
    let status = Ruleset::default()
        .handle_access(AccessFs::from_write(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&writable, AccessFs::from_write(abi))))
        .and_then(|r| r.restrict_self());
    match status {
        Ok(s) if s.ruleset == RulesetStatus::FullyEnforced => ENFORCED.into(),
        Ok(s) => format!("unavailable: {:?} on this kernel", s.ruleset),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// `argv[0]` as a path inside the jail.
fn resolve_program(spec: &JailSpec) -> Option<PathBuf> {
    let name = spec.argv.first()?;
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    spec.search_path
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}
