//! A snapshot's manifest: what it holds, and how it is made from directories and put back.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    fn of(meta: &std::fs::Metadata, sha256: String) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
            sha256,
        }
    }
}

/// The entries of a walk, the host path of each, and the cache of its files.
pub(crate) struct Walked {
    pub entries: Vec<Entry>,
    pub host_paths: Vec<PathBuf>,
    pub cache: FileCache,
}

/// Walks `sources` without following symlinks, hashing every file the cache cannot vouch for.
/// Sockets, pipes and devices are skipped: they are not content.
pub(crate) fn walk(sources: &[Source], previous: &FileCache) -> std::io::Result<Walked> {
    let mut walked = Walked {
        entries: Vec::new(),
        host_paths: Vec::new(),
        cache: FileCache::default(),
    };
    for source in sources {
        if source.dir.is_dir() {
            walk_dir(&source.dir, &source.name, previous, &mut walked)?;
        }
    }
    Ok(walked)
}

fn walk_dir(
    dir: &Path,
    prefix: &str,
    previous: &FileCache,
    walked: &mut Walked,
) -> std::io::Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let Some(name) = child.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %child.path().display(), "skipping a name that is not UTF-8");
            continue;
        };
        let path = format!("{prefix}/{name}");
        let host = child.path();
        let meta = std::fs::symlink_metadata(&host)?;
        let mode = meta.mode();
        let kind = meta.file_type();
        let entry = if kind.is_dir() {
            Entry {
                path: path.clone(),
                kind: EntryKind::Dir,
                size: 0,
                mode,
                sha256: None,
                target: None,
            }
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&host)?;
            Entry {
                path: path.clone(),
                kind: EntryKind::Symlink,
                size: 0,
                mode,
                sha256: None,
                target: Some(target.to_string_lossy().into_owned()),
            }
        } else if kind.is_file() {
            let sha256 = match previous.files.get(&path) {
                Some(cached) if *cached == CachedFile::of(&meta, cached.sha256.clone()) => {
                    cached.sha256.clone()
                }
                _ => hash_file(&host)?,
            };
            walked
                .cache
                .files
                .insert(path.clone(), CachedFile::of(&meta, sha256.clone()));
            Entry {
                path: path.clone(),
                kind: EntryKind::File,
                size: meta.len(),
                mode,
                sha256: Some(sha256),
                target: None,
            }
        } else {
            continue;
        };
        let is_dir = entry.kind == EntryKind::Dir;
        walked.entries.push(entry);
        walked.host_paths.push(host.clone());
        if is_dir {
            walk_dir(&host, &path, previous, walked)?;
        }
    }
    Ok(())
}

pub(crate) fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
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
            cache
                .files
                .insert(entry.path.clone(), CachedFile::of(&meta, hash.clone()));
        }
    }
    cache
}
