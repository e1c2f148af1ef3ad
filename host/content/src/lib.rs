//! The one way the host touches session content.
//!
//! Everything under a session's workspace and scratch directory may have been made by the agent
//! a moment ago, concurrently with the host's own work: any byte, name, mode and inode type —
//! symlinks to the host's files, FIFOs that block an `open` forever, devices, sparse files of a
//! terabyte, trees thousands of directories deep, names that are not UTF-8. The worker runs as
//! root, so every host-side access of that content goes through this crate, whose rules are:
//!
//! 1. **Relative to a directory handle, never by joining strings.** A [`Tree`] is an open
//!    directory; every path is resolved beneath it by `openat2` with `RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`: the kernel refuses `..`
//!    out of it, any symlink on the way or at the end, and any mount crossing.
//! 2. **Never blocks on open.** Files are opened `O_NONBLOCK` (a FIFO opens at once instead of
//!    waiting for a writer), then `fstat`ed.
//! 3. **Typed.** What is not the expected type is refused by its type ([`ContentError::NotAFile`],
//!    [`ContentError::Symlink`], …), never read.
//! 4. **Capped.** Reads take a byte limit ([`Tree::read`]); walks take a depth limit
//!    ([`walk::Walk`]) and hold a bounded number of descriptors.
//! 5. **Nothing lost in names.** Names are bytes ([`OsString`]); deciding what to do with one
//!    that is not UTF-8 is the caller's, never a silent skip in here.
//! 6. **Safe modes.** What the host creates never carries setuid, setgid, sticky or world-write
//!    bits ([`safe_mode`]).
//!
//! Time is bounded by construction here: no call waits on anything the agent controls (no
//! blocking open, no unbounded read). Work that cannot be bounded that way — libgit2, which
//! opens `.gitignore` and `.gitattributes` by itself — runs in a helper process killed at a
//! deadline (`hearth-git`).
//!
//! The host-side readers and writers of session content, all through this crate (the audit is
//! in `docs/content-layer.md`):
//! - the files API (`GET`/`PUT` of a file, upload and download): [`Tree::read`],
//!   [`Tree::write_file`];
//! - exec: the workspace's own mode and the read-only areas' mount points are repaired before a
//!   run ([`Tree::repair_mount_point`]); a `call`'s result comes through an inherited pipe and
//!   never touches the session's files;
//! - git, in the `hearth-git` helper: conflicted files read by merge-continue, files removed by
//!   a merge or reset;
//! - snapshots: the walk and hashing ([`walk::Walk`]), uploads ([`Tree::open_file`]), restore
//!   ([`Tree::create_dir_all`], [`Tree::write_file`], [`Tree::symlink`]) and export;
//! - sessions: deletion of a whole session ([`remove_tree`]).

pub mod walk;

mod remove;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

pub use remove::remove_tree;
pub use rustix::fs::Stat;

/// The longest name one directory entry may have on Linux.
pub const MAX_NAME_BYTES: usize = 255;

/// Bits the host never gives a file or directory it makes: setuid, setgid, sticky and
/// world-write.
pub const UNSAFE_MODE_BITS: u32 = 0o7002;

/// `mode` without the bits the host never gives ([`UNSAFE_MODE_BITS`]), permission bits only.
pub fn safe_mode(mode: u32) -> u32 {
    mode & 0o777 & !UNSAFE_MODE_BITS
}

/// Why session content could not be touched. Each variant names what a caller can tell the
/// agent; [`ContentError::Io`] is everything else (a fault of the host, not of the input).
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("no such file or directory")]
    NotFound,
    #[error("is a directory")]
    IsDirectory,
    #[error("a component of the path is not a directory")]
    NotADirectory,
    #[error("is a symbolic link, or one is on the way (the host does not follow links)")]
    Symlink,
    #[error("leads out of its directory")]
    Escapes,
    #[error("is not a regular file (it is a {0})")]
    NotAFile(&'static str),
    #[error("is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("is deeper than the limit of {limit} nested directories")]
    TooDeep { limit: usize },
    #[error("has a name longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    #[error("already exists")]
    AlreadyExists,
    #[error("permission denied")]
    PermissionDenied,
    #[error("no space left on the session's storage")]
    StorageFull,
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for ContentError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
            Some(rustix::io::Errno::NOENT) => Self::NotFound,
            Some(rustix::io::Errno::ISDIR) => Self::IsDirectory,
            Some(rustix::io::Errno::NOTDIR) => Self::NotADirectory,
            // RESOLVE_NO_SYMLINKS answers ELOOP for a link anywhere on the path.
            Some(rustix::io::Errno::LOOP) => Self::Symlink,
            Some(rustix::io::Errno::XDEV) => Self::Escapes,
            // Opening a socket.
            Some(rustix::io::Errno::NXIO) => Self::NotAFile("socket"),
            Some(rustix::io::Errno::NAMETOOLONG) => Self::NameTooLong,
            Some(rustix::io::Errno::EXIST) => Self::AlreadyExists,
            Some(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => Self::PermissionDenied,
            Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT) => Self::StorageFull,
            _ => Self::Io(e),
        }
    }
}

impl From<rustix::io::Errno> for ContentError {
    fn from(e: rustix::io::Errno) -> Self {
        io::Error::from(e).into()
    }
}

/// What an entry is, as `lstat` tells (links are never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device: never content.
    Special(&'static str),
}

impl Kind {
    pub fn of(stat: &Stat) -> Self {
        Self::of_file_type(FileType::from_raw_mode(stat.st_mode))
    }

    fn of_file_type(file_type: FileType) -> Self {
        match file_type {
            FileType::RegularFile => Self::File,
            FileType::Directory => Self::Dir,
            FileType::Symlink => Self::Symlink,
            FileType::Fifo => Self::Special("FIFO"),
            FileType::Socket => Self::Special("socket"),
            FileType::CharacterDevice => Self::Special("character device"),
            FileType::BlockDevice => Self::Special("block device"),
            FileType::Unknown => Self::Special("file of unknown type"),
        }
    }
}

/// How every path beneath a [`Tree`] is resolved.
fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV
}

/// `rel` as `openat2` wants it: `.` for the directory itself. Only plain components are
/// accepted (the kernel would refuse `..` out of the tree anyway; refusing it here keeps the
/// errors plain).
fn relative(rel: &Path) -> Result<&Path, ContentError> {
    if rel.as_os_str().is_empty() {
        return Ok(Path::new("."));
    }
    for component in rel.components() {
        match component {
            Component::Normal(name) if name.len() > MAX_NAME_BYTES => {
                return Err(ContentError::NameTooLong);
            }
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ContentError::Escapes);
            }
        }
    }
    Ok(rel)
}

/// Splits `rel` into its parent (possibly empty) and its last name.
fn split(rel: &Path) -> Result<(&Path, &OsStr), ContentError> {
    let rel = relative(rel)?;
    let name = rel.file_name().ok_or(ContentError::Escapes)?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

/// How long one piece of a path handed to the kernel may be (well under PATH_MAX).
const PATH_PIECE_BYTES: usize = 2048;

/// `rel` cut into pieces of whole components, each at most [`PATH_PIECE_BYTES`] long.
fn path_pieces(rel: &Path) -> Vec<std::path::PathBuf> {
    let mut pieces = vec![std::path::PathBuf::new()];
    for component in rel.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let current = pieces.last_mut().map_or(0, |p| p.as_os_str().len());
        if current > 0 && current + 1 + name.len() > PATH_PIECE_BYTES {
            pieces.push(std::path::PathBuf::new());
        }
        if let Some(piece) = pieces.last_mut() {
            piece.push(name);
        }
    }
    pieces
}

/// One `openat2` beneath `at`, with the layer's resolution rules.
fn openat2_beneath(
    at: &OwnedFd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, ContentError> {
    // `O_PATH` takes no other flags but these (openat2 refuses them).
    let extra = if flags.contains(OFlags::PATH) {
        OFlags::CLOEXEC | OFlags::NOFOLLOW
    } else {
        OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY
    };
    Ok(rustix::fs::openat2(
        at,
        rel,
        flags | extra,
        mode,
        beneath(),
    )?)
}

/// An open directory of session content; every path given to its methods is relative to it
/// and resolved beneath it without following links.
#[derive(Debug)]
pub struct Tree {
    fd: OwnedFd,
}

impl AsFd for Tree {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Tree {
    /// Opens a directory the host itself made (a session's workspace, its scratch directory).
    /// The last component must not be a link.
    pub fn open(path: &Path) -> Result<Self, ContentError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    fn open_beneath(&self, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, ContentError> {
        let rel = relative(rel)?;
        // A path the kernel takes in one call is at most PATH_MAX (4,096 bytes); an agent can
        // nest deeper than that with long names. Such a path is resolved in pieces, each
        // beneath the directory the previous piece opened.
        if rel.as_os_str().len() > PATH_PIECE_BYTES {
            let mut pieces = path_pieces(rel).into_iter();
            let last = pieces.next_back().unwrap_or_default();
            let mut at = self.fd.try_clone()?;
            for piece in pieces {
                at = openat2_beneath(&at, &piece, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
            }
            return openat2_beneath(&at, &last, flags, mode);
        }
        openat2_beneath(&self.fd, rel, flags, mode)
    }

    /// The directory at `rel` (`""`: this one again).
    pub fn dir(&self, rel: &Path) -> Result<Tree, ContentError> {
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok(Self { fd })
    }

    /// What is at `rel`, without following a link there or on the way.
    pub fn stat(&self, rel: &Path) -> Result<Stat, ContentError> {
        let fd = self.open_beneath(rel, OFlags::PATH, Mode::empty())?;
        Ok(rustix::fs::fstat(&fd)?)
    }

    /// What is at `rel`, or `None` when nothing is.
    pub fn kind(&self, rel: &Path) -> Result<Option<Kind>, ContentError> {
        match self.stat(rel) {
            Ok(stat) => Ok(Some(Kind::of(&stat))),
            Err(ContentError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// This directory's own status.
    pub fn stat_self(&self) -> Result<Stat, ContentError> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }

    /// Opens the regular file at `rel` for reading: never blocks (a FIFO is refused, not
    /// waited on), never follows a link. Returns the file and its status.
    pub fn open_file(&self, rel: &Path) -> Result<(File, Stat), ContentError> {
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd)?;
        match Kind::of(&stat) {
            Kind::File => Ok((File::from(fd), stat)),
            Kind::Dir => Err(ContentError::IsDirectory),
            Kind::Symlink => Err(ContentError::Symlink),
            Kind::Special(what) => Err(ContentError::NotAFile(what)),
        }
    }

    /// Opens a file a walk or listing met: `None` when it is gone or no longer a regular file
    /// (replaced by a link, a FIFO or a directory since), which a walk leaves out.
    pub fn open_listed_file(&self, rel: &Path) -> Result<Option<(File, Stat)>, ContentError> {
        match self.open_file(rel) {
            Ok(opened) => Ok(Some(opened)),
            Err(
                ContentError::NotFound
                | ContentError::Symlink
                | ContentError::NotAFile(_)
                | ContentError::IsDirectory,
            ) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the whole regular file at `rel`, of at most `limit` bytes (checked before and
    /// while reading: a file that grows meanwhile is still cut off at the limit).
    pub fn read(&self, rel: &Path, limit: u64) -> Result<Vec<u8>, ContentError> {
        let (file, stat) = self.open_file(rel)?;
        let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
        if size > limit {
            return Err(ContentError::TooLarge { limit });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(ContentError::TooLarge { limit });
        }
        Ok(bytes)
    }

    /// Where the link at `rel` points, as bytes; at most `limit` of them.
    pub fn read_link(&self, rel: &Path, limit: usize) -> Result<OsString, ContentError> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let target = rustix::fs::readlinkat(&parent.fd, name, Vec::new())?;
        let target = OsString::from_vec(target.into_bytes());
        if target.len() > limit {
            return Err(ContentError::TooLarge {
                limit: limit as u64,
            });
        }
        Ok(target)
    }

    /// The entries of this directory (not `.` and `..`), names as bytes, sorted by them. Types
    /// come from `lstat` where the directory listing does not say.
    pub fn entries(&self) -> Result<Vec<Entry>, ContentError> {
        let mut entries = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_owned();
            let kind = match entry.file_type() {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                FileType::Unknown => {
                    match rustix::fs::statat(&self.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(stat) => Kind::of(&stat),
                        // Gone since the listing.
                        Err(rustix::io::Errno::NOENT) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                other => Kind::of_file_type(other),
            };
            entries.push(Entry { name, kind });
        }
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(entries)
    }

    /// The status of the entry `name` of this directory (one component, not followed).
    pub fn stat_entry(&self, name: &OsStr) -> Result<Stat, ContentError> {
        Ok(rustix::fs::statat(
            &self.fd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Creates the directories of `rel` that are missing (mode 0755) and opens the last. A
    /// component that exists but is not a directory (a file, a link) is an error, never
    /// followed or replaced.
    pub fn create_dir_all(&self, rel: &Path) -> Result<Tree, ContentError> {
        let rel = relative(rel)?;
        let mut current = self.dir(Path::new(""))?;
        for component in rel.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            match rustix::fs::mkdirat(&current.fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            current = current.dir(Path::new(name))?;
        }
        Ok(current)
    }

    /// Creates or replaces the file at `rel` with `bytes` (and its missing parent directories),
    /// atomically: a new file beside it, then a rename over the old name (which replaces a link
    /// there, never writes through it). A new file gets `mode`, a replaced regular file keeps
    /// its own; either is made safe ([`safe_mode`]). Returns whether the name was new.
    pub fn write_file(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<bool, ContentError> {
        self.write_with(rel, mode, |file| file.write_all(bytes))
    }

    /// Like [`Tree::write_file`], the content written by `fill` (e.g. streamed from a store).
    pub fn write_with(
        &self,
        rel: &Path,
        mode: u32,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<bool, ContentError> {
        let (parent, name) = split(rel)?;
        let parent = self.create_dir_all(parent)?;
        let (created, mode) = match rustix::fs::statat(&parent.fd, name, AtFlags::SYMLINK_NOFOLLOW)
        {
            Ok(stat) => match Kind::of(&stat) {
                Kind::Dir => return Err(ContentError::IsDirectory),
                // A file keeps its permissions (an executable stays executable).
                Kind::File => (false, stat.st_mode),
                _ => (false, mode),
            },
            Err(rustix::io::Errno::NOENT) => (true, mode),
            Err(e) => return Err(e.into()),
        };
        // Short and independent of the target's name, so a name of the maximum length works.
        let temp = format!(".hearth-{}.tmp", uuid::Uuid::new_v4().simple());
        let fd = rustix::fs::openat(
            &parent.fd,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(safe_mode(mode)),
        )?;
        let mut file = File::from(fd);
        let written = fill(&mut file)
            .and_then(|()| {
                // The umask may have taken bits; set exactly the safe mode.
                rustix::fs::fchmod(&file, Mode::from_raw_mode(safe_mode(mode))).map_err(Into::into)
            })
            .and_then(|()| {
                rustix::fs::renameat(&parent.fd, temp.as_str(), &parent.fd, name)
                    .map_err(Into::into)
            });
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&parent.fd, temp.as_str(), AtFlags::empty());
            return Err(e.into());
        }
        Ok(created)
    }

    /// Creates a symlink at `rel` pointing at `target` (stored as given; the host never
    /// follows it). Missing parent directories are created.
    pub fn symlink(&self, target: &OsStr, rel: &Path) -> Result<(), ContentError> {
        let (parent, name) = split(rel)?;
        let parent = self.create_dir_all(parent)?;
        Ok(rustix::fs::symlinkat(target, &parent.fd, name)?)
    }

    /// Removes whatever is at `rel`: a file, a link (not what it points at), or a whole tree
    /// (see [`remove_tree`]). Nothing there is not an error.
    pub fn remove(&self, rel: &Path) -> Result<(), ContentError> {
        let (parent, name) = split(rel)?;
        let parent = match self.dir(parent) {
            Ok(parent) => parent,
            Err(ContentError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match rustix::fs::unlinkat(&parent.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(rustix::io::Errno::ISDIR) => remove::remove_entry_tree(&parent, name),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets this directory's own mode (made safe).
    pub fn set_mode(&self, mode: u32) -> Result<(), ContentError> {
        Ok(rustix::fs::fchmod(
            &self.fd,
            Mode::from_raw_mode(safe_mode(mode)),
        )?)
    }

    /// Makes sure `rel` is a directory the jail can mount a read-only area on: every component
    /// on the way is a directory, whatever a program or tool left there. A file, link or
    /// special file in the way is removed (it was hidden under the area's mount in every view
    /// anyway) and replaced by an empty directory. Returns whether anything was repaired.
    pub fn repair_mount_point(&self, rel: &Path) -> Result<bool, ContentError> {
        let rel = relative(rel)?;
        let mut current = self.dir(Path::new(""))?;
        let mut repaired = false;
        for component in rel.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            match rustix::fs::statat(&current.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if Kind::of(&stat) == Kind::Dir => {}
                Ok(_) => {
                    rustix::fs::unlinkat(&current.fd, name, AtFlags::empty())?;
                    rustix::fs::mkdirat(&current.fd, name, Mode::from_raw_mode(0o755))?;
                    repaired = true;
                }
                Err(rustix::io::Errno::NOENT) => {
                    rustix::fs::mkdirat(&current.fd, name, Mode::from_raw_mode(0o755))?;
                }
                Err(e) => return Err(e.into()),
            }
            current = current.dir(Path::new(name))?;
        }
        Ok(repaired)
    }
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: Kind,
}

#[cfg(test)]
mod tests;
