//! A snapshot's manifest: what it holds, and how it is made from directories and put back.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use hearth_content::walk::Walk;
use hearth_content::{ContentError, Kind, Stat, Tree};

use crate::Source;

/// One snapshot: every directory, file and symlink of its sources.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
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
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    /// Files: the SHA-256 of the content, which names its blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlinks: where they point, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
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
    /// Names that are not UTF-8 and were left out (a manifest names paths as text).
    pub skipped_names: usize,
}

/// Walks `sources` through `hearth-content` (no link followed, FIFOs, sockets and devices
/// skipped without being opened, at most `max_depth` nested directories), hashing every file
/// the cache cannot vouch for.
pub(crate) fn walk(
    sources: &[Source],
    previous: &FileCache,
    max_depth: usize,
) -> Result<Walked, crate::SnapshotError> {
    let mut walked = Walked {
        entries: Vec::new(),
        files: Vec::new(),
        cache: FileCache::default(),
        skipped_names: 0,
    };
    for (index, source) in sources.iter().enumerate() {
        let root = match Tree::open(&source.dir) {
            Ok(root) => root,
            Err(ContentError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut skipped_below: Vec<PathBuf> = Vec::new();
        Walk::new(max_depth).run(&root, |visit| {
            if skipped_below.iter().any(|dir| visit.path.starts_with(dir)) {
                return Ok(());
            }
            let Some(relative) = visit.path.to_str() else {
                walked.skipped_names += 1;
                tracing::warn!(
                    path = ?visit.path.as_os_str(),
                    "left out of a snapshot: a name that is not UTF-8"
                );
                if visit.kind == Kind::Dir {
                    skipped_below.push(visit.path.to_owned());
                }
                return Ok(());
            };
            let path = format!("{}/{relative}", source.name);
            let entry = match visit.kind {
                Kind::Dir => {
                    let stat = visit.dir.stat_entry(visit.name)?;
                    Entry {
                        path,
                        kind: EntryKind::Dir,
                        size: 0,
                        mode: stat.st_mode,
                        sha256: None,
                        target: None,
                    }
                }
                Kind::Symlink => {
                    let stat = visit.dir.stat_entry(visit.name)?;
                    let target = visit.dir.read_link(Path::new(visit.name), 4096)?;
                    Entry {
                        path,
                        kind: EntryKind::Symlink,
                        size: 0,
                        mode: stat.st_mode,
                        sha256: None,
                        target: Some(target.to_string_lossy().into_owned()),
                    }
                }
                Kind::File => {
                    let (file, stat) = match visit.dir.open_listed_file(Path::new(visit.name))? {
                        Some(opened) => opened,
                        // Replaced or removed since the listing: not content any more.
                        None => return Ok(()),
                    };
                    let seen = CachedFile::of(&stat, String::new());
                    let sha256 = match previous.files.get(&path) {
                        Some(cached)
                            if *cached
                                == CachedFile {
                                    sha256: cached.sha256.clone(),
                                    ..seen.clone()
                                } =>
                        {
                            cached.sha256.clone()
                        }
                        _ => hash(file)?,
                    };
                    walked.cache.files.insert(
                        path.clone(),
                        CachedFile {
                            sha256: sha256.clone(),
                            ..seen
                        },
                    );
                    walked.files.push(Located {
                        source: index,
                        relative: visit.path.to_owned(),
                    });
                    Entry {
                        path,
                        kind: EntryKind::File,
                        size: u64::try_from(stat.st_size).unwrap_or(0),
                        mode: stat.st_mode,
                        sha256: Some(sha256),
                        target: None,
                    }
                }
                // FIFOs, sockets and devices are not content: never opened.
                Kind::Special(_) => return Ok(()),
            };
            walked.entries.push(entry);
            Ok::<(), crate::SnapshotError>(())
        })?;
    }
    Ok(walked)
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
    pub links: Vec<(PathBuf, String)>,
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
        let (source, relative) = entry
            .path
            .split_once('/')
            .ok_or_else(|| format!("entry `{}` names no source", entry.path))?;
        let target = targets
            .iter()
            .find(|t| t.name == source)
            .ok_or_else(|| format!("entry `{}` is outside every source", entry.path))?;
        let relative = Path::new(relative);
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
                    .target
                    .clone()
                    .ok_or_else(|| format!("link `{}` has no target", entry.path))?;
                plan.links.push((host, target));
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
