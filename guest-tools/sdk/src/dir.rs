//! Reading one directory, skipping the entries a tool cannot name.
//!
//! WASI carries file names as strings, so a name that is not UTF-8 (one line of Python in the
//! jail makes it: `open(b'/workspace/\xff.txt', 'w')`) can never reach a tool. wasmtime-wasi 48
//! reads the whole directory when the stream is opened and reports such a name as an
//! `illegal-byte-sequence` error *for that entry only*; the next read goes on with the next
//! entry. `std::fs::ReadDir` cannot pass that on: wasi-libc's `readdir` turns it into
//! `NULL` + `EILSEQ`, and `std` treats an error as the end of the directory. So on WASI this
//! module reads the stream through `wasi:filesystem` itself, skips each entry it cannot read,
//! and counts it, so listings and walks stay complete and honest about what they left out.

use std::fs;
use std::io;
use std::time::SystemTime;

/// What kind of inode an entry is (symlinks are never followed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFOs, sockets, devices: nothing a tool reads.
    Other,
}

/// The metadata tools use: the kind, the size and the modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

impl Stat {
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == Kind::Symlink
    }
}

impl From<&fs::Metadata> for Stat {
    fn from(m: &fs::Metadata) -> Self {
        let t = m.file_type();
        let kind = if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Self {
            kind,
            size: m.len(),
            modified: m.modified().ok(),
        }
    }
}

/// How much [`list`] learns of each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Its kind only, which the directory stream carries: no host call per entry beyond the
    /// stream's own. What a walk needs (it stats only the files it keeps).
    Kinds,
    /// Its kind, size and time too: one more host call per entry (a `stat` on the open
    /// directory). What a listing shows.
    Stats,
}

/// One entry of a directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// The entry itself, not a symlink's target.
    pub kind: Kind,
    /// With [`Look::Stats`]: the entry itself, not a symlink's target; `None` when not asked
    /// for, or when it could not be looked at (it vanished between the listing and the look).
    pub stat: Option<Stat>,
}

/// What [`list`] found.
#[derive(Debug, Default)]
pub struct Listing {
    /// In the directory's own order.
    pub entries: Vec<Entry>,
    /// Entries that could not be read and were left out: names that are not UTF-8, which WASI
    /// cannot carry (or any other error the host reports for a single entry).
    pub skipped_names: usize,
    /// How many items of the directory stream were looked at, skipped ones included.
    pub read: usize,
    /// The stream held more than the `budget` given to [`list`].
    pub truncated: bool,
}

/// One item of a directory stream, as the platform gave it.
enum Item {
    Named(Entry),
    /// Could not be read; counted in [`Listing::skipped_names`].
    Unreadable,
    /// Removed while the directory was being read; simply not there any more.
    Gone,
}

/// What [`OpenDir::read_file`] found.
#[derive(Debug)]
pub enum FileBytes {
    /// The file's bytes (at most the `max` asked for).
    Bytes(Vec<u8>),
    /// Larger than `max`: not read.
    TooLarge,
    /// Not a regular file (any more).
    NotAFile,
}

/// A directory kept open after its listing, so its entries are looked at and read through it:
/// one name below an open directory is the host's cheapest lookup, and nothing is resolved
/// twice.
pub struct OpenDir(sys::OpenDir);

impl OpenDir {
    /// The entry `name` itself (a symlink is not followed); `None` when it is gone.
    pub fn stat(&self, name: &str) -> Option<Stat> {
        self.0.stat(name)
    }

    /// The regular file `name` (a symlink is not followed), when it holds at most `max` bytes.
    pub fn read_file(&self, name: &str, max: u64) -> io::Result<FileBytes> {
        self.0.read_file(name, max)
    }
}

/// The file at `path` (a symlink followed) when it is a regular file of at most `max` bytes:
/// checked on the open file, read through `std`.
pub fn read_path(path: &std::path::Path, max: u64) -> io::Result<FileBytes> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(FileBytes::NotAFile);
    }
    if metadata.len() > max {
        return Ok(FileBytes::TooLarge);
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max).read_to_end(&mut bytes)?;
    Ok(FileBytes::Bytes(bytes))
}

/// Reads the directory at view path `path` (following a symlink at `path` itself), looking at
/// no more than `budget` items, each as far as `look` says. Fails only when the directory cannot
/// be opened or read at all.
pub fn list(path: &str, budget: usize, look: Look) -> io::Result<Listing> {
    list_open(path, budget, look).map(|(listing, _)| listing)
}

/// [`list`], and the directory, still open, to look at and read its entries through.
pub fn list_open(path: &str, budget: usize, look: Look) -> io::Result<(Listing, OpenDir)> {
    // Kinds only: the host's `listing` gives the whole directory in one call (within the
    // most it lists at once; a larger budget reads the stream).
    #[cfg(target_os = "wasi")]
    if look == Look::Kinds && budget <= sys::MAX_HOST_LISTING {
        return sys::list_kinds(path, budget);
    }
    let mut dir = sys::Dir::open(path)?;
    let mut listing = Listing::default();
    while let Some(item) = dir.next_item(look) {
        if listing.read == budget {
            listing.truncated = true;
            break;
        }
        // Errors count too: a host that repeated one error forever still meets the budget.
        listing.read += 1;
        match item {
            Item::Named(entry) if entry.name != "." && entry.name != ".." => {
                listing.entries.push(entry);
            }
            Item::Named(_) | Item::Gone => {}
            Item::Unreadable => listing.skipped_names += 1,
        }
    }
    Ok((listing, OpenDir(dir.finish())))
}

/// On WASI: the `wasi:filesystem` directory stream, which reports an error per entry.
#[cfg(target_os = "wasi")]
mod sys {
    use std::io;
    use std::time::{Duration, UNIX_EPOCH};

    use wasi::filesystem::types::{
        Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntryStream,
        ErrorCode, OpenFlags, PathFlags,
    };

    use super::{Entry, FileBytes, Item, Kind, Listing, Look, Stat};
    use crate::atomic::{preopen_for, to_io};
    use crate::bindings::hearth::tool::listing::{self, EntryKind, ListError};

    /// The most items the host's `listing` looks at in one call.
    pub(super) const MAX_HOST_LISTING: usize = 262_144;

    /// The directory's entries by kind, in one host call, and the directory opened.
    pub(super) fn list_kinds(path: &str, budget: usize) -> io::Result<(Listing, super::OpenDir)> {
        let descriptor = open_directory(path)?;
        let budget = u32::try_from(budget).unwrap_or(u32::MAX);
        let found = listing::list_directory(path, budget).map_err(|e| {
            let kind = match e {
                ListError::NotFound => io::ErrorKind::NotFound,
                ListError::NotDirectory => io::ErrorKind::NotADirectory,
                ListError::NotPermitted => io::ErrorKind::PermissionDenied,
                ListError::Io => io::ErrorKind::Other,
            };
            io::Error::new(kind, format!("listing `{path}`: {e:?}"))
        })?;
        let entries = found
            .entries
            .into_iter()
            .map(|entry| Entry {
                name: entry.name,
                kind: match entry.kind {
                    EntryKind::File => Kind::File,
                    EntryKind::Directory => Kind::Dir,
                    EntryKind::Symlink => Kind::Symlink,
                    EntryKind::Other => Kind::Other,
                },
                stat: None,
            })
            .collect();
        let listing = Listing {
            entries,
            skipped_names: found.skipped_names as usize,
            read: found.read as usize,
            truncated: found.truncated,
        };
        Ok((listing, super::OpenDir(OpenDir(descriptor))))
    }

    /// The directory at view path `path` (a symlink at `path` itself followed).
    fn open_directory(path: &str) -> io::Result<Descriptor> {
        let (preopen, relative) = preopen_for(path)?;
        if relative.is_empty() {
            return Ok(preopen);
        }
        preopen
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                &relative,
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ,
            )
            .map_err(to_io)
    }

    /// The most bytes one `descriptor.read` returns: wasmtime-wasi 48 allocates no more per
    /// call (`MAX_READ_SIZE_ALLOC`), so a read that asks for at most this and gets less has
    /// met the end of the file.
    const READ_CHUNK_BYTES: u64 = 64 * 1024;

    pub(super) struct OpenDir(Descriptor);

    impl OpenDir {
        pub(super) fn stat(&self, name: &str) -> Option<Stat> {
            self.0.stat_at(PathFlags::empty(), name).ok().map(stat_from)
        }

        /// Opened without following a link, checked on the open file, then read with
        /// positional reads on the calling thread (`std` would read through a stream: more
        /// host calls per file).
        pub(super) fn read_file(&self, name: &str, max: u64) -> io::Result<FileBytes> {
            let file = self
                .0
                .open_at(
                    PathFlags::empty(),
                    name,
                    OpenFlags::empty(),
                    DescriptorFlags::READ,
                )
                .map_err(to_io)?;
            let stat = file.stat().map_err(to_io)?;
            if stat.type_ != DescriptorType::RegularFile {
                return Ok(FileBytes::NotAFile);
            }
            if stat.size > max {
                return Ok(FileBytes::TooLarge);
            }
            let mut bytes = Vec::with_capacity(stat.size as usize);
            loop {
                let read = bytes.len() as u64;
                // One byte past the size asks for the end too: a small file takes one read.
                let want = (stat.size.saturating_sub(read) + 1)
                    .min(READ_CHUNK_BYTES)
                    .min(max - read);
                if want == 0 {
                    break;
                }
                let (chunk, end) = file.read(want, read).map_err(to_io)?;
                let short = (chunk.len() as u64) < want;
                bytes.extend_from_slice(&chunk);
                if end || short {
                    break;
                }
            }
            Ok(FileBytes::Bytes(bytes))
        }
    }

    pub(super) struct Dir {
        // Declared first so it is dropped before the directory it reads.
        stream: DirectoryEntryStream,
        descriptor: Descriptor,
    }

    impl Dir {
        /// The directory, its stream dropped.
        pub(super) fn finish(self) -> OpenDir {
            drop(self.stream);
            OpenDir(self.descriptor)
        }

        pub(super) fn open(path: &str) -> io::Result<Self> {
            let descriptor = open_directory(path)?;
            let stream = descriptor.read_directory().map_err(to_io)?;
            Ok(Self { stream, descriptor })
        }

        pub(super) fn next_item(&mut self, look: Look) -> Option<Item> {
            match self.stream.read_directory_entry() {
                Ok(None) => None,
                Ok(Some(entry)) => {
                    // The host looked at the entry itself (not following a link) to give its
                    // type; size and time cost one `fstatat` more on the open directory.
                    let stat = match look {
                        Look::Kinds => None,
                        Look::Stats => self
                            .descriptor
                            .stat_at(PathFlags::empty(), &entry.name)
                            .ok()
                            .map(stat_from),
                    };
                    Some(Item::Named(Entry {
                        name: entry.name,
                        kind: kind_from(entry.type_),
                        stat,
                    }))
                }
                // wasmtime-wasi stats every entry while reading the directory: one deleted
                // meanwhile shows up as `no-entry`.
                Err(ErrorCode::NoEntry) => Some(Item::Gone),
                Err(_) => Some(Item::Unreadable),
            }
        }
    }

    fn kind_from(type_: DescriptorType) -> Kind {
        match type_ {
            DescriptorType::RegularFile => Kind::File,
            DescriptorType::Directory => Kind::Dir,
            DescriptorType::SymbolicLink => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn stat_from(s: DescriptorStat) -> Stat {
        let kind = kind_from(s.type_);
        // Checked: the timestamp comes from the host and must not be able to panic the tool.
        let modified = s.data_modification_timestamp.and_then(|t| {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(t.seconds))?
                .checked_add(Duration::from_nanos(u64::from(t.nanoseconds)))
        });
        Stat {
            kind,
            size: s.size,
            modified,
        }
    }
}

/// Elsewhere (the SDK's native unit tests): `std`, which hands over any name as an `OsString`,
/// so a name that is not UTF-8 is skipped here, the same as on WASI.
#[cfg(not(target_os = "wasi"))]
mod sys {
    use std::{fs, io};

    use std::path::PathBuf;

    use super::{Entry, FileBytes, Item, Kind, Look, Stat};

    pub(super) struct OpenDir(PathBuf);

    impl OpenDir {
        pub(super) fn stat(&self, name: &str) -> Option<Stat> {
            let metadata = fs::symlink_metadata(self.0.join(name)).ok()?;
            Some(Stat::from(&metadata))
        }

        pub(super) fn read_file(&self, name: &str, max: u64) -> io::Result<FileBytes> {
            let path = self.0.join(name);
            if fs::symlink_metadata(&path)?.file_type().is_symlink() {
                return Ok(FileBytes::NotAFile);
            }
            super::read_path(&path, max)
        }
    }

    pub(super) struct Dir(fs::ReadDir, PathBuf);

    impl Dir {
        pub(super) fn open(path: &str) -> io::Result<Self> {
            fs::read_dir(path).map(|entries| Self(entries, PathBuf::from(path)))
        }

        pub(super) fn finish(self) -> OpenDir {
            OpenDir(self.1)
        }

        pub(super) fn next_item(&mut self, look: Look) -> Option<Item> {
            let entry = match self.0.next()? {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Item::Gone),
                Err(_) => return Some(Item::Unreadable),
            };
            let Ok(name) = entry.file_name().into_string() else {
                return Some(Item::Unreadable);
            };
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => Kind::Symlink,
                Ok(t) if t.is_dir() => Kind::Dir,
                Ok(t) if t.is_file() => Kind::File,
                _ => Kind::Other,
            };
            let stat = match look {
                Look::Kinds => None,
                Look::Stats => entry.metadata().ok().map(|m| Stat::from(&m)),
            };
            Some(Item::Named(Entry { name, kind, stat }))
        }
    }
}

// Native only: they make names that are not UTF-8, which needs Linux's byte-string names.
#[cfg(test)]
#[cfg(target_os = "linux")]
pub(crate) mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names_that_are_not_utf8_are_skipped_and_counted() {
        let dir = tempfile_dir("list");
        fs::write(dir.join(OsStr::from_bytes(b"\xff.txt")), "x").unwrap();
        fs::write(dir.join("ok.txt"), "hello").unwrap();
        fs::create_dir(dir.join("sub")).unwrap();
        let listing = list(dir.to_str().unwrap(), usize::MAX, Look::Stats).unwrap();
        let mut names: Vec<_> = listing.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["ok.txt", "sub"]);
        assert_eq!(listing.skipped_names, 1);
        assert_eq!(listing.read, 3);
        assert!(!listing.truncated);
        let ok = listing.entries.iter().find(|e| e.name == "ok.txt").unwrap();
        let stat = ok.stat.unwrap();
        assert!(stat.is_file() && stat.size == 5 && stat.modified.is_some());
        // Kinds only: the same entries and kinds, no stats.
        let kinds = list(dir.to_str().unwrap(), usize::MAX, Look::Kinds).unwrap();
        let mut kinds: Vec<_> = kinds
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.kind, e.stat))
            .collect();
        kinds.sort_unstable_by_key(|k| k.0);
        assert_eq!(
            kinds,
            [("ok.txt", Kind::File, None), ("sub", Kind::Dir, None)]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_budget_truncates() {
        let dir = tempfile_dir("budget");
        for name in ["a", "b", "c"] {
            fs::write(dir.join(name), "").unwrap();
        }
        let listing = list(dir.to_str().unwrap(), 2, Look::Kinds).unwrap();
        assert_eq!((listing.entries.len(), listing.truncated), (2, true));
        let listing = list(dir.to_str().unwrap(), 3, Look::Kinds).unwrap();
        assert_eq!((listing.entries.len(), listing.truncated), (3, false));
        assert!(list(dir.join("missing").to_str().unwrap(), 3, Look::Kinds).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory under the system's temporary directory.
    pub(crate) fn tempfile_dir(tag: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hearth-sdk-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
