//! The helper's side: build the jail described by a [`JailSpec`], then run the program in it.
//!
//! `run_main` follows one fixed order (each step needs the privileges the later ones remove):
//!
//! 1. join the run's cgroups (v1: memory and pids; v2: the one group), named by `--join`
//!    arguments;
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
    ENFORCED, JAIL_FAILED_EXIT, JOIN_FLAG, JailSpec, LIFELINE_FD, Layer, Layers, PROTOCOL,
    REPORT_PREFIX, RESULT_FD, Report, SocketPolicy, read_framed,
};

/// Device nodes the jail gets, bound from the host's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// The helper's entry point: never returns.
///
/// Everything that does not depend on the run happens first (cgroups, namespaces, compiling
/// the seccomp filters); then the helper waits for its spec on stdin. So a warm helper, started
/// ahead of time, has paid for the slow parts before its run arrives.
pub fn run_main() -> ! {
    let lifeline = take_lifeline();
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
    // Both filters, as the run's socket policy is not known yet.
    let filters = match (
        crate::seccomp::programs(SocketPolicy::UnixOnly),
        crate::seccomp::programs(SocketPolicy::Tcp),
    ) {
        (Ok(unix_only), Ok(tcp)) => [unix_only, tcp],
        (Err(e), _) | (_, Err(e)) => fail(&layers, &e.to_string()),
    };
    // Signals the host sends the run are taken by signalfd from here on, by the relay and by
    // the jail's init alike (see `forward_signals`); the program gets them unblocked.
    if let Err(e) = FORWARDED_AND_CHILD.thread_block() {
        fail(&layers, &format!("blocking signals: {e}"));
    }

    // 3. fork into the pid namespace, still ahead of the run. The parent holds the write end
    // of `parent_alive` open for as long as it lives: the child's way to notice a parent that
    // died before its death signal was (re)armed (`getppid` says 0 across a pid namespace).
    let (parent_alive, parent_holds) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(ends) => ends,
        Err(e) => fail(&layers, &format!("pipe: {e}")),
    };
    // How the jail's init tells the relay that the program died of a signal (an exit status
    // cannot: init cannot die of a signal it sends itself).
    let (death_read, death_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
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
            drop((parent_alive, death_write));
            drop(result_channel);
            relay_exit(child, parent_holds, lifeline, death_read)
        }
        Ok(ForkResult::Child) => drop((parent_holds, lifeline, death_read)),
        Err(e) => fail(&layers, &format!("fork: {e}")),
    }
    die_with_parent(&parent_alive, &layers);

    // Now the run: its spec, framed on stdin; the rest of stdin is the program's.
    let spec = match read_framed(&mut RawStdin) {
        Ok(spec) => spec,
        Err(e) => fail(&layers, &format!("reading the jail spec: {e}")),
    };
    let result_channel = result_channel.filter(|_| spec.result_channel);
    if let Some(network) = &spec.network {
        match join_network(network) {
            Ok(()) => layers.insert(
                Layer::NetworkNamespace.name().into(),
                "enforced: the session's own".into(),
            ),
            Err(e) => fail(
                &layers,
                &format!("joining the session's network namespace: {e}"),
            ),
        };
    }
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
    close_inherited_descriptors(result_channel.as_ref(), &death_write);
    let filters = match spec.sockets {
        SocketPolicy::UnixOnly => &filters[0],
        SocketPolicy::Tcp => &filters[1],
    };
    if let Err(e) = crate::seccomp::install(filters) {
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
        protocol: PROTOCOL,
    });
    // 9. the program, under an init: pid 1 of a namespace gets no signal it has no handler for,
    // so a program that is pid 1 would ignore the host's SIGTERM. The init forwards every
    // signal to the program's process group and ends with the program (the namespace's other
    // processes die with it).
    // SAFETY: single-threaded, as above.
    #[expect(
        unsafe_code,
        reason = "fork is unsafe by contract; see the SAFETY comment"
    )]
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Parent { child }) => init(child, death_write),
        Ok(ForkResult::Child) => {
            drop(death_write);
            // Dies with its init, as the init dies with the relay.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "hearth-jail: fork: {e}");
            std::process::exit(126);
        }
    }
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    exec_program(&spec)
}

/// Replaces this process with the program (or exits as a shell would when it cannot).
fn exec_program(spec: &JailSpec) -> ! {
    let Some(program) = resolve_program(spec) else {
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

/// Joins the network namespace bound on `path` (the session's, made by the worker).
fn join_network(path: &Path) -> std::io::Result<()> {
    let namespace = fs::File::open(path)?;
    nix::sched::setns(namespace, CloneFlags::CLONE_NEWNET).map_err(io_err)
}

/// Signals the host may send a run, forwarded by the relay to the jail's init and by the init
/// to the program's process group. SIGKILL needs no forwarding: the host kills the helper's
/// process group and the cgroup, and the namespace dies with its init.
const FORWARDED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGWINCH,
    Signal::SIGALRM,
];

/// [`FORWARDED`] and SIGCHLD: what the relay and the init block and read from a signalfd.
static FORWARDED_AND_CHILD: std::sync::LazyLock<nix::sys::signal::SigSet> =
    std::sync::LazyLock::new(|| {
        let mut set = nix::sys::signal::SigSet::empty();
        for signal in FORWARDED {
            set.add(signal);
        }
        set.add(Signal::SIGCHLD);
        set
    });

/// A signalfd for [`FORWARDED_AND_CHILD`] (blocked since before the fork).
fn signal_fd() -> nix::Result<nix::sys::signalfd::SignalFd> {
    nix::sys::signalfd::SignalFd::with_flags(
        &FORWARDED_AND_CHILD,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
}

/// The jail's pid 1 once the program runs: forwards signals to the program's process group,
/// reaps every orphan, and exits as the program did (telling the relay on `death` when that
/// was a signal). Holds none of the run's pipes, so their ends are the program's.
fn init(program: nix::unistd::Pid, death: OwnedFd) -> ! {
    for fd in 0..=RESULT_FD {
        let _ = nix::unistd::close(fd);
    }
    let Ok(signals) = signal_fd() else {
        // Without a signalfd the init can still wait: only forwarding is lost.
        loop {
            wait_for_program(program, &death, false)
        }
    };
    loop {
        let mut poll = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = nix::poll::poll(&mut poll, PollTimeout::NONE)
            && e != nix::errno::Errno::EINTR
        {
            loop {
                wait_for_program(program, &death, false)
            }
        }
        while let Ok(Some(info)) = signals.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == Signal::SIGCHLD as i32 {
                wait_for_program(program, &death, true);
            } else if let Ok(signal) = Signal::try_from(signo) {
                let group = nix::unistd::Pid::from_raw(-program.as_raw());
                if nix::sys::signal::kill(group, signal).is_err() {
                    let _ = nix::sys::signal::kill(program, signal);
                }
            }
        }
    }
}

/// Reaps every child that has ended (all of them when not `nonblocking`); exits once the
/// program has, as it did.
fn wait_for_program(program: nix::unistd::Pid, death: &OwnedFd, nonblocking: bool) {
    use nix::sys::wait::WaitPidFlag;
    let flags = nonblocking.then_some(WaitPidFlag::WNOHANG);
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), flags) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => std::process::exit(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == program => {
                let _ = nix::unistd::write(death, &[signal as i32 as u8]);
                std::process::exit(128 + signal as i32)
            }
            Ok(WaitStatus::StillAlive) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            // No child left, and the program not seen: nothing to wait for.
            Err(_) => std::process::exit(JAIL_FAILED_EXIT),
        }
    }
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
        protocol: PROTOCOL,
    });
    std::process::exit(JAIL_FAILED_EXIT);
}

fn report(report: &Report) {
    let line = serde_json::to_string(report).unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{REPORT_PREFIX}{line}");
}

/// Closes every descriptor above stderr but `keep`, the result channel (which is
/// [`RESULT_FD`], the lowest of them, when there is one), and `death`, the init's pipe to the
/// relay (which the program never gets: the init closes nothing the program holds, and the
/// program is forked after this).
fn close_inherited_descriptors(keep: Option<&OwnedFd>, death: &OwnedFd) {
    let first = match keep {
        Some(channel) if channel.as_raw_fd() == RESULT_FD => RESULT_FD + 1,
        _ => RESULT_FD,
    };
    let death = death.as_raw_fd();
    // SAFETY: close_range takes integers; closing descriptors this process no longer uses
    // (nothing below holds one: the filters are compiled, the spec read; the result channel,
    // when kept, is below `first`; `death` is skipped) is sound.
    #[expect(unsafe_code, reason = "raw close_range, see the SAFETY comment")]
    unsafe {
        if death > first {
            libc::syscall(
                libc::SYS_close_range,
                first as u32,
                (death - 1) as u32,
                0u32,
            );
        }
        libc::syscall(libc::SYS_close_range, (death + 1) as u32, u32::MAX, 0u32);
    }
}

/// Takes [`LIFELINE_FD`], the read end of the worker's lifeline, when the helper was started
/// with one (a helper run by hand has none, and nothing to outlive).
fn take_lifeline() -> Option<OwnedFd> {
    // SAFETY: F_GETFD on an integer only reads the descriptor's flags.
    #[expect(unsafe_code, reason = "raw fcntl, see the SAFETY comment")]
    let open = unsafe { libc::fcntl(LIFELINE_FD, libc::F_GETFD) } >= 0;
    // SAFETY: the host hands this descriptor to the helper for it alone (see
    // `runner::Standby::start`), and nothing in this process has used or owns it yet.
    #[expect(unsafe_code, reason = "adopting fd 4, see the SAFETY comment")]
    open.then(|| unsafe { OwnedFd::from_raw_fd(LIFELINE_FD) })
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

/// The parent half of the fork: forwards the host's signals to the jail's init, and exits the
/// way the program did once the init is gone, holding `alive` open until then (see
/// [`die_with_parent`]). When the worker's `lifeline` reads as closed the worker is gone:
/// the jail is killed with it (its init dies of its parent's death).
fn relay_exit(
    child: nix::unistd::Pid,
    alive: OwnedFd,
    lifeline: Option<OwnedFd>,
    death: OwnedFd,
) -> ! {
    let _alive = alive;
    let signals = signal_fd().ok();
    loop {
        let mut polled: Vec<PollFd<'_>> = signals
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .chain(
                lifeline
                    .iter()
                    .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN)),
            )
            .collect();
        // Without a signalfd, SIGCHLD is never read: look at the child now and then.
        let timeout = match signals {
            Some(_) => PollTimeout::NONE,
            None => PollTimeout::from(100u16),
        };
        match nix::poll::poll(&mut polled, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => std::process::exit(JAIL_FAILED_EXIT),
        }
        let worker_gone = lifeline.is_some()
            && polled
                .last()
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty());
        if worker_gone {
            std::process::exit(JAIL_FAILED_EXIT);
        }
        while let Some(Ok(Some(info))) = signals.as_ref().map(|s| s.read_signal()) {
            if info.ssi_signo as i32 != Signal::SIGCHLD as i32
                && let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
            {
                let _ = nix::sys::signal::kill(child, signal);
            }
        }
        match waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => {
                let mut signal = [0u8];
                match nix::unistd::read(&death, &mut signal) {
                    Ok(1) => die_of(signal[0] as i32),
                    _ => std::process::exit(code),
                }
            }
            Ok(WaitStatus::Signaled(_, signal, _)) => die_of(signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(JAIL_FAILED_EXIT),
        }
    }
}

/// Dies of `signal`, so the host sees the signal and not a made-up exit code.
fn die_of(signal: i32) -> ! {
    if let Ok(signal) = Signal::try_from(signal) {
        let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
        // SAFETY: resetting a disposition to the default has no preconditions.
        #[expect(unsafe_code, reason = "signal(2), see the SAFETY comment")]
        let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
        let _ = nix::sys::signal::raise(signal);
    }
    std::process::exit(128 + signal)
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
    // The session's directories, as detached trees: through the idmapping, all of them or
    // none (a mix would leave the program unable to use some of them whichever uid it ran as).
    let trees = |userns: Option<BorrowedFd<'_>>| -> std::io::Result<Vec<OwnedFd>> {
        spec.binds
            .iter()
            .map(|bind| crate::identity::detached_tree(&bind.source, userns, bind.writable))
            .collect()
    };
    let prepared = match idmap {
        Some(userns) => match trees(Some(userns)) {
            Ok(trees) => trees,
            // A filesystem without idmapped mounts: plain trees, and the program stays uid 0
            // so that it can still use them.
            Err(e) => {
                unprivileged = Err(format!("the session's directories cannot be idmapped: {e}"));
                trees(None)?
            }
        },
        None => trees(None)?,
    };
    let idmapped = idmap.is_some() && unprivileged.is_ok();
    let mut mounted: Vec<&str> = Vec::new();
    for (bind, tree) in spec.binds.iter().zip(prepared) {
        // A mount point inside an idmapped tree (a read-only area in the workspace) can only be
        // made by the id that mount maps: root's own ids are not mapped there. Programs of the
        // session may be running while this jail is built, so the mount point is made and
        // opened without following a link, and the tree attached to that descriptor.
        let in_idmapped = idmapped && mounted.iter().any(|parent| is_below(&bind.target, parent));
        let source_is_dir = bind.source.is_dir();
        let point = crate::identity::as_jail_user_if(in_idmapped, || {
            mount_point(&bind.target, source_is_dir)
        })?;
        crate::identity::attach(tree, point.as_fd())?;
        mounted.push(&bind.target);
    }
    // Names the jail resolves without a network: `localhost` (servers and their tests).
    let etc = root.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(etc.join("hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n")?;
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

/// The mount point of jail path `jail_path` below the root being built (the working
/// directory), made where missing (a directory, or an empty file to bind a file on) and opened
/// as an `O_PATH` descriptor, every component without following a link. A mount point nested
/// in an earlier bind (a read-only area inside the workspace) is reached through directories
/// the session controls, and `mount` by path follows links: a link planted there, even while
/// this runs, refuses the jail instead of moving the mount elsewhere.
fn mount_point(jail_path: &str, directory: bool) -> std::io::Result<OwnedFd> {
    use nix::errno::Errno;
    use nix::fcntl::{OFlag, openat};
    let refused = |e: Errno| match e {
        Errno::ELOOP | Errno::ENOTDIR => std::io::Error::other(format!(
            "`{jail_path}` is a mount point, but the session made a link or a file on its way"
        )),
        e => io_err(e),
    };
    let parts: Vec<&str> = jail_path.split('/').filter(|c| !c.is_empty()).collect();
    let path_only = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = openat(
        nix::fcntl::AT_FDCWD,
        ".",
        path_only | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(io_err)?;
    for (index, part) in parts.iter().enumerate() {
        if index + 1 < parts.len() || directory {
            match nix::sys::stat::mkdirat(&dir, *part, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(refused(e)),
            }
            dir = openat(&dir, *part, path_only | OFlag::O_DIRECTORY, Mode::empty())
                .map_err(refused)?;
            continue;
        }
        match nix::sys::stat::mknodat(
            &dir,
            *part,
            SFlag::S_IFREG,
            Mode::from_bits_truncate(0o644),
            0,
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(refused(e)),
        }
        // O_PATH with O_NOFOLLOW opens a link itself: only a regular file will do.
        let file = openat(&dir, *part, path_only, Mode::empty()).map_err(refused)?;
        let stat = nix::sys::stat::fstat(&file).map_err(io_err)?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(refused(Errno::ENOTDIR));
        }
        return Ok(file);
    }
    Ok(dir)
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
