//! The host's side of a run: build the spec, start the helper, enforce what a process cannot
//! enforce on itself (wall time over the whole process tree, output caps, cgroup limits), and
//! describe what happened.

use std::collections::BTreeMap;
use std::io::{PipeReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::cgroup::RunCgroup;
use crate::spec::{
    Bind, JAIL_FAILED_EXIT, JOIN_FLAG, JailSpec, LIFELINE_FD, Layer, Layers, REPORT_PREFIX,
    RESULT_FD, Report, RlimitSpec, frame,
};

/// Directories searched for a program named without a `/`.
const SEARCH_PATH: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];
/// What a jailed program's `PATH` is.
const JAIL_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Why a run could not even start (the program's own failures are an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the Python interpreter `{python}` could not be resolved: {reason}")]
    Interpreter { python: String, reason: String },
    #[error("starting the jail helper {helper}: {error}")]
    Spawn {
        helper: PathBuf,
        error: std::io::Error,
    },
    #[error("preparing the run: {0}")]
    Prepare(String),
}

/// The real interpreter (never a shim), resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// e.g. `/root/.pyenv/versions/3.11.7/bin/python3.11`
    pub executable: PathBuf,
    /// `sys.base_prefix`, bound read-only into every jail at the same path.
    pub prefix: PathBuf,
}

impl Interpreter {
    /// Asks `python` (a name on PATH, a shim or a path) where it really lives.
    pub fn detect(python: &str) -> Result<Self, RunError> {
        let failed = |reason: String| RunError::Interpreter {
            python: python.to_owned(),
            reason,
        };
        let output = Command::new(python)
            .args([
                "-E",
                "-s",
                "-S",
                "-c",
                "import os, sys; print(os.path.realpath(sys.executable)); print(sys.base_prefix)",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(executable), Some(prefix)) => Ok(Self {
                executable: executable.into(),
                prefix: prefix.into(),
            }),
            _ => Err(failed(format!("unexpected answer: {text}"))),
        }
    }
}

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Wall time; then every process of the run is killed.
    pub wall: Duration,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub max_processes: u64,
    /// Largest file a process may write (`RLIMIT_FSIZE`; beyond it, SIGXFSZ).
    pub file_size_bytes: u64,
    /// Kept of each of stdout and stderr; the rest is read and dropped (`truncated`).
    pub output_bytes: usize,
    /// `Some(cap)`: the program gets a result channel, a pipe inherited on fd 3
    /// ([`RESULT_FD`]), of which the first `cap` bytes come back in [`Outcome::result`] (the
    /// rest is read and dropped, [`Outcome::result_truncated`]). A pipe, not a file: nothing the
    /// program leaves behind is ever opened by name on the host. `None`: fd 3 is closed in the
    /// jail like every descriptor above stderr.
    pub result_bytes: Option<usize>,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            wall: Duration::from_secs(60),
            cpu_seconds: 60,
            memory_bytes: 1024 * 1024 * 1024,
            max_processes: 256,
            file_size_bytes: 1024 * 1024 * 1024,
            output_bytes: 1024 * 1024,
            result_bytes: None,
        }
    }
}

/// One program to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// An empty, host-only directory the jail mounts its root on. The mount is in the jail's
    /// own namespace, so concurrent runs can share one directory, which then costs no create
    /// and remove per run. Created when missing, left in place.
    pub root_dir: PathBuf,
    /// The session's directories at their view paths (parents before what is nested in them).
    pub mounts: Vec<Bind>,
    pub cwd: String,
    pub argv: Vec<String>,
    /// Added to the jail's base environment (`PATH`, `HOME`, `LANG`, …).
    pub env: BTreeMap<String, String>,
    pub stdin: Vec<u8>,
    /// Keeps the program's stdin open after `stdin` was written, for [`Running::write_stdin`]
    /// (a background process); otherwise it is closed, and the program reads its end.
    pub keep_stdin_open: bool,
    /// The session's network namespace to join (see [`crate::spec::JailSpec::network`]).
    pub network: Option<PathBuf>,
    /// Which sockets the program may open.
    pub sockets: crate::spec::SocketPolicy,
    pub limits: ExecLimits,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The program's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub duration: Duration,
    /// Each isolation layer: `enforced` or `unavailable: why`.
    pub layers: Layers,
    /// Set when the jail refused to start the program (a required layer failed).
    pub jail_error: Option<String>,
    /// What the program wrote on its result channel (see [`ExecLimits::result_bytes`]): `None`
    /// when the run had none, or when the channel was still open a grace period (5 s) after
    /// the program ended.
    pub result: Option<Vec<u8>>,
    /// More than the cap was written on the result channel; `result` holds the first `cap`
    /// bytes.
    pub result_truncated: bool,
}

/// Runs jobs. Cheap to share.
#[derive(Debug, Clone)]
pub struct Runner {
    helper: PathBuf,
    interpreter: Interpreter,
    runtime: Vec<Bind>,
    symlinks: Vec<(String, String)>,
    warm: Option<Arc<WarmPool>>,
    required_layers: Vec<crate::spec::Layer>,
    lifeline: Arc<Lifeline>,
}

/// A helper started ahead of its run: already in its own cgroups, its namespaces made, its
/// seccomp filters compiled, waiting on stdin for a spec. Joining a cgroup is the slow step of a
/// run on cgroup v1 (the kernel waits for an RCU grace period, 5–25 ms here); a warm helper
/// takes it off the run's path.
#[derive(Debug)]
struct Standby {
    child: Child,
    cgroup: Option<RunCgroup>,
    /// Why there is no cgroup, when there is none.
    cgroup_error: Option<String>,
    /// The read end of the result pipe, whose write end the helper got as [`RESULT_FD`]. Every
    /// helper gets one, since a warm helper starts before anyone knows whether its run is a
    /// call; a run without a result channel drops it unread.
    result: PipeReader,
}

/// The worker's lifeline (see [`crate::spec::LIFELINE_FD`]): a pipe nobody writes. Its write
/// end lives as long as the runner (and its clones); every helper gets the read end, and
/// ends its run when that reads as closed.
#[derive(Debug)]
struct Lifeline {
    read: std::os::fd::OwnedFd,
    _write: std::os::fd::OwnedFd,
}

/// The lowest number the lifeline's read end may have: above the descriptors a helper is given
/// (stdio, [`RESULT_FD`], [`LIFELINE_FD`]), so placing one never overwrites the other.
const LIFELINE_MIN_FD: i32 = 10;

impl Lifeline {
    fn new() -> std::io::Result<Self> {
        let (read, write) = std::io::pipe()?;
        let read = std::os::fd::OwnedFd::from(read);
        // Close-on-exec like every descriptor the worker holds; moved up out of the way.
        let high = nix::fcntl::fcntl(
            &read,
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(LIFELINE_MIN_FD),
        )
        .map_err(std::io::Error::from)?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        #[expect(unsafe_code, reason = "adopting a fresh fd, see the SAFETY comment")]
        let read = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) };
        Ok(Self {
            read,
            _write: write.into(),
        })
    }
}

impl Standby {
    fn start(helper: &Path, lifeline: &Lifeline) -> Result<Self, RunError> {
        let spawn_error = |error| RunError::Spawn {
            helper: helper.to_owned(),
            error,
        };
        let (cgroup, cgroup_error) = match RunCgroup::create() {
            Ok(group) => (Some(group), None),
            Err(why) => (None, Some(why)),
        };
        // Both ends close-on-exec: no other program the worker starts inherits either.
        let (result, result_end) = std::io::pipe().map_err(spawn_error)?;
        let end = result_end.as_raw_fd();
        let lifeline = lifeline.read.as_raw_fd();
        let mut command = Command::new(helper);
        for procs in cgroup.iter().flat_map(RunCgroup::procs_files) {
            command.arg(JOIN_FLAG).arg(procs);
        }
        // SAFETY: the closure runs in the forked child before exec and only makes async-signal-
        // safe calls on integers (dup2, fcntl), allocating nothing. `end` stays open in the
        // parent until `spawn` returns, so the child's copy of it is the pipe.
        #[expect(
            unsafe_code,
            reason = "pre_exec is unsafe by contract; see the SAFETY comment"
        )]
        unsafe {
            command.pre_exec(move || {
                // dup2 clears close-on-exec on the copy; when the pipe already is fd 3, dup2
                // would do nothing, so clear the flag on it directly.
                let moved = if end == RESULT_FD {
                    libc::fcntl(RESULT_FD, libc::F_SETFD, 0)
                } else {
                    libc::dup2(end, RESULT_FD)
                };
                // The lifeline's read end is above every number placed here (LIFELINE_MIN_FD).
                if moved < 0 || libc::dup2(lifeline, LIFELINE_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error)?;
        // Only the helper (and what it hands the end to) may hold the write end: the reader
        // sees the end of the result when the program's tree has exited.
        drop(result_end);
        Ok(Self {
            child,
            cgroup,
            cgroup_error,
            result,
        })
    }

    /// Sets the run's memory and process limits on the helper's cgroups.
    fn limit(&self, limits: &ExecLimits) -> Result<(), RunError> {
        match &self.cgroup {
            Some(group) => group
                .limit(limits.memory_bytes, limits.max_processes)
                .map_err(RunError::Prepare),
            None => Ok(()),
        }
    }

    /// Ends a helper that will never get a run (its whole process group: the relay and the
    /// waiting pid 1), and its cgroups.
    fn discard(mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }

    /// Whether the helper is still waiting (not dead of some accident since it started).
    fn is_waiting(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Warm helpers, refilled in the background after each run takes one.
#[derive(Debug)]
struct WarmPool {
    helper: PathBuf,
    lifeline: Arc<Lifeline>,
    size: usize,
    ready: Mutex<Vec<Standby>>,
    refilling: AtomicBool,
}

impl WarmPool {
    /// The waiting helpers. A panic elsewhere while the lock was held leaves nothing half-done
    /// in a `Vec` push or pop, so a poisoned lock is used as it is.
    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Standby>> {
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A waiting helper, if one is ready (helpers that died waiting are discarded).
    fn take(self: &Arc<Self>) -> Option<Standby> {
        let mut taken = None;
        while let Some(mut standby) = self.ready().pop() {
            if standby.is_waiting() {
                taken = Some(standby);
                break;
            }
            standby.discard();
        }
        self.refill();
        taken
    }

    fn is_full(&self) -> bool {
        self.ready().len() >= self.size
    }

    /// Starts helpers until `size` wait, on one background thread at a time. The thread holds
    /// the pool weakly, so a dropped runner does not wait for it.
    fn refill(self: &Arc<Self>) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("hearth-warm-jails".into())
            .spawn(move || {
                while let Some(pool) = pool.upgrade() {
                    if !pool.is_full() {
                        match Standby::start(&pool.helper, &pool.lifeline) {
                            Ok(standby) => pool.ready().push(standby),
                            // Runs start their own helper until the next refill tries again.
                            Err(_) => return pool.refilling.store(false, Ordering::Release),
                        }
                        continue;
                    }
                    pool.refilling.store(false, Ordering::Release);
                    // A run may have taken one after the check and seen the flag still set:
                    // go on only if the pool is short again and no other refill took over.
                    if pool.is_full() || pool.refilling.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            });
        if spawned.is_err() {
            self.refilling.store(false, Ordering::Release);
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.ready().drain(..).for_each(Standby::discard);
    }
}

impl Runner {
    /// `helper` is the `hearth-jail` binary; `python` the interpreter to offer (resolved now).
    pub fn new(helper: PathBuf, python: &str) -> Result<Self, RunError> {
        let interpreter = Interpreter::detect(python)?;
        // The cgroup hierarchy, found now rather than by the first run: on v2 this moves the
        // worker into a leaf group, best done before it starts helpers. A host without cgroups
        // is not an error here; each run reports the layer as unavailable, with the reason.
        let _ = crate::cgroup::host();
        let mut runtime = vec![Bind {
            source: "/usr".into(),
            target: "/usr".into(),
            writable: false,
        }];
        let mut symlinks = Vec::new();
        // Merged-/usr systems have these as symlinks into /usr; others as directories.
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(top);
            match std::fs::read_link(&host) {
                Ok(target) => {
                    symlinks.push((top.to_owned(), target.to_string_lossy().into_owned()))
                }
                Err(_) if host.is_dir() => runtime.push(Bind {
                    source: host.clone(),
                    target: format!("/{top}"),
                    writable: false,
                }),
                Err(_) => {}
            }
        }
        if !interpreter.prefix.starts_with("/usr") {
            let prefix = interpreter.prefix.to_string_lossy().into_owned();
            runtime.push(Bind {
                source: interpreter.prefix.clone(),
                target: prefix,
                writable: false,
            });
        }
        Ok(Self {
            helper,
            interpreter,
            runtime,
            symlinks,
            warm: None,
            required_layers: Vec::new(),
            lifeline: Arc::new(Lifeline::new().map_err(|e| RunError::Prepare(e.to_string()))?),
        })
    }

    /// Layers every run needs `enforced` (e.g. `landlock`, `cgroups`, `uid`); a run in which one
    /// is not is refused by the jail before its program starts.
    pub fn with_required_layers(mut self, layers: Vec<crate::spec::Layer>) -> Self {
        self.required_layers = layers;
        self
    }

    /// Keeps `count` helpers started ahead of their runs (0: start each with its run). Each
    /// waiting helper is a sleeping process with its own cgroups and namespaces. Also removes
    /// the groups earlier processes' waiting helpers left behind.
    pub fn with_warm_jails(mut self, count: usize) -> Self {
        crate::cgroup::sweep_orphans();
        self.warm = (count > 0).then(|| {
            let pool = Arc::new(WarmPool {
                helper: self.helper.clone(),
                lifeline: self.lifeline.clone(),
                size: count,
                ready: Mutex::new(Vec::new()),
                refilling: AtomicBool::new(false),
            });
            pool.refill();
            pool
        });
        self
    }

    pub fn interpreter(&self) -> &Interpreter {
        &self.interpreter
    }

    /// The directory of the interpreter's executable (its `python3`, `python`, `pip`).
    fn interpreter_bin(&self) -> String {
        self.interpreter
            .executable
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The jail's environment: a fixed base plus the job's variables.
    fn environment(&self, job: &Job) -> BTreeMap<String, String> {
        // The configured interpreter comes first, so `python3` in a command is the one the
        // operator chose (with its packages), not whatever /usr/bin holds.
        let path = format!("{}:{JAIL_PATH}", self.interpreter_bin());
        let mut env = BTreeMap::from([
            ("PATH".to_owned(), path),
            ("HOME".to_owned(), "/tmp".to_owned()),
            ("TMPDIR".to_owned(), "/tmp".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("PYTHONIOENCODING".to_owned(), "utf-8".to_owned()),
            ("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()),
        ]);
        env.extend(job.env.clone());
        env
    }

    /// What the helper reads on stdin: the framed spec of `job`, then the program's input.
    /// Creates the directory the jail's root is mounted on.
    fn input(&self, job: &Job, memory_cgroup: bool) -> Result<Vec<u8>, RunError> {
        // The helper works from inside the jail's root while it builds it: a path relative to
        // the worker's directory (a relative data dir) would mean something else there.
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .map_err(|e| RunError::Prepare(format!("{}: {e}", path.display())))
        };
        let binds = job
            .mounts
            .iter()
            .map(|bind| {
                Ok(Bind {
                    source: absolute(&bind.source)?,
                    ..bind.clone()
                })
            })
            .collect::<Result<_, RunError>>()?;
        let spec = JailSpec {
            root_dir: absolute(&job.root_dir)?,
            runtime: self.runtime.clone(),
            binds,
            symlinks: self.symlinks.clone(),
            cwd: job.cwd.clone(),
            argv: job.argv.clone(),
            search_path: std::iter::once(self.interpreter_bin())
                .chain(SEARCH_PATH.iter().map(|s| (*s).to_owned()))
                .collect(),
            env: self.environment(job),
            limits: RlimitSpec {
                cpu_seconds: job.limits.cpu_seconds,
                file_size_bytes: job.limits.file_size_bytes,
                open_files: 1024,
                // With a memory cgroup the address space need not be capped (which breaks
                // programs that reserve much and use little); without one it is the only bound.
                address_space_bytes: if memory_cgroup {
                    0
                } else {
                    job.limits.memory_bytes.saturating_mul(2)
                },
            },
            required_layers: self.required_layers.clone(),
            result_channel: job.limits.result_bytes.is_some(),
            network: job.network.as_ref().map(|n| absolute(n)).transpose()?,
            sockets: job.sockets,
        };
        std::fs::create_dir_all(&job.root_dir).map_err(|e| RunError::Prepare(e.to_string()))?;
        let mut input = frame(&spec).map_err(|e| RunError::Prepare(e.to_string()))?;
        input.extend_from_slice(&job.stdin);
        Ok(input)
    }

    /// Runs `job` to completion (or to its wall time). Blocks the calling thread.
    pub fn run(&self, job: &Job) -> Result<Outcome, RunError> {
        self.run_streaming(job, None)
    }

    /// Like [`Runner::run`], also handing every chunk of output to `sink` as it arrives (the
    /// helper's report line excluded). The [`Outcome`] still carries the capped output.
    pub fn run_streaming(&self, job: &Job, sink: Option<OutputSink>) -> Result<Outcome, RunError> {
        Ok(self.start(job, sink)?.wait())
    }

    /// Starts `job` and answers at once: the run goes on until [`Running::wait`] (which
    /// enforces the wall time) says how it ended. Output reaches `sink` as it comes.
    pub fn start(&self, job: &Job, sink: Option<OutputSink>) -> Result<Running, RunError> {
        let started = Instant::now();
        let standby = match self.warm.as_ref().and_then(WarmPool::take) {
            Some(standby) => standby,
            None => Standby::start(&self.helper, &self.lifeline)?,
        };
        let input = standby
            .limit(&job.limits)
            .and_then(|()| self.input(job, standby.cgroup.is_some()));
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                standby.discard();
                return Err(e);
            }
        };
        let Standby {
            mut child,
            cgroup,
            cgroup_error,
            result,
        } = standby;
        // Without a channel the jail closes its end: nothing will come, keep nothing open.
        let result = job
            .limits
            .result_bytes
            .map(|cap| capture(result, cap, None));
        let control = RunControl::of(&child);
        let stdin = child.stdin.take();
        let keep_stdin_open = job.keep_stdin_open;
        let feeder = std::thread::spawn(move || {
            let mut stdin = stdin?;
            stdin.write_all(&input).ok()?;
            keep_stdin_open.then_some(stdin)
        });
        let cap = job.limits.output_bytes;
        let stdout = child
            .stdout
            .take()
            .map(|s| capture(s, cap, sink.clone().map(|sink| (Stream::Stdout, sink))));
        // Room for the helper's report line on top of the program's own output.
        let stderr = child
            .stderr
            .take()
            .map(|s| capture(s, cap + 64 * 1024, sink.map(|sink| (Stream::Stderr, sink))));
        let pid = child.id();
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = done_tx.send(child.wait());
        });
        Ok(Running {
            started,
            wall: job.limits.wall,
            output_cap: cap,
            pid,
            control,
            stdin: RunStdin(Arc::new(Mutex::new(StdinState::Feeding(feeder)))),
            done: done_rx,
            waiter,
            cgroup,
            cgroup_error,
            stdout,
            stderr,
            result,
        })
    }
}

/// A signal handle on a started run, cheap to clone and safe to use at any time: it holds a
/// pidfd of the helper, so a signal sent after the run ended reaches nothing (never a process
/// that took over the number).
#[derive(Debug, Clone)]
pub struct RunControl {
    pidfd: Option<Arc<std::os::fd::OwnedFd>>,
}

impl RunControl {
    fn of(child: &Child) -> Self {
        // SAFETY: pidfd_open takes a pid and flags; the child is not yet reaped, so the pid is
        // still the child's.
        #[expect(unsafe_code, reason = "raw pidfd_open, see the SAFETY comment")]
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0u32) };
        let pidfd = (fd >= 0).then(|| {
            // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
            #[expect(unsafe_code, reason = "adopting a fresh fd, see the SAFETY comment")]
            let fd =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            Arc::new(fd)
        });
        Self { pidfd }
    }

    /// Sends `signal` to the run: the helper forwards it to the program's process group
    /// (`SIGKILL` ends the helper itself, and the jail dies with it). `Ok(false)`: the run had
    /// already ended.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> std::io::Result<bool> {
        let Some(pidfd) = &self.pidfd else {
            return Err(std::io::Error::other("no pidfd for this run"));
        };
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        #[expect(unsafe_code, reason = "raw pidfd_send_signal, see the SAFETY comment")]
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        match sent {
            0 => Ok(true),
            _ => match std::io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
                e => Err(e),
            },
        }
    }
}

/// The program's stdin: still being fed the job's own input, open for more, or closed.
enum StdinState {
    Feeding(std::thread::JoinHandle<Option<std::process::ChildStdin>>),
    Open(std::process::ChildStdin),
    Closed,
}

/// A run in progress (see [`Runner::start`]).
pub struct Running {
    started: Instant,
    wall: Duration,
    output_cap: usize,
    pid: u32,
    control: RunControl,
    stdin: RunStdin,
    done: mpsc::Receiver<std::io::Result<std::process::ExitStatus>>,
    waiter: std::thread::JoinHandle<()>,
    cgroup: Option<RunCgroup>,
    cgroup_error: Option<String>,
    stdout: Option<Captured>,
    stderr: Option<Captured>,
    result: Option<Captured>,
}

/// A running program's stdin, shared: writes from any thread, one at a time.
#[derive(Clone)]
pub struct RunStdin(Arc<Mutex<StdinState>>);

impl RunStdin {
    /// Writes `data` to the program's stdin (once the job's own input is written), then closes
    /// it when `close`. Blocks while the program does not read (a full pipe): the caller
    /// bounds that wait.
    /// A write while another waits is refused ([`StdinError::Busy`]), so that a program that
    /// never reads holds one blocked writer, not one per attempt.
    pub fn write(&self, data: &[u8], close: bool) -> Result<(), StdinError> {
        let mut state = match self.0.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(StdinError::Busy),
        };
        if let StdinState::Feeding(_) = &*state {
            let StdinState::Feeding(feeder) = std::mem::replace(&mut *state, StdinState::Closed)
            else {
                return Err(StdinError::Closed);
            };
            if let Ok(Some(stdin)) = feeder.join() {
                *state = StdinState::Open(stdin);
            }
        }
        let StdinState::Open(stdin) = &mut *state else {
            return Err(StdinError::Closed);
        };
        let written = stdin.write_all(data).and_then(|()| stdin.flush());
        if close || written.is_err() {
            *state = StdinState::Closed;
        }
        written.map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => StdinError::Closed,
            _ => StdinError::Io(e),
        })
    }

    /// Whether writes may still be made (what the job gave is written or being written, and
    /// stdin was kept open and not closed since).
    pub fn is_open(&self) -> bool {
        match self.0.try_lock() {
            Ok(state) => !matches!(*state, StdinState::Closed),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                !matches!(*p.into_inner(), StdinState::Closed)
            }
            // A write is under way: open.
            Err(std::sync::TryLockError::WouldBlock) => true,
        }
    }

    /// Closes stdin (after the job's own input is written). A write blocked on a full pipe
    /// holds the lock: this waits for it, and the caller's bound on that write bounds this.
    pub fn close(&self) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let StdinState::Feeding(feeder) = std::mem::replace(&mut *state, StdinState::Closed) {
            let _ = feeder.join();
        }
    }
}

/// Why input could not be written to a run.
#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    #[error("the program's stdin is closed")]
    Closed,
    #[error("another write is waiting for the program to read")]
    Busy,
    #[error("writing to the program's stdin: {0}")]
    Io(#[from] std::io::Error),
}

impl Running {
    /// The signal handle of this run.
    pub fn control(&self) -> RunControl {
        self.control.clone()
    }

    /// The program's stdin, for writes while it runs.
    pub fn stdin(&self) -> RunStdin {
        self.stdin.clone()
    }

    /// Waits for the run to end (killing it at its wall time) and says how it ended. Blocks the
    /// calling thread.
    pub fn wait(self) -> Outcome {
        let Running {
            started,
            wall,
            output_cap: cap,
            pid,
            control: _,
            stdin,
            done: done_rx,
            waiter,
            cgroup,
            cgroup_error,
            stdout,
            stderr,
            result,
        } = self;
        let left = wall.saturating_sub(started.elapsed());
        let (status, timed_out) = match done_rx.recv_timeout(left) {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                // The helper's process group; its jail dies with it (PR_SET_PDEATHSIG), and
                // the pid namespace takes every remaining process down with its pid 1.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                (done_rx.recv().ok().and_then(Result::ok), true)
            }
        };
        let _ = waiter.join();
        if let Some(group) = &cgroup {
            group.kill_all();
        }
        stdin.close();
        // One grace for all the pipes together, not one each.
        let drained_by = Instant::now() + DRAIN_GRACE;
        let lost = (Vec::new(), true);
        let (stdout, stdout_cut) = stdout
            .map(|c| join_capture(c, drained_by).unwrap_or_else(|| lost.clone()))
            .unwrap_or_default();
        let (mut stderr, mut stderr_cut) = stderr
            .map(|c| join_capture(c, drained_by).unwrap_or_else(|| lost.clone()))
            .unwrap_or_default();
        let (result, result_truncated) = match result.and_then(|c| join_capture(c, drained_by)) {
            Some((bytes, cut)) => (Some(bytes), cut),
            None => (None, false),
        };
        let report = take_report(&mut stderr);
        if stderr.len() > cap {
            stderr.truncate(cap);
            stderr_cut = true;
        }
        let oom_killed = cgroup.as_ref().is_some_and(RunCgroup::oom_killed);
        if let Some(group) = cgroup {
            group.release_in_background();
        }

        let mut layers = report
            .as_ref()
            .map(|r| r.layers.clone())
            .unwrap_or_default();
        if let Some(why) = cgroup_error {
            layers.insert(Layer::Cgroups.name().into(), format!("unavailable: {why}"));
        }
        layers.insert(Layer::WallTime.name().into(), crate::spec::ENFORCED.into());
        let stale = report
            .as_ref()
            .filter(|r| r.protocol != crate::spec::PROTOCOL)
            .map(|r| {
                format!(
                    "the jail helper speaks protocol {}, this worker {}: it is from another build; \
                     rebuild hearth-jail with the worker",
                    r.protocol,
                    crate::spec::PROTOCOL
                )
            });
        let jail_error = stale.or_else(|| report.and_then(|r| r.error)).or_else(|| {
            (!timed_out
                && status.is_some_and(|s| s.code() == Some(JAIL_FAILED_EXIT))
                && layers.len() <= 2)
                .then(|| "the jail helper failed before reporting".to_owned())
        });
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            stdout,
            stderr,
            truncated: stdout_cut || stderr_cut,
            timed_out,
            oom_killed,
            duration: started.elapsed(),
            layers,
            jail_error,
            result,
            result_truncated,
        }
    }
}

/// A reader thread's result: what it kept, and whether it dropped anything.
type Captured = mpsc::Receiver<(Vec<u8>, bool)>;

/// Which output a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives output as it arrives (called from the reader threads).
pub type OutputSink = std::sync::Arc<dyn Fn(Stream, &[u8]) + Send + Sync>;

/// Reads a pipe to its end on a thread, keeping the first `cap` bytes and handing every chunk
/// to `tap`'s sink, when there is one, as output of its stream.
fn capture(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
    tap: Option<(Stream, OutputSink)>,
) -> Captured {
    let (done, captured) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut cut = false;
        let mut buf = vec![0u8; 64 * 1024];
        // On stderr the helper's report line comes first: it is not the program's output.
        let mut in_report = matches!(tap, Some((Stream::Stderr, _)));
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    cut |= n > room;
                    if let Some((stream, sink)) = &tap {
                        let mut chunk = &buf[..n];
                        if in_report {
                            let report_bytes = kept.len().min(REPORT_PREFIX.len());
                            if kept[..report_bytes] != REPORT_PREFIX.as_bytes()[..report_bytes] {
                                in_report = false;
                            } else if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                                chunk = &chunk[end + 1..];
                                in_report = false;
                            } else {
                                chunk = &[];
                            }
                        }
                        if !chunk.is_empty() {
                            sink(*stream, chunk);
                        }
                    }
                }
            }
        }
        let _ = done.send((kept, cut));
    });
    captured
}

/// How long after the program ended the output readers may take to finish. A process that
/// escaped the run could otherwise hold a pipe open and this run would never return.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What a reader kept, if it finished by `deadline`. On time-out the reader is left behind (it
/// ends when the pipe closes) and what it had is lost.
fn join_capture(captured: Captured, deadline: Instant) -> Option<(Vec<u8>, bool)> {
    captured
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Removes the helper's report line from the start of stderr and parses it.
fn take_report(stderr: &mut Vec<u8>) -> Option<Report> {
    let prefix = REPORT_PREFIX.as_bytes();
    if !stderr.starts_with(prefix) {
        return None;
    }
    let end = stderr
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(stderr.len());
    let report = serde_json::from_slice(&stderr[prefix.len()..end]).ok();
    stderr.drain(..(end + 1).min(stderr.len()));
    report
}
