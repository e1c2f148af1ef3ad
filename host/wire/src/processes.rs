//! Background processes: started by `exec` with `"background": true`, then listed, read,
//! written to, signalled, waited for and killed through `/v1/sessions/{id}/processes`.

use serde::{Deserialize, Serialize};

/// A session's process, running or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessInfo {
    /// The process's id in its session (`p1`, `p2`, …; never reused by the session).
    pub id: String,
    /// What runs, as a person would write it (the command line, the argv joined, the script,
    /// or `call module:function`).
    pub command: String,
    pub state: ProcessState,
    /// The exit code, once it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Killed at its wall time.
    pub timed_out: bool,
    /// Killed by the kernel for using more memory than the run may.
    pub oom_killed: bool,
    /// RFC 3339, in milliseconds.
    pub started_at: String,
    /// RFC 3339, in milliseconds; null while it runs (and for a lost process).
    pub ended_at: Option<String>,
    /// Milliseconds it ran (so far, while it runs).
    pub duration_ms: u64,
    /// Bytes it wrote on stdout so far: the `next` cursor of a read that caught up.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Whether its stdin still takes input.
    pub stdin_open: bool,
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    Running,
    /// It ended: `exit_code` or `signal` say how.
    Exited,
    /// It was running when the worker stopped; the worker restarted without it (its output
    /// is gone with it).
    Lost,
}

/// A session's processes, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessList {
    pub processes: Vec<ProcessInfo>,
}

/// `GET …/processes/{process}`: optionally wait for it to end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait for the process to end before answering (0–30; default 0: at once).
    /// The answer says `running` if it did not end in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 30))]
    pub wait_s: Option<f64>,
}

/// `GET …/processes/{process}/output`: what each stream holds from a cursor on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// Byte offset in stdout to read from: the `next` of the previous read (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    pub stdout: Option<u64>,
    /// Byte offset in stderr to read from (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    pub stderr: Option<u64>,
    /// Most bytes of each stream in this answer (4 B to 1 MiB, the default: a character is
    /// never split, and one may take 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 4, maximum = 1048576))]
    pub max_bytes: Option<u64>,
    /// Seconds to wait for output past the cursors, or the end, when there is none yet (0–30;
    /// default 0). A long poll: it answers as soon as there is something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 30))]
    pub wait_s: Option<f64>,
}

/// What a read of a process's output found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessOutput {
    pub stdout: OutputRead,
    pub stderr: OutputRead,
    /// The process as of this read.
    pub process: ProcessInfo,
}

/// One stream's part of a read. Each stream keeps its last bytes (the worker's
/// `exec.background_output_bytes`) in a ring, or its first ones (`keep_output`): a reader that
/// went away loses nothing still kept, and `missed` says what it lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputRead {
    /// The text from `cursor` (a multi-byte character is never split: one cut at the end
    /// comes whole in the next read).
    pub data: String,
    /// The offset `data` starts at: the asked cursor, or the oldest byte still kept.
    pub cursor: u64,
    /// The cursor of the next read.
    pub next: u64,
    /// Bytes between the asked cursor and `cursor` that are not kept (the ring dropped them,
    /// or they came after the first bytes kept).
    pub missed: u64,
    /// The stream is closed and everything in it was read.
    pub eof: bool,
}

/// `POST …/processes/{process}/stdin`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StdinRequest {
    /// Text written to the process's stdin as it is (add the `\n` a line needs).
    #[serde(default)]
    pub data: String,
    /// Close stdin after `data` (the program then reads end of file).
    #[serde(default)]
    pub close: bool,
}

/// `POST …/processes/{process}/signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub signal: SignalName,
}

/// Signals a process may be sent. All but `SIGKILL` go to the program's process group, whose
/// handlers decide; `SIGKILL` ends every process of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignalName {
    Sighup,
    Sigint,
    Sigquit,
    Sigterm,
    Sigusr1,
    Sigusr2,
    Sigcont,
    Sigwinch,
    Sigalrm,
    Sigkill,
}

/// What a signal did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignalOutcome {
    /// False when the process had already ended (nothing was sent).
    pub delivered: bool,
    pub process: ProcessInfo,
}
