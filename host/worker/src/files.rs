//! Whole-file reads and writes for the files API, done by the host directly.
//!
//! Moving a multi-megabyte file through a Wasm tool would copy it through guest memory for
//! nothing, so the files API works natively — but with the same boundaries: view paths resolve
//! through [`SessionView::resolve`], every open happens beneath the mount's directory through a
//! `cap_std::fs::Dir` (which refuses `..` and symlinks leading out of it), and read-only mounts
//! refuse writes. Writes are atomic: a temporary file beside the target, then a rename.

use std::io::{self, Read, Write};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
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

    fn io(path: &str, e: &io::Error) -> Self {
        let kind = match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => FileErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => FileErrorKind::PermissionDenied,
            io::ErrorKind::IsADirectory => FileErrorKind::IsDirectory,
            // Escaping the mount; a name too long; a "parent" that is a file.
            io::ErrorKind::CrossesDevices
            | io::ErrorKind::InvalidFilename
            | io::ErrorKind::AlreadyExists => FileErrorKind::InvalidPath,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => FileErrorKind::StorageFull,
            _ => FileErrorKind::Io,
        };
        Self::new(kind, format!("`{path}`: {e}"))
    }
}

/// An opened mount and the path below it.
struct Located {
    dir: Dir,
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
    let dir =
        Dir::open_ambient_dir(&resolved.mount.host_path, ambient_authority()).map_err(|e| {
            FileError::new(
                FileErrorKind::Io,
                format!("opening the mount of `{path}`: {e}"),
            )
        })?;
    Ok(Located {
        dir,
        relative: resolved.relative,
        writable: resolved.mount.writable,
    })
}

/// Reads a whole file of at most `max_bytes`.
pub fn read(view: &SessionView, path: &str, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let at = locate(view, path)?;
    // Look before opening: opening a FIFO would block this thread indefinitely.
    let metadata = at
        .dir
        .metadata(&at.relative)
        .map_err(|e| FileError::io(path, &e))?;
    if metadata.is_dir() {
        return Err(FileError::new(
            FileErrorKind::IsDirectory,
            format!("`{path}` is a directory"),
        ));
    }
    if !metadata.is_file() {
        return Err(FileError::new(
            FileErrorKind::InvalidPath,
            format!("`{path}` is not a regular file"),
        ));
    }
    let file = at
        .dir
        .open(&at.relative)
        .map_err(|e| FileError::io(path, &e))?;
    if metadata.len() > max_bytes {
        return Err(too_large(path, max_bytes));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::io(path, &e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(path, max_bytes));
    }
    Ok(bytes)
}

fn too_large(path: &str, max_bytes: u64) -> FileError {
    FileError::new(
        FileErrorKind::TooLarge,
        format!("`{path}` is larger than the {max_bytes}-byte limit of one read"),
    )
}

/// Creates or replaces a file (and its missing parent directories), atomically. Returns whether
/// the file was created.
pub fn write(view: &SessionView, path: &str, bytes: &[u8]) -> Result<bool, FileError> {
    let at = locate(view, path)?;
    if !at.writable {
        return Err(FileError::new(
            FileErrorKind::PermissionDenied,
            format!("`{path}` is in a read-only area"),
        ));
    }
    let relative = Path::new(&at.relative);
    let created = match at.dir.symlink_metadata(relative) {
        Ok(m) if m.is_dir() => {
            return Err(FileError::new(
                FileErrorKind::IsDirectory,
                format!("`{path}` is a directory"),
            ));
        }
        Ok(_) => false,
        Err(_) => true,
    };
    let parent = relative.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        at.dir
            .create_dir_all(parent)
            .map_err(|e| FileError::io(path, &e))?;
    }
    // Short and independent of the file's name, so a name of the maximum length still works.
    let temp = parent
        .unwrap_or(Path::new(""))
        .join(format!(".hearth-{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = at
        .dir
        .open_with(&temp, OpenOptions::new().write(true).create_new(true))
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| at.dir.rename(&temp, &at.dir, relative));
    if let Err(e) = written {
        let _ = at.dir.remove_file(&temp);
        return Err(FileError::io(path, &e));
    }
    Ok(created)
}
