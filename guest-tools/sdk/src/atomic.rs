//! Atomic file replacement: readers see the old file or the new one, never half of either.

use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io;

use wasi::filesystem::preopens;
use wasi::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

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
    Target::resolve(path)?.write(bytes)
}

/// What a path names before it is replaced, as [`Target::existing`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    Directory,
    /// A file, a symbolic link (never followed) or anything else a rename may replace.
    Other,
}

/// A view path to be replaced, resolved once to its preopened directory: every operation on it
/// is one `wasi:filesystem` call relative to that descriptor, with none of `std::fs`'s extra
/// crossings (its `stat` also hashes the file's identity for an inode number, and creating
/// parents that exist costs a failed `mkdir` and a `stat`). Issue 19: a write of 1 KiB made
/// eleven host crossings through `std`; through a `Target` it makes five.
pub struct Target<'a> {
    path: &'a str,
    dir: Descriptor,
    /// `path` relative to `dir` (never empty: a mount's root is not a file).
    relative: String,
    /// The parent directory's part of `relative`, `""` when it is `dir` itself.
    relative_parent_len: usize,
}

impl<'a> Target<'a> {
    /// Resolves the view path `path` (already normalised and within a mount).
    pub fn resolve(path: &'a str) -> io::Result<Self> {
        let parent = view::parent_of(path);
        let (dir, relative_parent) = preopen_for(parent)?;
        let name = path.rsplit('/').next().unwrap_or("file");
        let relative = if relative_parent.is_empty() {
            name.to_owned()
        } else {
            format!("{relative_parent}/{name}")
        };
        Ok(Self {
            path,
            dir,
            relative,
            relative_parent_len: relative_parent.len(),
        })
    }

    /// What is at the path now, without following a final symbolic link. Racy by nature: it
    /// only informs the answer (`created`) and refuses a directory early. A path that cannot
    /// be looked at counts as [`Existing::Nothing`]; the write then says why it failed.
    pub fn existing(&self) -> Existing {
        match self.dir.stat_at(PathFlags::empty(), &self.relative) {
            Ok(stat) if stat.type_ == DescriptorType::Directory => Existing::Directory,
            Ok(_) => Existing::Other,
            Err(_) => Existing::Nothing,
        }
    }

    /// Replaces the file with `bytes` (see [`write_atomic`]).
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        // Short and independent of the name, so a file with a name of the maximum length can
        // still be replaced.
        let nonce = RandomState::new().hash_one(self.path);
        let temp_name = format!(".hearth-{nonce:016x}.tmp");
        let temp = match &self.relative[..self.relative_parent_len] {
            "" => temp_name,
            parent => format!("{parent}/{temp_name}"),
        };
        let create = || {
            self.dir.open_at(
                PathFlags::empty(),
                &temp,
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::WRITE,
            )
        };
        // On any failure, the parents are made (or their failure reported, as `std` names it)
        // and the file tried again: the same errors as making the parents first, for a
        // `mkdir` and a `stat` less on the common path.
        let file = match create() {
            Ok(file) => file,
            Err(_) => {
                fs::create_dir_all(view::parent_of(self.path))?;
                create().map_err(to_io)?
            }
        };
        let written = write_all(&file, bytes).and_then(|()| {
            drop(file);
            self.dir
                .rename_at(&temp, &self.dir, &self.relative)
                .map_err(to_io)
        });
        if written.is_err() {
            let _ = self.dir.unlink_file_at(&temp);
        }
        written
    }
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
