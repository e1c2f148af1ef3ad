//! How a tool call or a tool load can fail.

use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::ManifestError;
use crate::schema::{SchemaError, ValidationError};

/// The kinds of refusal a tool itself can answer with (the WIT `tool-error` cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolErrorKind {
    InvalidInput,
    InvalidPath,
    NotFound,
    PermissionDenied,
    IsDirectory,
    Conflict,
    TooLarge,
    Other,
}

impl ToolErrorKind {
    /// The stable snake_case code clients match on.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::InvalidPath => "invalid_path",
            Self::NotFound => "file_not_found",
            Self::PermissionDenied => "permission_denied",
            Self::IsDirectory => "is_directory",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::Other => "tool_error",
        }
    }
}

/// Why a call produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no tool named `{0}`")]
    UnknownTool(String),
    /// The arguments do not fit the tool's schema; the guest never ran.
    #[error("invalid arguments for `{tool}`: {error}")]
    InvalidArguments {
        tool: String,
        error: ValidationError,
    },
    /// The tool ran and refused, with its own typed error.
    #[error("{message}")]
    Tool {
        kind: ToolErrorKind,
        message: String,
    },
    #[error("`{tool}` did not finish within its deadline of {deadline:?}")]
    DeadlineExceeded { tool: String, deadline: Duration },
    #[error("`{tool}` tried to use more than its {limit_bytes} bytes of memory")]
    MemoryExceeded { tool: String, limit_bytes: u64 },
    /// The guest trapped (a panic, an abort, a bug): the instance is discarded.
    #[error("`{tool}` crashed: {reason}")]
    Crashed {
        tool: String,
        reason: String,
        stderr: String,
    },
    #[error("`{tool}` answered with {size} bytes, above the limit of {limit}")]
    ResultTooLarge { tool: String, size: u64, limit: u64 },
    #[error("`{tool}` answered with something that is not JSON: {reason}")]
    InvalidResult { tool: String, reason: String },
    /// The host could not set the call up (a session directory vanished, …). Not the caller's
    /// fault; the message is for logs, not for agents.
    #[error("host error while running `{tool}`: {reason}")]
    Host { tool: String, reason: String },
}

impl CallError {
    /// The stable snake_case code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTool(_) => "unknown_tool",
            Self::InvalidArguments { .. } => "invalid_arguments",
            Self::Tool { kind, .. } => kind.code(),
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::MemoryExceeded { .. } => "memory_exceeded",
            Self::Crashed { .. } => "tool_crashed",
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::InvalidResult { .. } => "invalid_result",
            Self::Host { .. } => "host_error",
        }
    }
}

/// Why a tool could not be loaded. Loading fails loudly: a worker never starts with a tool it
/// could not fully check.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("setting up the wasm engine: {0}")]
    Engine(String),
    #[error("compiled-artifact cache at {path}: {error}")]
    Cache {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("reading {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("tool from {source_name}: compiling the component failed: {reason}")]
    Compile { source_name: String, reason: String },
    #[error(
        "tool from {source_name}: it does not implement the hearth:tool world or `describe` failed: {reason}"
    )]
    Describe { source_name: String, reason: String },
    #[error(
        "tool from {source_name}: name `{name}` is not lowercase letters, digits and `_` (1–64, starting with a letter)"
    )]
    BadName { source_name: String, name: String },
    #[error("tool from {source_name} calls itself `{declared}`, but is installed as `{installed}`")]
    NameMismatch {
        source_name: String,
        declared: String,
        installed: String,
    },
    #[error("tool `{0}` is defined twice")]
    Duplicate(String),
    #[error("tool `{tool}`: {error}")]
    Schema { tool: String, error: SchemaError },
    #[error("tool `{tool}`: {error}")]
    Manifest { tool: String, error: ManifestError },
}
