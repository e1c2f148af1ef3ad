//! Atomic file replacement: readers see the old file or the new one, never half of either.

use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io;

use wasi::filesystem::preopens;
use wasi::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

use crate::view;

/// The most bytes handed to one `descriptor.write` call.
const WRITE_CHUNK_BYTES: usize = 1024 * 1024;

/// Writes `bytes` to the view path `path` through a temporary file in the same directory and a
/// rename over the target, creating missing parent directories first.
///
/// The temporary name is unpredictable (seeded from WASI's random source) so two concurrent
/// writers never share one, and it is removed when anything fails.
///
/// The file is written with `wasi:filesystem`'s positional `write` rather than through `std`:
/// `std` writes via an output stream, which wasmtime-wasi serves on a separate thread (two
/// context switches per write), while `descriptor.write` runs on the calling thread.
pub fn write_atomic(path: &str, bytes: &[u8]) -> io::Result<()> {
    let parent = view::parent_of(path);
    fs::create_dir_all(parent)?;
    let name = path.rsplit('/').next().unwrap_or("file");
    // Short and independent of `name`, so a file with a name of the maximum length can still
    // be replaced.
    let nonce = RandomState::new().hash_one(path);
    let temp_name = format!(".hearth-{nonce:016x}.tmp");

    let (dir, relative_parent) = preopen_for(parent)?;
    let relative = |file: &str| {
        if relative_parent.is_empty() {
            file.to_owned()
        } else {
            format!("{relative_parent}/{file}")
        }
    };
    let (temp, target) = (relative(&temp_name), relative(name));
    let file = dir
        .open_at(
            PathFlags::empty(),
            &temp,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        )
        .map_err(to_io)?;
    let written = write_all(&file, bytes).and_then(|()| {
        drop(file);
        dir.rename_at(&temp, &dir, &target).map_err(to_io)
    });
    if written.is_err() {
        let _ = dir.unlink_file_at(&temp);
    }
    written
}

fn write_all(file: &Descriptor, bytes: &[u8]) -> io::Result<()> {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let end = bytes.len().min(offset + WRITE_CHUNK_BYTES);
        let n = file
            .write(&bytes[offset..end], offset as u64)
            .map_err(to_io)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the file accepted no bytes",
            ));
        }
        offset += n as usize;
    }
    Ok(())
}

/// The preopened directory whose path is the longest prefix of the view directory `dir`, and
/// the rest of `dir` below it (the same routing wasi-libc applies to `std::fs` paths).
pub(crate) fn preopen_for(dir: &str) -> io::Result<(Descriptor, String)> {
    preopens::get_directories()
        .into_iter()
        .filter_map(|(descriptor, root)| {
            let rest = hearth_view_path::strip_base(dir, &root)?.to_owned();
            Some((root.len(), descriptor, rest))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, descriptor, rest)| (descriptor, rest))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{dir}` is in no preopened directory"),
            )
        })
}

pub(crate) fn to_io(code: ErrorCode) -> io::Error {
    let kind = match code {
        ErrorCode::NoEntry => io::ErrorKind::NotFound,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
            io::ErrorKind::PermissionDenied
        }
        ErrorCode::IsDirectory => io::ErrorKind::IsADirectory,
        ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
        ErrorCode::Exist => io::ErrorKind::AlreadyExists,
        ErrorCode::CrossDevice => io::ErrorKind::CrossesDevices,
        ErrorCode::InsufficientSpace | ErrorCode::Quota => io::ErrorKind::StorageFull,
        ErrorCode::FileTooLarge => io::ErrorKind::FileTooLarge,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{code:?}"))
}
