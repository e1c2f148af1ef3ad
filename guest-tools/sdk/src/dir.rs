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

/// One entry of a directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// The entry itself, not a symlink's target; `None` when it could not be looked at (it
    /// vanished between the listing and the look).
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

/// Reads the directory at view path `path` (following a symlink at `path` itself), looking at
/// no more than `budget` items. Fails only when the directory cannot be opened or read at all.
pub fn list(path: &str, budget: usize) -> io::Result<Listing> {
    let mut dir = sys::Dir::open(path)?;
    let mut listing = Listing::default();
    while let Some(item) = dir.next_item() {
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
    Ok(listing)
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

    use super::{Entry, Item, Kind, Stat};
    use crate::atomic::{preopen_for, to_io};

    pub(super) struct Dir {
        // Declared first so it is dropped before the directory it reads.
        stream: DirectoryEntryStream,
        descriptor: Descriptor,
    }

    impl Dir {
        pub(super) fn open(path: &str) -> io::Result<Self> {
            let (preopen, relative) = preopen_for(path)?;
            let descriptor = if relative.is_empty() {
                preopen
            } else {
                preopen
                    .open_at(
                        PathFlags::SYMLINK_FOLLOW,
                        &relative,
                        OpenFlags::DIRECTORY,
                        DescriptorFlags::READ,
                    )
                    .map_err(to_io)?
            };
            let stream = descriptor.read_directory().map_err(to_io)?;
            Ok(Self { stream, descriptor })
        }

        pub(super) fn next_item(&mut self) -> Option<Item> {
            match self.stream.read_directory_entry() {
                Ok(None) => None,
                Ok(Some(entry)) => {
                    // One `fstatat` on the open directory; the entry's own type is not enough
                    // (the size and time are wanted too).
                    let stat = self
                        .descriptor
                        .stat_at(PathFlags::empty(), &entry.name)
                        .ok()
                        .map(stat_from);
                    Some(Item::Named(Entry {
                        name: entry.name,
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

    fn stat_from(s: DescriptorStat) -> Stat {
        let kind = match s.type_ {
            DescriptorType::RegularFile => Kind::File,
            DescriptorType::Directory => Kind::Dir,
            DescriptorType::SymbolicLink => Kind::Symlink,
            _ => Kind::Other,
        };
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

    use super::{Entry, Item, Stat};

    pub(super) struct Dir(fs::ReadDir);

    impl Dir {
        pub(super) fn open(path: &str) -> io::Result<Self> {
            fs::read_dir(path).map(Self)
        }

        pub(super) fn next_item(&mut self) -> Option<Item> {
            Some(match self.0.next()? {
                Ok(entry) => match entry.file_name().into_string() {
                    Ok(name) => Item::Named(Entry {
                        name,
                        stat: entry.metadata().ok().map(|m| Stat::from(&m)),
                    }),
                    Err(_) => Item::Unreadable,
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => Item::Gone,
                Err(_) => Item::Unreadable,
            })
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
        let listing = list(dir.to_str().unwrap(), usize::MAX).unwrap();
        let mut names: Vec<_> = listing.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["ok.txt", "sub"]);
        assert_eq!(listing.skipped_names, 1);
        assert_eq!(listing.read, 3);
        assert!(!listing.truncated);
        let ok = listing.entries.iter().find(|e| e.name == "ok.txt").unwrap();
        let stat = ok.stat.unwrap();
        assert!(stat.is_file() && stat.size == 5 && stat.modified.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_budget_truncates() {
        let dir = tempfile_dir("budget");
        for name in ["a", "b", "c"] {
            fs::write(dir.join(name), "").unwrap();
        }
        let listing = list(dir.to_str().unwrap(), 2).unwrap();
        assert_eq!((listing.entries.len(), listing.truncated), (2, true));
        let listing = list(dir.to_str().unwrap(), 3).unwrap();
        assert_eq!((listing.entries.len(), listing.truncated), (3, false));
        assert!(list(dir.join("missing").to_str().unwrap(), 3).is_err());
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
