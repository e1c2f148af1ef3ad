//! `POST /v1/sessions/{id}/exec`: the session's programs, run by the jail of `python-runner`.
//!
//! The worker resolves the interpreter and the jail helper once, then proves the jail with a
//! probe run (`/bin/true`) whose layer report is what `/v1/health` shows. Exec is refused
//! (503) when the probe failed or a layer the operator requires is not enforced: the jail fails
//! closed, never silently weaker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use hearth_python_runner::{Bind, ExecLimits, Job, Layers, Outcome, OutputSink, Runner, Stream};
use hearth_wire::exec::{
    CommitFailure, CommitNotMade, ExecCommit, ExecCommitOutcome, ExecRequest, ExecResult,
    OutputChunk, OutputStream,
};
use hearth_wire::git::CommitRequest;
use serde_json::Value;

use crate::config::ExecConfig;
use crate::sessions::Session;

/// The file name of the helper looked for next to the `hearth` binary.
pub const HELPER_NAME: &str = "hearth-jail";
/// Most environment variables one request may add.
const MAX_ENV_VARS: usize = 256;
/// The interpreter name the configuration defaults to, and the fallback when it cannot be
/// resolved.
const DEFAULT_PYTHON: &str = "python3";
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Python run with `call`: imports `module`, calls `function(**kwargs)` with the JSON kwargs
/// read from stdin, and writes the JSON of the return value on fd 3, the run's result channel:
/// a pipe to the worker, never a file, so nothing the program does to its directories can
/// change what the worker reads (or make it open something else). Programs the function starts
/// do not inherit fd 3.
const CALL_SHIM: &str = r#"
import importlib, json, os, sys
os.set_inheritable(3, False)
target = sys.argv[1]
module_name, _, function_name = target.partition(":")
kwargs = json.loads(sys.stdin.read() or "{}")
function = getattr(importlib.import_module(module_name), function_name)
result = function(**kwargs)
encoded = json.dumps(result)
with os.fdopen(3, "w") as out:
    out.write(encoded)
"#;

/// The exec facility of a worker: ready, or why not.
pub struct Exec {
    runner: Option<Runner>,
    /// The probe run's layers (what `/v1/health` reports).
    pub layers: Layers,
    /// Why exec is refused, when it is.
    pub unavailable: Option<String>,
    config: ExecConfig,
    data_dir: PathBuf,
}

/// Where every jail mounts its root, under the data dir (each in its own mount namespace).
const JAIL_ROOT: &str = "jail-root";

impl Exec {
    /// Resolves the helper and the interpreter, and proves the jail with a probe run. Never
    /// fails: a worker without a working jail still serves tools, and says why exec is off.
    pub fn start(config: &ExecConfig, data_dir: &Path) -> Self {
        let mut exec = Self {
            runner: None,
            layers: Layers::new(),
            unavailable: None,
            config: config.clone(),
            data_dir: data_dir.to_owned(),
        };
        let helper = match config
            .helper
            .clone()
            .or_else(|| crate::binaries::beside_binary(HELPER_NAME))
        {
            Some(helper) if helper.is_file() => helper,
            Some(helper) => {
                return exec.refuse(format!(
                    "the jail helper {} does not exist",
                    helper.display()
                ));
            }
            None => {
                return exec.refuse(format!(
                    "no `{HELPER_NAME}` next to the hearth binary; set exec.helper"
                ));
            }
        };
        // The default names whatever `python3` is on PATH; when that cannot be resolved (a
        // shim without its environment), the system's interpreter is the fallback.
        let runner = match Runner::new(helper.clone(), &config.python) {
            Ok(runner) => runner,
            Err(e) if config.python == DEFAULT_PYTHON => match Runner::new(helper, SYSTEM_PYTHON) {
                Ok(runner) => {
                    tracing::warn!(error = %e, fallback = SYSTEM_PYTHON, "using the system interpreter");
                    runner
                }
                Err(_) => return exec.refuse(e.to_string()),
            },
            Err(e) => return exec.refuse(e.to_string()),
        }
        .with_warm_jails(config.warm_jails)
        .with_required_layers(config.required_layers.clone());
        match probe(&runner, data_dir) {
            Ok(layers) => exec.layers = layers,
            Err(why) => return exec.refuse(why),
        }
        let missing: Vec<&str> = config
            .required_layers
            .iter()
            .map(|layer| layer.name())
            .filter(|layer| {
                !exec
                    .layers
                    .get(*layer)
                    .is_some_and(|state| state.starts_with("enforced"))
            })
            .collect();
        if !missing.is_empty() {
            let list = missing;
            return exec.refuse(format!(
                "required jail layers are not enforced here: {}",
                list.join(", ")
            ));
        }
        exec.runner = Some(runner);
        exec
    }

    fn refuse(mut self, why: String) -> Self {
        tracing::warn!(reason = %why, "exec is unavailable on this worker");
        self.unavailable = Some(why);
        self
    }

    pub fn runner(&self) -> Option<&Runner> {
        self.runner.as_ref()
    }

    /// Builds the job for `request` in `session`, or says what is wrong with the request.
    pub fn job(&self, session: &Session, request: ExecRequest) -> Result<PreparedJob, JobError> {
        let runner = self.runner.as_ref().ok_or(JobError::Unavailable)?;
        let python = runner
            .interpreter()
            .executable
            .to_string_lossy()
            .into_owned();
        let commit = request.commit;
        if let Some(commit) = &commit {
            check_commit(commit, request.call.is_some())?;
        }
        let background = request.background;
        if background && (commit.is_some() || request.call.is_some()) {
            return Err(JobError::Background);
        }
        if !background && request.keep_output.is_some() {
            return Err(JobError::KeepOutput);
        }
        let mut stdin = request.stdin.unwrap_or_default().into_bytes();
        let mut result_bytes = None;
        let mut summary = String::new();
        let argv: Vec<String> = match (request.command, request.argv, request.script, request.call)
        {
            (Some(command), None, None, None) => {
                summary.clone_from(&command);
                vec!["/bin/sh".into(), "-c".into(), command]
            }
            (None, Some(argv), None, None) if !argv.is_empty() => {
                summary = argv.join(" ");
                argv
            }
            (None, None, Some(script), None) => {
                let mut argv = vec![python, "-E".into(), "-s".into(), "-B".into(), script];
                argv.extend(request.args.unwrap_or_default());
                summary = format!("python {}", argv[4..].join(" "));
                argv
            }
            (None, None, None, Some(call)) => {
                let target = call.split_once(':');
                if !target.is_some_and(|(m, f)| is_dotted_name(m) && is_identifier(f)) {
                    return Err(JobError::Call(call));
                }
                if !stdin.is_empty() {
                    return Err(JobError::StdinWithCall);
                }
                let kwargs = request
                    .kwargs
                    .unwrap_or_else(|| Value::Object(Default::default()));
                stdin = kwargs.to_string().into_bytes();
                summary = format!("call {call}");
                // A result is output too: it is capped like stdout.
                result_bytes = Some(self.config.output_bytes);
                vec![
                    python,
                    "-E".into(),
                    "-s".into(),
                    "-B".into(),
                    "-c".into(),
                    CALL_SHIM.into(),
                    call,
                ]
            }
            _ => return Err(JobError::NotOneProgram),
        };
        let env = request.env.unwrap_or_default();
        if env.len() > MAX_ENV_VARS || !env.keys().all(|k| is_env_name(k)) {
            return Err(JobError::Env);
        }
        let wall = match request.timeout_s {
            None if background => self.config.background_timeout_s,
            None => self.config.timeout_s,
            // deepagents' "no timeout": the longest run this worker allows.
            Some(0.0) => self.config.max_timeout_s,
            Some(t) if t > 0.0 && t <= self.config.max_timeout_s => t,
            Some(t) => {
                return Err(JobError::Timeout {
                    max: self.config.max_timeout_s,
                    got: t,
                });
            }
        };
        let wall = Duration::from_secs_f64(wall);
        let mounts = session
            .view
            .mounts()
            .iter()
            .map(|m| Bind {
                source: m.host_path.clone(),
                target: m.view_path.clone(),
                writable: m.writable,
            })
            .collect();
        let job = Job {
            root_dir: self.data_dir.join(JAIL_ROOT),
            mounts,
            cwd: session.view.home().to_owned(),
            argv,
            env,
            stdin,
            // A background process takes input while it runs; its output goes to its rings,
            // not to an answer.
            keep_stdin_open: background,
            network: None,
            sockets: hearth_python_runner::SocketPolicy::UnixOnly,
            limits: ExecLimits {
                wall,
                cpu_seconds: wall.as_secs().max(1) + 1,
                memory_bytes: self.config.memory_mib * 1024 * 1024,
                max_processes: self.config.max_processes,
                file_size_bytes: self.config.file_size_mib * 1024 * 1024,
                output_bytes: if background {
                    0
                } else {
                    self.config.output_bytes
                },
                result_bytes,
            },
        };
        Ok(PreparedJob {
            job,
            commit,
            background,
            summary,
        })
    }
}

/// What is wrong with an exec request (400 `invalid_exec`).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("exec is unavailable")]
    Unavailable,
    #[error("give exactly one of `command`, `argv` (non-empty), `script` or `call`")]
    NotOneProgram,
    #[error("`call` `{0}` is not `module.path:function`")]
    Call(String),
    #[error("`stdin` cannot be combined with `call` (the kwargs are its input)")]
    StdinWithCall,
    #[error("`env` takes at most {MAX_ENV_VARS} variables named like SHELL_NAMES")]
    Env,
    #[error("`timeout_s` must be in [0, {max}] (0: the longest allowed), got {got}")]
    Timeout { max: f64, got: f64 },
    #[error("`commit.message` must not be empty")]
    EmptyCommitMessage,
    #[error("`commit.when` needs a `call`: only a call has a JSON result to look at")]
    WhenWithoutCall,
    #[error("`commit.when.result_pointer` is a JSON pointer: \"\" or \"/key/…\"")]
    ResultPointer,
    #[error("`background` takes no `commit` nor `call`: nothing waits for a background run's end")]
    Background,
    #[error(
        "`keep_output` is for a `background` run: a foreground run's answer keeps the first bytes"
    )]
    KeepOutput,
}

/// A job (a `call` has a result channel, `job.limits.result_bytes`) and the commit to make if
/// it succeeds.
pub struct PreparedJob {
    pub job: Job,
    pub commit: Option<ExecCommit>,
    /// Started and answered at once (`"background": true`).
    pub background: bool,
    /// What runs, as a person would write it.
    pub summary: String,
}

impl PreparedJob {
    /// Runs the job in the session's network: its runs share it, and TCP is theirs on its
    /// loopback (and through its proxy, when it has one, whose address the environment names).
    pub fn join_network(&mut self, network: &crate::network::SessionNetwork) {
        self.job.network = Some(network.path().to_owned());
        self.job.sockets = hearth_python_runner::SocketPolicy::Tcp;
        for (name, value) in network.proxy_env() {
            // The request's own variables win: they can only point inside the namespace.
            self.job.env.entry(name).or_insert(value);
        }
    }
}

fn check_commit(commit: &ExecCommit, has_result: bool) -> Result<(), JobError> {
    if commit.message.trim().is_empty() {
        return Err(JobError::EmptyCommitMessage);
    }
    match &commit.when {
        Some(_) if !has_result => Err(JobError::WhenWithoutCall),
        Some(when) if !when.result_pointer.is_empty() && !when.result_pointer.starts_with('/') => {
            Err(JobError::ResultPointer)
        }
        _ => Ok(()),
    }
}

/// Why this run's commit is skipped, if it is (exec's "validate, and if it passes, commit";
/// `when` reads the `call` result).
fn commit_skipped(
    commit: &ExecCommit,
    outcome: &Outcome,
    result: Option<&Value>,
) -> Option<String> {
    if outcome.exit_code != Some(0) || outcome.timed_out {
        return Some("the program did not exit 0".into());
    }
    let pointer = &commit.when.as_ref()?.result_pointer;
    match result.and_then(|r| r.pointer(pointer)) {
        Some(Value::Bool(true)) => None,
        Some(other) => Some(format!("the result's `{pointer}` is {other}, not true")),
        None => Some(format!("the result has no `{pointer}`")),
    }
}

/// The answer of a run, without what the session adds (its quota, its commit).
pub fn exec_result(outcome: &Outcome, result: Option<Result<Value, String>>) -> ExecResult {
    let (result, result_error) = match result {
        Some(Ok(value)) => (Some(value), None),
        Some(Err(why)) => (None, Some(why)),
        None => (None, None),
    };
    ExecResult {
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        stdout: String::from_utf8_lossy(&outcome.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&outcome.stderr).into_owned(),
        timed_out: outcome.timed_out,
        oom_killed: outcome.oom_killed,
        truncated: outcome.truncated,
        duration_ms: outcome.duration.as_millis() as u64,
        jail: outcome.layers.clone(),
        result,
        result_error,
        quota_exceeded: false,
        commit: None,
    }
}

/// The answer of a finished run: the outcome and the `call` result, without the commit.
pub fn answer(session: &Session, prepared: &PreparedJob, outcome: &Outcome) -> ExecResult {
    let result = prepared
        .job
        .limits
        .result_bytes
        .map(|cap| take_result(outcome, cap));
    let mut answer = exec_result(outcome, result);
    // The program met the session's quota (its writes got ENOSPC): the volume is full.
    answer.quota_exceeded = session.full_usage().is_some();
    answer
}

/// Makes the commit the run asked for, when it succeeded, into `answer`. The caller holds the
/// session exclusively (a writer like any other), so the commit holds the work tree as it is
/// now: what the program left, and what the session's other running programs wrote meanwhile.
pub fn commit(
    git: &crate::git::Git,
    session: &Session,
    prepared: &PreparedJob,
    outcome: &Outcome,
    answer: &mut ExecResult,
) {
    answer.commit = prepared.commit.as_ref().map(|commit| {
        if let Some(reason) = commit_skipped(commit, outcome, answer.result.as_ref()) {
            return ExecCommitOutcome::NotMade(CommitNotMade::Skipped { reason });
        }
        let request = CommitRequest {
            message: commit.message.clone(),
            author: commit.author.clone(),
        };
        match git.commit(session, &request) {
            Ok(made) => ExecCommitOutcome::Made(made),
            // The run's answer stands; the commit's failure is said beside it.
            Err(e) => ExecCommitOutcome::NotMade(CommitNotMade::Failed {
                error: CommitFailure {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                },
            }),
        }
    });
}

/// How many NDJSON lines (each at most one 64 KiB read of output) wait for a slow client: the
/// memory a streamed run may hold, whatever the program writes. A client that stops reading
/// holds the program back (its pipe fills and it waits), never the worker's memory.
pub const STREAM_LINES: usize = 16;

/// A sink that turns output chunks into NDJSON lines on `lines`, waiting for a slow client at
/// most until `deadline` (the run's end). A multi-byte character split between two chunks is
/// held back until it is whole, so every line's `data` is exact text.
pub fn ndjson_sink(lines: crate::stream::Chunks, deadline: std::time::Instant) -> OutputSink {
    let pending: Mutex<[Vec<u8>; 2]> = Mutex::default();
    Arc::new(move |stream: Stream, chunk: &[u8]| {
        let Ok(mut pending) = pending.lock() else {
            return;
        };
        let (index, stream) = match stream {
            Stream::Stdout => (0, OutputStream::Stdout),
            Stream::Stderr => (1, OutputStream::Stderr),
        };
        let buffer = &mut pending[index];
        buffer.extend_from_slice(chunk);
        let whole = match std::str::from_utf8(buffer) {
            Ok(_) => buffer.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => buffer.len(), // invalid, not merely cut: send it lossily now
        };
        let text: Vec<u8> = buffer.drain(..whole).collect();
        if !text.is_empty() {
            let data = String::from_utf8_lossy(&text).into_owned();
            lines.send_by(ndjson_line(&OutputChunk { stream, data }), deadline);
        }
    })
}

/// One NDJSON line.
pub fn ndjson_line(line: &impl serde::Serialize) -> bytes::Bytes {
    let mut text = serde_json::to_vec(line).unwrap_or_default();
    text.push(b'\n');
    bytes::Bytes::from(text)
}

/// A `call`'s result: the JSON it wrote on its result channel (at most `cap` bytes).
pub fn take_result(outcome: &Outcome, cap: usize) -> Result<Value, String> {
    if outcome.result_truncated {
        return Err(format!("the result is larger than {cap} bytes"));
    }
    match outcome.result.as_deref() {
        None => Err("the result channel was still open after the program ended".into()),
        Some([]) if outcome.exit_code == Some(0) => Err("the call wrote no result".into()),
        Some([]) => Err("the call failed before returning (see stderr)".into()),
        Some(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| format!("the result is not JSON: {e}"))
        }
    }
}

/// Runs `/bin/true` in a throwaway session-shaped directory; its report is the jail's state.
fn probe(runner: &Runner, data_dir: &Path) -> Result<Layers, String> {
    let dir = data_dir.join("jail-probe");
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["workspace", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("preparing the probe: {e}"))?;
    }
    let job = Job {
        root_dir: dir.join("root"),
        mounts: vec![
            Bind {
                source: dir.join("workspace"),
                target: "/workspace".into(),
                writable: true,
            },
            Bind {
                source: dir.join("tmp"),
                target: "/tmp".into(),
                writable: true,
            },
        ],
        cwd: "/workspace".into(),
        argv: vec!["/bin/true".into()],
        env: BTreeMap::new(),
        stdin: Vec::new(),
        keep_stdin_open: false,
        network: None,
        sockets: hearth_python_runner::SocketPolicy::UnixOnly,
        limits: ExecLimits {
            wall: Duration::from_secs(10),
            ..ExecLimits::default()
        },
    };
    let outcome = runner.run(&job).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(why) = outcome.jail_error {
        return Err(format!("the jail could not be built: {why}"));
    }
    if outcome.exit_code != Some(0) {
        return Err(format!(
            "the probe run failed: {}",
            String::from_utf8_lossy(&outcome.stderr)
        ));
    }
    Ok(outcome.layers)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_dotted_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

fn is_env_name(s: &str) -> bool {
    is_identifier(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dotted_name("pkg.sub.module"));
        assert!(!is_dotted_name("pkg..x") && !is_dotted_name("../x") && !is_dotted_name(""));
        assert!(is_identifier("run_all") && !is_identifier("1x") && !is_identifier("a-b"));
        assert!(is_env_name("MY_VAR") && !is_env_name("A=B") && !is_env_name(""));
    }

    fn outcome(exit_code: i32, result: Option<&[u8]>, result_truncated: bool) -> Outcome {
        Outcome {
            exit_code: Some(exit_code),
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
            timed_out: false,
            oom_killed: false,
            duration: Duration::ZERO,
            layers: Layers::new(),
            jail_error: None,
            result: result.map(<[u8]>::to_vec),
            result_truncated,
        }
    }

    #[test]
    fn a_result_is_the_json_of_the_channel_or_says_why_not() {
        assert_eq!(
            take_result(&outcome(0, Some(br#"{"a": [1, 2]}"#), false), 10),
            Ok(serde_json::json!({ "a": [1, 2] }))
        );
        assert_eq!(
            take_result(&outcome(0, Some(b""), false), 10),
            Err("the call wrote no result".to_owned())
        );
        assert_eq!(
            take_result(&outcome(1, Some(b""), false), 10),
            Err("the call failed before returning (see stderr)".to_owned())
        );
        assert_eq!(
            take_result(&outcome(0, Some(b"1234567890"), true), 10),
            Err("the result is larger than 10 bytes".to_owned())
        );
        assert!(
            take_result(&outcome(0, Some(b"{nope"), false), 10)
                .is_err_and(|e| e.starts_with("the result is not JSON: "))
        );
        assert!(take_result(&outcome(0, None, false), 10).is_err());
    }
}
