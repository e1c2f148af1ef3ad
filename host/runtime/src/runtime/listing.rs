//! The `listing` import (`wit/tool.wit`): a whole directory in one host call.
//!
//! A call may list exactly what its WASI preopens let it open: the mounts granted to it, each
//! resolved beneath its own host directory with `cap-std` (the library wasmtime-wasi opens
//! paths with), so a symlink is followed only while it stays inside its mount and `..` never
//! leaves it. Entries are never followed: their kinds are what the directory records (`d_type`),
//! looked up with `lstat` only where a filesystem records none.

use std::path::PathBuf;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use hearth_view_path::{normalize, strip_base};

use super::bindings::hearth::tool::listing::{self, Directory, Entry, EntryKind, ListError};
use super::store::CallState;

/// The most items one listing looks at, whatever the guest asks: each costs the host memory
/// for its name until the answer is handed over (at most ~70 MB at 255-byte names).
pub(super) const MAX_LISTING_ITEMS: u32 = 262_144;

/// The directories a call may list: its granted mounts, by view path.
#[derive(Debug, Default, Clone)]
pub(super) struct ListingGrant {
    mounts: Vec<(String, PathBuf)>,
}

impl ListingGrant {
    pub(super) fn new(mounts: Vec<(String, PathBuf)>) -> Self {
        Self { mounts }
    }

    /// The directory at view path `path`, opened beneath its mount: the mount whose view path
    /// is the longest prefix, as wasi-libc picks the preopen of a path.
    fn open(&self, path: &str) -> Result<Dir, ListError> {
        let path = normalize(path).map_err(|_| ListError::NotPermitted)?;
        let (host_root, relative) = self
            .mounts
            .iter()
            .filter_map(|(view, host)| Some((view.len(), host, strip_base(&path, view)?)))
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, host, relative)| (host, relative))
            .ok_or(ListError::NotPermitted)?;
        let root = Dir::open_ambient_dir(host_root, ambient_authority()).map_err(list_error)?;
        if relative.is_empty() {
            Ok(root)
        } else {
            root.open_dir(relative).map_err(list_error)
        }
    }
}

impl listing::Host for CallState {
    fn list_directory(&mut self, path: String, budget: u32) -> Result<Directory, ListError> {
        let dir = self.listing().open(&path)?;
        let budget = budget.min(MAX_LISTING_ITEMS);
        let mut answer = Directory {
            entries: Vec::new(),
            skipped_names: 0,
            read: 0,
            truncated: false,
        };
        for item in dir.entries().map_err(list_error)? {
            if answer.read == budget {
                answer.truncated = true;
                break;
            }
            answer.read += 1;
            let Ok(item) = item else {
                continue; // removed while being read
            };
            let Ok(name) = item.file_name().into_string() else {
                answer.skipped_names += 1;
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let kind = match item.file_type() {
                Ok(t) if t.is_symlink() => EntryKind::Symlink,
                Ok(t) if t.is_dir() => EntryKind::Directory,
                Ok(t) if t.is_file() => EntryKind::File,
                Ok(_) => EntryKind::Other,
                Err(_) => continue, // removed between the listing and the look
            };
            answer.entries.push(Entry { name, kind });
        }
        Ok(answer)
    }
}

fn list_error(e: std::io::Error) -> ListError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ListError::NotFound,
        std::io::ErrorKind::NotADirectory => ListError::NotDirectory,
        // Also cap-std's answer to a path that would leave its directory.
        std::io::ErrorKind::PermissionDenied => ListError::NotPermitted,
        _ => ListError::Io,
    }
}
