//! git work in a helper process: bounded in time, memory and reach, whatever the agent planted.
//!
//! libgit2 opens work-tree files by itself — `.gitignore` and `.gitattributes` in every
//! directory, every file it hashes, conflicted files at checkout — following links and blocking
//! on FIFOs. A check before it runs cannot help: the agent can plant a FIFO right after the
//! check. So every operation on a session's repository runs in `hearth-git`, a process of its
//! own that the worker kills at a deadline, and that confines itself before touching anything:
//!
//! 1. **Reach**: the helper gives up every capability but root's power over file permissions
//!    (a session's files have whatever modes its programs gave them), and Landlock lets it read
//!    and write beneath the session's git directory and work
//!    tree only. Operations that talk to a remote (clone, push, pull) may also read the few
//!    world-readable system files a connection needs (name resolution, CA certificates,
//!    libraries), never anything else of the host. A `.gitignore` linked to `/etc/shadow` or
//!    another session's file is refused by the kernel.
//! 2. **Configuration**: no global, XDG or system git config is read (search paths emptied).
//! 3. **Memory**: `RLIMIT_AS`; a `.gitattributes` linked to `/dev/zero`, or a huge file, ends
//!    in an allocation failure, not in the worker's OOM.
//! 4. **Time**: the worker's deadline (`SIGKILL`, then [`GitError::TimedOut`]); a FIFO costs the
//!    session that planted it one deadline, and no other session anything.
//!
//! The job goes in as JSON on stdin, the answer comes back as JSON on stdout; credentials
//! travel only on that pipe, never in arguments or the environment.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Author, GitError, RemoteAccess, SessionRepo};

/// The longest path below the work tree libgit2 handles (its own buffers are PATH_MAX).
const GIT_PATH_MAX: usize = 4000;

/// The most an answer may take (a status of a huge work tree, a diff at its cap).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// One operation on one session's repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub git_dir: PathBuf,
    pub work_tree: PathBuf,
    /// The branch of a repository made on first use, and of a clone of an empty remote.
    pub default_branch: String,
    /// Who commits when the operation names nobody.
    pub author: Author,
    pub access: RemoteAccess,
    /// A failure in a work tree deeper than this is answered as [`GitError::TooDeep`].
    pub max_depth: usize,
    pub operation: Operation,
}

/// What to do. Each variant is one `SessionRepo` call; the answer is its outcome as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Fill an empty git directory with a clone of `url`.
    Clone {
        url: String,
        branch: Option<String>,
    },
    Status,
    Log {
        revision: Option<String>,
        skip: usize,
        limit: usize,
    },
    Diff {
        from: Option<String>,
        to: Option<String>,
        max_bytes: usize,
    },
    Commit {
        message: String,
        author: Option<Author>,
    },
    Push {
        remote: String,
        branch: Option<String>,
        author: Option<Author>,
    },
    Pull {
        remote: String,
        branch: Option<String>,
        author: Option<Author>,
    },
    MergeContinue {
        message: Option<String>,
        author: Option<Author>,
    },
    MergeAbort,
    Reset {
        revision: String,
        clean: bool,
    },
    /// Sets a remote; answers every remote.
    SetRemote {
        name: String,
        url: String,
    },
}

impl Operation {
    /// Whether the operation talks to a remote (and so may read what a connection needs).
    pub fn uses_network(&self) -> bool {
        matches!(
            self,
            Self::Clone { .. } | Self::Push { .. } | Self::Pull { .. }
        )
    }
}

impl Job {
    /// Runs the job in this process. The helper calls this after confining itself; tests may
    /// call it directly. libgit2 fails on a work tree deeper than paths may be long with a
    /// message of its own: a failure is checked against the depth limit and answered as
    /// [`GitError::TooDeep`] when it is over; commits check before they stage (one directory
    /// listing per directory, no file opened).
    pub fn run(&self) -> Result<Value, GitError> {
        // libgit2 stages around a path it cannot take, silently: a commit checks first, so no
        // file is left out without a word.
        if matches!(
            self.operation,
            Operation::Commit { .. } | Operation::MergeContinue { .. }
        ) && let Some(refused) = self.too_deep()
        {
            return Err(refused);
        }
        match self.run_operation() {
            Err(internal @ GitError::Internal { .. }) => Err(self.too_deep().unwrap_or(internal)),
            other => other,
        }
    }

    /// Why a failed operation failed, when the work tree is to blame: too deep, or a path
    /// longer than libgit2 can take.
    fn too_deep(&self) -> Option<GitError> {
        let tree = hearth_content::Tree::open(&self.work_tree).ok()?;
        let mut too_long = false;
        let walked = hearth_content::walk::Walk::new(self.max_depth).run(&tree, |visit| {
            if visit.path.as_os_str().len() >= GIT_PATH_MAX {
                too_long = true;
                return Err(hearth_content::ContentError::NameTooLong);
            }
            Ok(())
        });
        match walked {
            Err(hearth_content::ContentError::TooDeep { limit }) => {
                Some(GitError::TooDeep { limit })
            }
            Err(hearth_content::ContentError::NameTooLong) if too_long => {
                Some(GitError::PathTooLong {
                    limit: GIT_PATH_MAX,
                })
            }
            _ => None,
        }
    }

    fn run_operation(&self) -> Result<Value, GitError> {
        if let Operation::Clone { url, branch } = &self.operation {
            return json(
                SessionRepo::clone_into(
                    &self.git_dir,
                    &self.work_tree,
                    url,
                    branch.as_deref(),
                    &self.default_branch,
                    &self.author,
                    &self.access,
                )
                .map(|_| Value::Null),
            );
        }
        let repo = if SessionRepo::exists(&self.git_dir) {
            SessionRepo::open(&self.git_dir, &self.work_tree)?
        } else {
            // Sessions made before git was used get their repository now.
            SessionRepo::init(
                &self.git_dir,
                &self.work_tree,
                &self.default_branch,
                &self.author,
            )?
        };
        let by = |author: &Option<Author>| author.clone().unwrap_or_else(|| self.author.clone());
        match &self.operation {
            Operation::Clone { .. } => Ok(Value::Null),
            Operation::Status => json(repo.status()),
            Operation::Log {
                revision,
                skip,
                limit,
            } => json(repo.log(revision.as_deref(), *skip, *limit)),
            Operation::Diff {
                from,
                to,
                max_bytes,
            } => json(repo.diff(from.as_deref(), to.as_deref(), *max_bytes)),
            Operation::Commit { message, author } => json(repo.commit(message, &by(author))),
            Operation::Push {
                remote,
                branch,
                author,
            } => json(repo.push(remote, branch.as_deref(), &by(author), &self.access)),
            Operation::Pull {
                remote,
                branch,
                author,
            } => json(repo.pull(remote, branch.as_deref(), &by(author), &self.access)),
            Operation::MergeContinue { message, author } => {
                json(repo.merge_continue(message.as_deref(), &by(author)))
            }
            Operation::MergeAbort => json(repo.merge_abort()),
            Operation::Reset { revision, clean } => json(repo.reset(revision, *clean)),
            Operation::SetRemote { name, url } => {
                repo.set_remote(name, url, &self.access)?;
                json(repo.remotes())
            }
        }
    }
}

/// An outcome as the JSON the helper answers with.
fn json<T: Serialize>(outcome: Result<T, GitError>) -> Result<Value, GitError> {
    outcome.and_then(|v| serde_json::to_value(v).map_err(|e| GitError::internal(e.to_string())))
}

/// Helpers kept started ahead of their jobs.
const WARM_HELPERS: usize = 2;

/// Runs jobs in `hearth-git` processes. A helper's start (loading libgit2 and OpenSSL, which
/// reads the CA bundle) costs ~25 ms, ten times a status: so helpers are started ahead and wait
/// on stdin, initialised but not yet confined (the job says to what), like warm jails.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub helper: PathBuf,
    /// After this the helper is killed and the operation answers [`GitError::TimedOut`].
    pub timeout: Duration,
    /// The helper's address-space limit.
    pub memory_bytes: u64,
    warm: Arc<Mutex<Vec<Child>>>,
}

/// What the helper writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(Value),
    Err(GitError),
}

impl Isolation {
    pub fn new(helper: PathBuf, timeout: Duration, memory_bytes: u64) -> Self {
        Self {
            helper,
            timeout,
            memory_bytes,
            warm: Arc::default(),
        }
    }

    fn spawn(&self) -> Result<Child, GitError> {
        Command::new(&self.helper)
            .arg(self.memory_bytes.to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                GitError::internal(format!(
                    "starting the git helper {}: {e}",
                    self.helper.display()
                ))
            })
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.warm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A waiting helper, or a new one.
    fn take(&self) -> Result<Child, GitError> {
        while let Some(mut child) = self.ready().pop() {
            if matches!(child.try_wait(), Ok(None)) {
                return Ok(child);
            }
        }
        self.spawn()
    }

    /// Starts a helper for a later job, in the background: after the job that took one has its
    /// answer, so the start (~25 ms of CPU) does not compete with it.
    fn refill(&self) {
        if self.ready().len() >= WARM_HELPERS {
            return;
        }
        let this = self.clone();
        std::thread::spawn(move || {
            if let Ok(mut child) = this.spawn() {
                let mut ready = this.ready();
                if ready.len() < WARM_HELPERS {
                    ready.push(child);
                } else {
                    drop(ready);
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        });
    }

    /// Runs `job` in a new helper and waits for its answer, at most [`Isolation::timeout`].
    /// Blocks the calling thread (for at most that long).
    pub fn run(&self, job: &Job) -> Result<Value, GitError> {
        let answer = self.run_in_helper(job);
        self.refill();
        answer
    }

    fn run_in_helper(&self, job: &Job) -> Result<Value, GitError> {
        let input = serde_json::to_vec(job).map_err(|e| GitError::internal(e.to_string()))?;
        let mut child = self.take()?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (done, finished) = mpsc::channel();
        // Writing, reading and waiting each on a thread of their own, so the deadline holds
        // whatever the helper does with its pipes.
        std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&input);
            }
        });
        let read_capped = |pipe: Option<std::process::ChildStdout>| {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_ANSWER_BYTES + 1).read_to_end(&mut bytes);
            }
            bytes
        };
        let reader = std::thread::spawn(move || read_capped(stdout));
        let errors = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = stderr {
                let _ = pipe.take(64 * 1024).read_to_end(&mut bytes);
            }
            bytes
        });
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = done.send(child.wait());
        });
        let status = match finished.recv_timeout(self.timeout) {
            Ok(status) => status.map_err(|e| GitError::internal(e.to_string()))?,
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = finished.recv();
                return Err(GitError::TimedOut {
                    seconds: self.timeout.as_secs_f64(),
                });
            }
        };
        let answer = reader.join().unwrap_or_default();
        let errors = errors.join().unwrap_or_default();
        if answer.len() as u64 > MAX_ANSWER_BYTES {
            return Err(GitError::internal(format!(
                "the git helper's answer is over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Ok(value)) => Ok(value),
            Ok(Answer::Err(e)) => Err(e),
            Err(_) => Err(GitError::HelperFailed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&errors).trim()
            ))),
        }
    }
}

/// The helper's `main`: reads a job on stdin, confines itself, runs it, answers on stdout.
/// `memory_bytes` is its first argument. `shed_privilege` gives up what git does not need of
/// root (every capability but those over file permissions), before Landlock.
pub fn serve(shed_privilege: impl FnOnce() -> Result<(), String>) -> std::process::ExitCode {
    let memory_bytes = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    // libgit2 (and OpenSSL) initialised before the job arrives: a warm helper has paid for it.
    let forgotten = forget_host_config();
    let mut input = Vec::new();
    let answer = match std::io::stdin()
        .take(16 * 1024 * 1024)
        .read_to_end(&mut input)
    {
        Err(e) => Answer::Err(GitError::internal(format!("reading the job: {e}"))),
        Ok(_) => match serde_json::from_slice::<Job>(&input) {
            Err(e) => Answer::Err(GitError::internal(format!("a malformed job: {e}"))),
            Ok(job) => match forgotten
                .clone()
                .and_then(|()| confine(&job, memory_bytes, shed_privilege))
            {
                Err(why) => Answer::Err(GitError::internal(why)),
                Ok(()) => match job.run() {
                    Ok(value) => Answer::Ok(value),
                    Err(e) => Answer::Err(e),
                },
            },
        },
    };
    let written = serde_json::to_vec(&answer)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::io::stdout().write_all(&bytes));
    if written.is_err() {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

/// What a connection to a remote may read: name resolution, CA certificates, the libraries the
/// resolver loads. World-readable system files, nothing of the host's state.
const NETWORK_READS: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/usr/lib",
    "/usr/share/ca-certificates",
    "/lib",
    "/lib64",
];

/// Steps 1 and 3 of the module's list (step 2 is done before the job arrives), with every
/// capability given up in between.
fn confine(
    job: &Job,
    memory_bytes: u64,
    shed_privilege: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    if memory_bytes > 0 {
        nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_AS,
            memory_bytes,
            memory_bytes,
        )
        .map_err(|e| format!("limiting the helper's memory: {e}"))?;
    }
    shed_privilege()?;
    landlock(job)
}

/// No git configuration of the host applies to a session (nor may a link make it read one).
fn forget_host_config() -> Result<(), String> {
    use git2::ConfigLevel;
    for level in [
        ConfigLevel::System,
        ConfigLevel::XDG,
        ConfigLevel::Global,
        ConfigLevel::ProgramData,
    ] {
        // SAFETY: the helper is single-threaded here, before any other libgit2 call; libgit2
        // copies the path.
        #[expect(
            unsafe_code,
            reason = "libgit2's global options, see the SAFETY comment"
        )]
        let set = unsafe { git2::opts::set_search_path(level, "") };
        set.map_err(|e| format!("clearing git's config search path: {e}"))?;
    }
    Ok(())
}

fn landlock(job: &Job) -> Result<(), String> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V3;
    let own = [job.git_dir.as_path(), job.work_tree.as_path()];
    // The git directory may not exist yet (a repository made on first use): its parent, the
    // session's host-only state, is the host's own.
    let own: Vec<&Path> = own
        .iter()
        .map(|p| {
            if p.exists() {
                *p
            } else {
                p.parent().unwrap_or(p)
            }
        })
        .collect();
    let reads: Vec<&Path> = if job.operation.uses_network() {
        NETWORK_READS
            .iter()
            .map(Path::new)
            .chain(job.access.key_files())
            .collect()
    } else {
        Vec::new()
    };
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&own, AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&reads, AccessFs::from_read(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("confining the git helper: {e}"))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(
            "Landlock is not enforced on this kernel: the git helper refuses to run \
                    unconfined"
                .into(),
        );
    }
    Ok(())
}
