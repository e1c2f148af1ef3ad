//! Tool errors and how filesystem errors become them.

use std::io;

use crate::bindings::hearth::tool::types as wit;

/// Why a tool call failed; mirrors the WIT `tool-error` variant one to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    InvalidInput(String),
    InvalidPath(String),
    NotFound(String),
    PermissionDenied(String),
    IsDirectory(String),
    Conflict(String),
    TooLarge(String),
    Other(String),
}

impl ToolError {
    /// Classifies an I/O error on view path `path`, keeping the OS's reason in the message.
    pub fn from_io(path: &str, err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound => Self::NotFound(format!("`{path}` does not exist")),
            io::ErrorKind::PermissionDenied => {
                Self::PermissionDenied(format!("`{path}` may not be accessed: {err}"))
            }
            io::ErrorKind::IsADirectory => Self::IsDirectory(format!("`{path}` is a directory")),
            io::ErrorKind::NotADirectory => Self::NotFound(format!(
                "`{path}` does not exist (a parent is not a directory)"
            )),
            // A symlink whose target lies outside the preopened directory is refused by the host
            // (openat2 RESOLVE_BENEATH); WASI reports that as "not permitted" or a cross-device
            // error depending on the call.
            io::ErrorKind::CrossesDevices => {
                Self::InvalidPath(format!("`{path}` leads outside the session's view"))
            }
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                Self::TooLarge(format!("`{path}`: no space left for the session: {err}"))
            }
            _ => Self::Other(format!("`{path}`: {err}")),
        }
    }

    /// The metadata of `path` when it is a regular file; a directory, a FIFO or a device is
    /// refused (opening a FIFO could block the host thread past the call's deadline).
    pub fn regular_file(path: &str, shown: &str) -> Result<std::fs::Metadata, ToolError> {
        let metadata = std::fs::metadata(path).map_err(ToolError::io(shown))?;
        if metadata.is_dir() {
            return Err(ToolError::IsDirectory(format!("`{shown}` is a directory")));
        }
        if !metadata.is_file() {
            return Err(ToolError::InvalidInput(format!(
                "`{shown}` is not a regular file"
            )));
        }
        Ok(metadata)
    }

    /// Adapter for `map_err` on an I/O result about `path`.
    pub fn io(path: &str) -> impl Fn(io::Error) -> Self + '_ {
        move |err| Self::from_io(path, &err)
    }
}

impl From<ToolError> for wit::ToolError {
    fn from(err: ToolError) -> Self {
        match err {
            ToolError::InvalidInput(m) => Self::InvalidInput(m),
            ToolError::InvalidPath(m) => Self::InvalidPath(m),
            ToolError::NotFound(m) => Self::NotFound(m),
            ToolError::PermissionDenied(m) => Self::PermissionDenied(m),
            ToolError::IsDirectory(m) => Self::IsDirectory(m),
            ToolError::Conflict(m) => Self::Conflict(m),
            ToolError::TooLarge(m) => Self::TooLarge(m),
            ToolError::Other(m) => Self::Other(m),
        }
    }
}
