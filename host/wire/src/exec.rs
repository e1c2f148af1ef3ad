//! Running programs: `exec`, and the NDJSON lines of `exec/stream`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::git::{Author, CommitOutcome};

/// `POST /v1/sessions/{id}/exec` and `…/exec/stream`: exactly one of `command`, `argv`,
/// `script` or `call`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// A shell command line (`/bin/sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A program and its arguments, without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A Python file to run, with `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// `module.path:function`, called with `kwargs`; its JSON return value is the answer's
    /// `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<serde_json::Value>,
    /// Seconds of wall time (default: the worker's `exec.timeout_s`; 0: the longest it allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub timeout_s: Option<f64>,
    /// The program's standard input (not with `call`: the kwargs are its input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Environment variables to add (at most 256, named like `SHELL_NAMES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Commit the workspace when the program exits 0 ("validate, and if it passes, commit").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<ExecCommit>,
    /// Answer at once (202) with the started process, which runs on in the background: read
    /// its output, write its stdin, signal, wait for or kill it under `…/processes/{process}`.
    /// Its default and longest wall time are the worker's `exec.background_timeout_s`. Not
    /// with `commit` or `call` (nothing waits for their end), nor on `exec/stream`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// With `background`: which bytes of each stream the worker keeps for readers (at most its
    /// `exec.background_output_bytes`). `last` (the default) keeps a ring of the newest, for a
    /// server's log; `first` keeps the start, as a foreground run's answer does, so that a
    /// reader that falls behind a fast writer still reads the start whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_output: Option<KeepOutput>,
}

/// Which bytes of a background process's stream are kept once it has written more than the
/// worker keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeepOutput {
    /// The newest bytes (a ring: the oldest go first).
    #[default]
    Last,
    /// The first bytes; what comes after them is counted, not kept.
    First,
}

impl ExecRequest {
    /// A shell command line.
    pub fn command(command: impl Into<String>) -> Self {
        Self {
            command: Some(command.into()),
            ..Self::default()
        }
    }

    /// A call of `module.path:function` with `kwargs`.
    pub fn call(target: impl Into<String>, kwargs: serde_json::Value) -> Self {
        Self {
            call: Some(target.into()),
            kwargs: Some(kwargs),
            ..Self::default()
        }
    }
}

/// Exec's "validate, and if it passes, commit": a commit made when the program exits 0 — and,
/// with `when`, when its `call` result says it passed. A simulation that returns
/// `{"success": false}` exits 0 too: `"when": {"result_pointer": "/success"}` commits only if
/// the result has `true` there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecCommit {
    /// Not blank.
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<CommitWhen>,
}

/// A condition on a `call`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitWhen {
    /// A JSON pointer (RFC 6901) into the `call` result; the commit needs `true` there.
    pub result_pointer: String,
}

/// What a run did. A program that fails, times out or is killed is still a 200: this says
/// what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResult {
    /// Null when the program was killed by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub oom_killed: bool,
    /// Output past the worker's `exec.output_bytes` was dropped.
    pub truncated: bool,
    pub duration_ms: u64,
    /// The confinement layers of this run and their state.
    pub jail: BTreeMap<String, String>,
    /// A `call`'s JSON return value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why a `call` has no result (it raised, or its result was too large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_error: Option<String>,
    /// The program met the session's quota (its writes failed with ENOSPC).
    pub quota_exceeded: bool,
    /// The commit asked for with `commit`: made, nothing to commit, skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<ExecCommitOutcome>,
}

/// What became of the commit a run asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ExecCommitOutcome {
    Made(CommitOutcome),
    NotMade(CommitNotMade),
}

/// A run's commit that was not made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommitNotMade {
    /// The run did not pass (it did not exit 0, or `when` was not met).
    Skipped { reason: String },
    /// git failed; the run's answer stands.
    Failed { error: CommitFailure },
}

/// Why a run's commit failed: git's error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitFailure {
    pub code: String,
    pub message: String,
}

/// A line of `exec/stream`'s NDJSON: output as it comes, then one last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum StreamLine {
    Output(OutputChunk),
    End(RunEnd),
}

/// Output of the program, as it came (a multi-byte character is never split between lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputChunk {
    pub stream: OutputStream,
    pub data: String,
}

/// Which output a chunk is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// The last line of a stream: the run's result, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEnd {
    /// What `exec` answers.
    Exit(Box<ExecResult>),
    Error {
        error: crate::ErrorInfo,
    },
}
