//! A snapshot's manifest: what it holds, and how it is made from directories and put back.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use hearth_content::walk::Walk;
use hearth_content::{ContentError, Kind, Stat, Tree};

use crate::Source;

/// The manifest format this worker writes. 1 (round 1, no `version` field): names and link
/// targets as text only. 2: a name or target that is not UTF-8 also comes as its exact bytes
/// (`path_bytes`, `target_bytes`, base64). Both are read.
pub const MANIFEST_VERSION: u32 = 2;

fn format_1() -> u32 {
    1
}

/// One snapshot: every directory, file and symlink of its sources.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    #[serde(default = "format_1")]
    pub version: u32,
    pub session: String,
    pub name: String,
    pub created_at_ms: u64,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

/// A path under a source (`workspace/src/main.py`, `git/HEAD`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The path as text (where it is not UTF-8, a lossy rendering: `path_bytes` is the path).
    pub path: String,
    /// The exact bytes of a path that is not UTF-8, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<String>,
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    /// Files: the SHA-256 of the content, which names its blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlinks: where they point, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The exact bytes of a target that is not UTF-8, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_bytes: Option<String>,
}

/// Text and, where the text is not the whole truth, the exact bytes.
fn text_and_bytes(raw: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(raw) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(raw).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(raw)),
        ),
    }
}

fn exact(text: &str, bytes: Option<&str>) -> Result<Vec<u8>, String> {
    match bytes {
        None => Ok(text.as_bytes().to_vec()),
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("`{text}` has bytes that are not base64: {e}")),
    }
}

impl Entry {
    /// The entry's path, byte for byte.
    pub fn exact_path(&self) -> Result<Vec<u8>, String> {
        exact(&self.path, self.path_bytes.as_deref())
    }

    /// A link's target, byte for byte.
    pub fn exact_target(&self) -> Option<Result<Vec<u8>, String>> {
        let target = self.target.as_deref()?;
        Some(exact(target, self.target_bytes.as_deref()))
    }

    /// What the file cache knows the entry by: its text, or its bytes when the text is lossy
    /// (two names that differ only in bytes that are not UTF-8 must not share a hash).
    fn cache_key(&self) -> String {
        match &self.path_bytes {
            Some(bytes) => format!("\0{bytes}"),
            None => self.path.clone(),
        }
    }
}

impl Manifest {
    pub fn blob_hashes(&self) -> HashSet<String> {
        self.entries
            .iter()
            .filter_map(|e| e.sha256.clone())
            .collect()
    }

    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count()
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// What the previous snapshot of a session learned: file hashes by path and stat (so unchanged
/// files are not read again), and the blobs its manifest references (so they are not uploaded
/// again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileCache {
    pub files: HashMap<String, CachedFile>,
    pub blobs: HashSet<String>,
}

/// How recent a change leaves a file's stat unable to vouch for its content: well above the
/// coarse clock file timestamps are taken from (a jiffy, 1–10 ms).
const RACY_NS: i64 = 2_000_000_000;

/// A file as it was when hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFile {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub sha256: String,
}

impl CachedFile {
    fn of(stat: &Stat, sha256: String) -> Self {
        Self {
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime_ns: stat.st_mtime * 1_000_000_000 + stat.st_mtime_nsec as i64,
            ctime_ns: stat.st_ctime * 1_000_000_000 + stat.st_ctime_nsec as i64,
            ino: stat.st_ino,
            sha256,
        }
    }

    /// Whether the file changed within [`RACY_NS`] of now: too recently for its stat to vouch
    /// for its content (git's "racily clean" files).
    fn is_recent(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(i64::MAX);
        now.saturating_sub(self.mtime_ns.max(self.ctime_ns)) < RACY_NS
    }

    /// Whether `other` is the same file as this one was (its hash aside).
    fn same_file(&self, other: &Self) -> bool {
        (self.size, self.mtime_ns, self.ctime_ns, self.ino)
            == (other.size, other.mtime_ns, other.ctime_ns, other.ino)
    }

    fn of_metadata(meta: &std::fs::Metadata, sha256: String) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
            sha256,
        }
    }
}

/// Where a walked file is: its source's index and its path below that source.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub source: usize,
    pub relative: PathBuf,
}

/// The entries of a walk, where each file is, and the cache of its files.
pub(crate) struct Walked {
    pub entries: Vec<Entry>,
    pub files: Vec<Located>,
    pub cache: FileCache,
}

/// Walks `sources` through `hearth-content` (no link followed, FIFOs, sockets and devices
/// skipped without being opened, at most `max_depth` nested directories), hashing every file
/// the cache cannot vouch for. With `max_bytes`, the files' sizes (each inode once: hard links
/// are one file) may add up to that much; a file that would pass it fails the walk before it is
/// read, so a sparse file of any apparent size costs nothing to refuse.
pub(crate) fn walk(
    sources: &[Source],
    previous: &FileCache,
    max_depth: usize,
    max_bytes: Option<u64>,
) -> Result<Walked, crate::SnapshotError> {
    let mut walked = Walked {
        entries: Vec::new(),
        files: Vec::new(),
        cache: FileCache::default(),
    };
    let mut budget = Budget {
        left: max_bytes.unwrap_or(u64::MAX),
        limit: max_bytes.unwrap_or(u64::MAX),
        seen: std::collections::HashSet::new(),
    };
    for (index, source) in sources.iter().enumerate() {
        let root = match Tree::open(&source.dir) {
            Ok(root) => root,
            Err(ContentError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        Walk::new(max_depth).run(&root, |visit| {
            let mut raw = format!("{}/", source.name).into_bytes();
            raw.extend_from_slice(visit.path.as_os_str().as_bytes());
            let (path, path_bytes) = text_and_bytes(&raw);
            let captured = capture(
                &visit,
                previous,
                &mut walked.cache,
                &mut budget,
                path,
                path_bytes,
            );
            match captured {
                Ok(Some(entry)) => {
                    if entry.kind == EntryKind::File {
                        walked.files.push(Located {
                            source: index,
                            relative: visit.path.to_owned(),
                        });
                    }
                    walked.entries.push(entry);
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => match e.downcast_ref::<OverBudget>() {
                    Some(over) => Err(crate::SnapshotError::TooLarge {
                        path: String::from_utf8_lossy(&raw).into_owned(),
                        size: over.size,
                        limit: budget.limit,
                    }),
                    None => Err(crate::SnapshotError::Capture {
                        path: String::from_utf8_lossy(&raw).into_owned(),
                        reason: e.to_string(),
                    }),
                },
            }
        })?;
    }
    Ok(walked)
}

/// What a walk may still take in (see [`walk`]).
struct Budget {
    left: u64,
    limit: u64,
    /// Inodes counted already: a hard link is not a second file's worth.
    seen: std::collections::HashSet<u64>,
}

/// A file that would take the walk past its budget.
#[derive(Debug)]
struct OverBudget {
    size: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a file of {} bytes is past the snapshot's budget",
            self.size
        )
    }
}

impl std::error::Error for OverBudget {}

/// The manifest entry of what a walk met (`None`: not content — a FIFO, socket or device, never
/// opened — or gone since the listing), hashing a file unless the cache vouches for it.
fn capture(
    visit: &hearth_content::walk::Visit<'_>,
    previous: &FileCache,
    cache: &mut FileCache,
    budget: &mut Budget,
    path: String,
    path_bytes: Option<String>,
) -> Result<Option<Entry>, Box<dyn std::error::Error>> {
    let mut entry = Entry {
        path,
        path_bytes,
        kind: EntryKind::Dir,
        size: 0,
        mode: 0,
        sha256: None,
        target: None,
        target_bytes: None,
    };
    match visit.kind {
        Kind::Dir => entry.mode = visit.dir.stat_entry(visit.name)?.st_mode,
        Kind::Symlink => {
            entry.kind = EntryKind::Symlink;
            entry.mode = visit.dir.stat_entry(visit.name)?.st_mode;
            let target = visit.dir.read_link(Path::new(visit.name), 4096)?;
            let (text, bytes) = text_and_bytes(target.as_bytes());
            (entry.target, entry.target_bytes) = (Some(text), bytes);
        }
        Kind::File => {
            let Some((file, stat)) = visit.dir.open_listed_file(Path::new(visit.name))? else {
                return Ok(None);
            };
            let size = u64::try_from(stat.st_size).unwrap_or(0);
            if budget.seen.insert(stat.st_ino) {
                budget.left = budget.left.checked_sub(size).ok_or(OverBudget { size })?;
            }
            let key = entry.cache_key();
            let seen = CachedFile::of(&stat, String::new());
            let sha256 = match previous.files.get(&key) {
                Some(cached) if cached.same_file(&seen) => cached.sha256.clone(),
                _ => hash(file)?,
            };
            // A file changed moments ago may change again within the same timestamp (the
            // kernel's file clock is coarse), and then look the same to the next snapshot: a
            // program may be writing it right now. Such a file is hashed again next time.
            if !seen.is_recent() {
                cache.files.insert(
                    key,
                    CachedFile {
                        sha256: sha256.clone(),
                        ..seen
                    },
                );
            }
            entry.kind = EntryKind::File;
            entry.size = u64::try_from(stat.st_size).unwrap_or(0);
            entry.mode = stat.st_mode;
            entry.sha256 = Some(sha256);
        }
        Kind::Special(_) => return Ok(None),
    }
    Ok(Some(entry))
}

/// The SHA-256 of everything `input` holds, read in blocks.
pub(crate) fn hash(mut input: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(crate::hex(&hasher.finalize()))
}

/// Where each entry of a manifest goes.
pub(crate) struct Plan {
    pub dirs: Vec<PathBuf>,
    pub files: Vec<(PathBuf, Entry)>,
    /// A link: the root it goes under, its path below that root, and its target.
    pub links: Vec<(PathBuf, PathBuf, OsString)>,
}

/// Maps a manifest onto `targets`, refusing any entry that would land outside them: a manifest
/// comes from storage and is not trusted to name only its own paths.
pub(crate) fn plan_restore(manifest: &Manifest, targets: &[Source]) -> Result<Plan, String> {
    let mut plan = Plan {
        dirs: targets.iter().map(|t| t.dir.clone()).collect(),
        files: Vec::new(),
        links: Vec::new(),
    };
    for entry in &manifest.entries {
        let raw = entry.exact_path()?;
        let split = raw.iter().position(|&b| b == b'/');
        let (source, relative) = split
            .map(|at| (&raw[..at], &raw[at + 1..]))
            .ok_or_else(|| format!("entry `{}` names no source", entry.path))?;
        let target = targets
            .iter()
            .find(|t| t.name.as_bytes() == source)
            .ok_or_else(|| format!("entry `{}` is outside every source", entry.path))?;
        let relative = Path::new(OsStr::from_bytes(relative));
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(format!(
                "entry `{}` is not a plain relative path",
                entry.path
            ));
        }
        let host = target.dir.join(relative);
        let target_root = target.dir.clone();
        match entry.kind {
            EntryKind::Dir => plan.dirs.push(host),
            EntryKind::File => {
                let valid = entry
                    .sha256
                    .as_deref()
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !valid {
                    return Err(format!("entry `{}` has no valid hash", entry.path));
                }
                if let Some(parent) = host.parent() {
                    plan.dirs.push(parent.to_owned());
                }
                plan.files.push((host, entry.clone()));
            }
            EntryKind::Symlink => {
                let target = entry
                    .exact_target()
                    .ok_or_else(|| format!("link `{}` has no target", entry.path))??;
                plan.links.push((
                    target_root.clone(),
                    relative.to_owned(),
                    OsString::from_vec(target),
                ));
            }
        }
    }
    Ok(plan)
}

/// The cache of a freshly restored tree: its files as they are now, with the manifest's hashes.
pub(crate) fn cache_after_restore(manifest: &Manifest, plan: &Plan) -> FileCache {
    let mut cache = FileCache {
        files: HashMap::new(),
        blobs: manifest.blob_hashes(),
    };
    for (host, entry) in &plan.files {
        if let (Ok(meta), Some(hash)) = (std::fs::symlink_metadata(host), &entry.sha256) {
            cache.files.insert(
                entry.path.clone(),
                CachedFile::of_metadata(&meta, hash.clone()),
            );
        }
    }
    cache
}
