//! Whole-file reads and writes for the files API, done by the host directly.
//!
//! Moving a multi-megabyte file through a Wasm tool would copy it through guest memory for
//! nothing, so the files API works natively — but with the same boundaries: view paths resolve
//! through [`SessionView::resolve`], and every access goes through `hearth-content` beneath the
//! mount's directory: no link followed (at the end or on the way), no blocking open, regular
//! files only, reads capped. Read-only mounts refuse writes. Writes are atomic: a temporary file
//! beside the target, then a rename.

use std::path::Path;

use hearth_content::{ContentError, Tree};
use hearth_runtime::SessionView;

/// Why a file operation failed; the codes are deepagents' `FileOperationError` literals plus
/// `too_large` and `io_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileErrorKind {
    NotFound,
    PermissionDenied,
    IsDirectory,
    InvalidPath,
    TooLarge,
    StorageFull,
    Io,
}

impl FileErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "file_not_found",
            Self::PermissionDenied => "permission_denied",
            Self::IsDirectory => "is_directory",
            Self::InvalidPath => "invalid_path",
            Self::TooLarge => "too_large",
            Self::StorageFull => "storage_full",
            Self::Io => "io_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FileError {
    pub kind: FileErrorKind,
    pub message: String,
}

impl FileError {
    fn new(kind: FileErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// `e` met while reading (`writing: false`) or writing `path`.
    fn content(path: &str, e: ContentError, writing: bool) -> Self {
        let kind = match &e {
            ContentError::NotFound => FileErrorKind::NotFound,
            // A "parent" that is a file: nothing to read there; nowhere to write.
            ContentError::NotADirectory if !writing => FileErrorKind::NotFound,
            ContentError::IsDirectory => FileErrorKind::IsDirectory,
            ContentError::PermissionDenied => FileErrorKind::PermissionDenied,
            ContentError::TooLarge { .. } => FileErrorKind::TooLarge,
            ContentError::StorageFull => FileErrorKind::StorageFull,
            ContentError::Io(_) => FileErrorKind::Io,
            ContentError::NotADirectory
            | ContentError::Symlink
            | ContentError::Escapes
            | ContentError::NotAFile(_)
            | ContentError::TooDeep { .. }
            | ContentError::NameTooLong
            | ContentError::AlreadyExists => FileErrorKind::InvalidPath,
        };
        Self::new(kind, format!("`{path}` {e}"))
    }
}

/// An opened mount and the path below it.
struct Located {
    tree: Tree,
    relative: String,
    writable: bool,
}

fn locate(view: &SessionView, path: &str) -> Result<Located, FileError> {
    let resolved = view
        .resolve(path)
        .map_err(|e| FileError::new(FileErrorKind::InvalidPath, e.to_string()))?;
    if resolved.relative.is_empty() {
        return Err(FileError::new(
            FileErrorKind::IsDirectory,
            format!("`{path}` is a directory"),
        ));
    }
    let tree = Tree::open(&resolved.mount.host_path).map_err(|e| {
        FileError::new(
            FileErrorKind::Io,
            format!("opening the mount of `{path}`: {e}"),
        )
    })?;
    Ok(Located {
        tree,
        relative: resolved.relative,
        writable: resolved.mount.writable,
    })
}

/// Reads a whole file of at most `max_bytes`: a regular file only, reached without following
/// any link, opened without blocking (see `hearth-content`).
pub fn read(view: &SessionView, path: &str, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let at = locate(view, path)?;
    at.tree
        .read(Path::new(&at.relative), max_bytes)
        .map_err(|e| match e {
            ContentError::TooLarge { .. } => too_large(path, max_bytes),
            e => FileError::content(path, e, false),
        })
}

fn too_large(path: &str, max_bytes: u64) -> FileError {
    FileError::new(
        FileErrorKind::TooLarge,
        format!("`{path}` is larger than the {max_bytes}-byte limit of one read"),
    )
}

/// Creates or replaces a file (and its missing parent directories), atomically: a new file
/// beside it renamed over the name, so a link planted there is replaced, never written through.
/// Returns whether the file was created.
pub fn write(view: &SessionView, path: &str, bytes: &[u8]) -> Result<bool, FileError> {
    let at = locate(view, path)?;
    if !at.writable {
        return Err(FileError::new(
            FileErrorKind::PermissionDenied,
            format!("`{path}` is in a read-only area"),
        ));
    }
    at.tree
        .write_file(Path::new(&at.relative), bytes, NEW_FILE_MODE)
        .map_err(|e| FileError::content(path, e, true))
}

/// The mode of a file the API creates.
const NEW_FILE_MODE: u32 = 0o644;
