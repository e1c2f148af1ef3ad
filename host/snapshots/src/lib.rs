//! Snapshots of Hearth sessions in object storage: content-addressed, incremental, restorable on
//! any worker that shares the store.
//!
//! The store's layout:
//!
//! ```text
//! blobs/<aa>/<sha256>                         one per distinct file content, shared by every
//!                                             snapshot of every session
//! sessions/<session>/snapshots/<name>.json    one manifest per snapshot: paths, kinds, sizes,
//!                                             modes and hashes of the workspace and the git
//!                                             directory; written after all its blobs
//! sessions/<session>/latest/<seq>-<name>      the "latest" pointer: each update is a new object
//!                                             created only if absent (a conditional put every
//!                                             store, the local one included, supports), and the
//!                                             greatest (seq, name) is the latest, so two writers
//!                                             can never silently overwrite each other
//! sessions/<session>/owner/<epoch>            who owns the session from that epoch on (`owner`)
//! workers/<worker>/lease                      which workers are alive, and where (`lease`)
//! tools/registry/<name>.json                  the tools a fleet serves, and their components
//! tools/components/<sha256>                   under `tools/components/` (`tools`)
//! exports/<session>/<name>.tar.zst            whole-session archives
//! ```
//!
//! A snapshot exists once its manifest does; a worker dying half-way leaves blobs no manifest
//! names, which garbage collection removes once they are older than its grace period (so a
//! snapshot in progress never loses a blob it is about to reference).

mod archive;
mod lease;
mod manifest;
mod owner;
mod pointers;
mod store;
mod tools;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use archive::export_archive;
pub use lease::Lease;
pub use manifest::{Entry, EntryKind, FileCache, MANIFEST_VERSION, Manifest};
pub use owner::{Claim, Ended, Owner};
pub use store::{StoreConfig, open, probe};
pub use tools::{ToolListing, ToolRecord, ToolState};

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot store configuration: {0}")]
    Config(String),
    #[error(
        "`{0}` is not a snapshot reference (`<session>` for its latest, or `<session>/<snapshot>`)"
    )]
    BadReference(String),
    #[error("no snapshot `{0}`")]
    NotFound(String),
    /// A blob is missing or does not hash to its name: the snapshot cannot be trusted.
    #[error("snapshot `{snapshot}` is corrupt: {detail}")]
    Corrupt { snapshot: String, detail: String },
    /// The store failed (after its retries).
    #[error("snapshot store: {0}")]
    Store(String),
    /// Something in the session could not be captured: the snapshot is not made.
    #[error("`{path}` could not be captured: {reason}")]
    Capture { path: String, reason: String },
    /// The session's tree is deeper than the limit (`max_depth`).
    #[error(
        "the session's files are nested deeper than the limit of {limit} directories; flatten \
         or delete the deepest directories"
    )]
    TooDeep { limit: usize },
    #[error(
        "`{path}` ({size} bytes) takes the snapshot past {limit} bytes, the session's quota: \
         its files may not add up to more than the session can hold (a sparse file counts at \
         its full size, since snapshots store files whole)"
    )]
    TooLarge { path: String, size: u64, limit: u64 },
    /// A file changed between being hashed and being stored (a program of the session was
    /// writing it): taking the snapshot again finds it as it is now.
    #[error("`{path}` changed while the snapshot was taken")]
    Changed { path: String },
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<hearth_content::ContentError> for SnapshotError {
    fn from(e: hearth_content::ContentError) -> Self {
        match e {
            hearth_content::ContentError::TooDeep { limit } => Self::TooDeep { limit },
            hearth_content::ContentError::Io(e) => Self::Io(e),
            // What the session holds, not a fault of the worker: said as such (422).
            other => Self::Capture {
                path: "a directory of the session".into(),
                reason: other.to_string(),
            },
        }
    }
}

impl From<object_store::Error> for SnapshotError {
    fn from(e: object_store::Error) -> Self {
        Self::Store(e.to_string())
    }
}

impl SnapshotError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "store_misconfigured",
            Self::BadReference(_) => "invalid_snapshot_reference",
            Self::NotFound(_) => "snapshot_not_found",
            Self::Corrupt { .. } => "snapshot_corrupt",
            Self::Store(_) => "store_unavailable",
            Self::TooDeep { .. } => "too_deep",
            Self::TooLarge { .. } => "snapshot_too_large",
            Self::Capture { .. } => "capture_failed",
            Self::Changed { .. } => "session_busy",
            Self::Io(_) => "snapshot_io",
        }
    }
}

/// What a snapshot holds, what garbage collection did, a stored export: answers of the HTTP
/// API, defined once in `hearth-wire`.
pub use hearth_wire::snapshots::{ExportInfo, GcReport, SnapshotInfo};

/// How snapshots are written.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Files larger than this go up in multipart uploads of `part_bytes` parts.
    pub multipart_threshold: u64,
    pub part_bytes: usize,
    /// Blobs uploaded (or downloaded) at once.
    pub concurrency: usize,
    /// What the uploads of one worker may hold in memory at once, all snapshots together: a
    /// small blob's bytes, or two parts of a large one (the part being read and the part being
    /// sent). Uploads wait for room; with the defaults, 8 MiB parts leave room for four large
    /// files at once.
    pub memory_bytes: u64,
    /// The deepest nesting of directories a snapshot or export walks; deeper is
    /// [`SnapshotError::TooDeep`].
    pub max_depth: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            multipart_threshold: 16 * 1024 * 1024,
            part_bytes: 8 * 1024 * 1024,
            concurrency: 8,
            memory_bytes: 64 * 1024 * 1024,
            max_depth: 256,
        }
    }
}

/// A directory a snapshot covers, under the name its entries carry (`workspace`, `git`).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub dir: PathBuf,
}

/// The snapshots of every session in one store.
#[derive(Clone)]
pub struct Snapshots {
    store: Arc<dyn ObjectStore>,
    tuning: Tuning,
    /// The upload memory budget, in KiB permits (see [`Tuning::memory_bytes`]).
    memory: Arc<tokio::sync::Semaphore>,
}

impl Snapshots {
    pub fn new(store: Arc<dyn ObjectStore>, tuning: Tuning) -> Self {
        let kib = (tuning.memory_bytes >> 10).clamp(1, u64::from(u32::MAX >> 1));
        let memory = Arc::new(tokio::sync::Semaphore::new(kib as usize));
        Self {
            store,
            tuning,
            memory,
        }
    }

    /// Waits for `bytes` of the upload memory budget (all of it, if more is asked: one blob
    /// larger than the budget still goes, alone).
    /// (`None` only if the semaphore were closed, which it never is.)
    async fn reserve_memory(&self, bytes: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let budget = (self.tuning.memory_bytes >> 10).clamp(1, u64::from(u32::MAX >> 1));
        let kib = (bytes.div_ceil(1024)).clamp(1, budget) as u32;
        self.memory.clone().acquire_many_owned(kib).await.ok()
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    // -----------------------------------------------------------------------------------------
    // Taking

    /// Snapshots `sources` as a new snapshot of `session`. `cache` (kept by the caller between
    /// snapshots) lets unchanged files skip hashing and blobs the previous snapshot already
    /// holds skip uploading; it is updated in place. With `max_bytes` (the session's quota),
    /// files that add up to more fail the snapshot before any is read: a sparse file of a
    /// terabyte must not become a terabyte in the store.
    pub async fn take(
        &self,
        session: &str,
        sources: &[Source],
        cache: &mut FileCache,
        max_bytes: Option<u64>,
    ) -> Result<SnapshotInfo, SnapshotError> {
        self.take_as(session, 0, sources, cache, max_bytes).await
    }

    /// Like [`Snapshots::take`], published at `epoch`: the epoch of the session's owner this
    /// writer holds (see [`Owner`]). Its latest pointer is named by that epoch, and a pointer
    /// of a greater epoch always wins: a worker that lost the session can still write, but never
    /// again make its state the latest (see `pointers`).
    pub async fn take_as(
        &self,
        session: &str,
        epoch: u64,
        sources: &[Source],
        cache: &mut FileCache,
        max_bytes: Option<u64>,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let created_at_ms = now_ms();
        let name = format!(
            "{created_at_ms:013}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let walked = {
            let (sources, previous) = (sources.to_vec(), cache.clone());
            let max_depth = self.tuning.max_depth;
            tokio::task::spawn_blocking(move || {
                manifest::walk(&sources, &previous, max_depth, max_bytes)
            })
            .await
            .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))??
        };
        let mut uploads: BTreeMap<String, (manifest::Located, u64)> = BTreeMap::new();
        let files = walked.entries.iter().filter(|e| e.kind == EntryKind::File);
        for (entry, located) in files.zip(&walked.files) {
            if let Some(hash) = &entry.sha256
                && !cache.blobs.contains(hash)
            {
                uploads.insert(hash.clone(), (located.clone(), entry.size));
            }
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            session: session.to_owned(),
            name: name.clone(),
            created_at_ms,
            entries: walked.entries,
        };
        // Every blob the manifest will name, announced before the first upload: garbage
        // collection spares them from then on, whatever its grace (see `collect_garbage`).
        let intent = intent_path(session, &name);
        let announced = Intent {
            blobs: manifest.blob_hashes().into_iter().collect(),
        };
        let announced = serde_json::to_vec(&announced)
            .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        self.store.put(&intent, announced.into()).await?;
        let stored = self
            .store_snapshot(&manifest, sources, uploads, epoch)
            .await;
        // Done or failed, the manifest (or nothing) now speaks for the blobs.
        if let Err(e) = self.store.delete(&intent).await {
            tracing::warn!(error = %e, intent = %intent, "could not remove a snapshot's intent");
        }
        let (results, latest) = stored?;
        *cache = walked.cache;
        cache.blobs = manifest.blob_hashes();
        Ok(SnapshotInfo {
            id: format!("{session}/{name}"),
            session: session.to_owned(),
            created_at_ms,
            files: manifest.file_count(),
            bytes: manifest.total_bytes(),
            uploaded_blobs: results.len(),
            uploaded_bytes: results.iter().map(|(bytes, _)| bytes).sum(),
            multipart_uploads: results.iter().filter(|(_, multipart)| *multipart).count(),
            objects_written: results.len() + 2,
            latest,
        })
    }

    /// Uploads what the store lacks, then the manifest, then moves the latest pointer. Returns
    /// each upload's (bytes, multipart) and whether the snapshot is the latest.
    async fn store_snapshot(
        &self,
        manifest: &Manifest,
        sources: &[Source],
        uploads: BTreeMap<String, (manifest::Located, u64)>,
        epoch: u64,
    ) -> Result<(Vec<(u64, bool)>, bool), SnapshotError> {
        // Owned items and a cloned handle per upload: the futures must not borrow across the
        // stream, or they could not be sent between threads.
        let sources = Arc::new(sources.to_vec());
        let results: Vec<(u64, bool)> = futures_util::stream::iter(uploads)
            .map(|(hash, (located, size))| {
                let (this, sources) = (self.clone(), sources.clone());
                async move { this.upload_blob(&hash, &sources, &located, size).await }
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect()
            .await?;
        let manifest_bytes = serde_json::to_vec(manifest)
            .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        self.store
            .put(
                &manifest_path(&manifest.session, &manifest.name),
                manifest_bytes.into(),
            )
            .await?;
        let latest = self
            .advance_latest(&manifest.session, &manifest.name, epoch)
            .await?;
        Ok((results, latest))
    }

    /// Uploads one file as the blob `hash`, re-hashing what it sends: a file that changed since
    /// it was hashed fails the snapshot instead of storing a blob under the wrong name. The file
    /// is opened again through `hearth-content` (a link or FIFO swapped in meanwhile is refused,
    /// never followed or waited on) and read up to its hashed size only.
    async fn upload_blob(
        &self,
        hash: &str,
        sources: &[Source],
        located: &manifest::Located,
        size: u64,
    ) -> Result<(u64, bool), SnapshotError> {
        let location = blob_path(hash);
        let shown = located.relative.display().to_string();
        let changed = || SnapshotError::Changed {
            path: shown.clone(),
        };
        let dir = sources
            .get(located.source)
            .map(|s| s.dir.clone())
            .ok_or_else(changed)?;
        let relative = located.relative.clone();
        let (file, _) = tokio::task::spawn_blocking(move || {
            hearth_content::Tree::open(&dir)?.open_file(&relative)
        })
        .await
        .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?
        .map_err(|_| changed())?;
        if size <= self.tuning.multipart_threshold {
            let _memory = self.reserve_memory(size).await;
            let bytes = tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::with_capacity(size as usize);
                file.take(size + 1).read_to_end(&mut bytes).map(|_| bytes)
            })
            .await
            .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))??;
            if hex(&Sha256::digest(&bytes)) != hash {
                return Err(changed());
            }
            self.store.put(&location, Bytes::from(bytes).into()).await?;
            return Ok((size, false));
        }
        // One part being read, one being sent: the writer is let have one part in flight.
        let _memory = self.reserve_memory(2 * self.tuning.part_bytes as u64).await;
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.tuning.part_bytes);
        let mut file = file.take(size + 1);
        let mut hasher = Sha256::new();
        let mut chunk = vec![0u8; self.tuning.part_bytes];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
            writer.wait_for_capacity(0).await?;
            writer.write(&chunk[..n]);
        }
        if hex(&hasher.finalize()) != hash {
            writer.abort().await?;
            return Err(changed());
        }
        writer.finish().await?;
        Ok((size, true))
    }

    // -----------------------------------------------------------------------------------------
    // Listing

    /// The session's snapshots, oldest first.
    pub async fn list(&self, session: &str) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let latest = self
            .latest_pointer(session)
            .await?
            .map(|pointer| pointer.name);
        let mut names = self.manifest_names(session).await?;
        names.sort();
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            let manifest = match self.manifest(session, &name).await {
                Ok(manifest) => manifest,
                Err(SnapshotError::NotFound(_)) => continue, // pruned meanwhile
                Err(e) => return Err(e),
            };
            all.push(SnapshotInfo {
                id: format!("{session}/{name}"),
                session: session.to_owned(),
                created_at_ms: manifest.created_at_ms,
                files: manifest.file_count(),
                bytes: manifest.total_bytes(),
                uploaded_blobs: 0,
                uploaded_bytes: 0,
                multipart_uploads: 0,
                objects_written: 0,
                latest: latest.as_deref() == Some(name.as_str()),
            });
        }
        Ok(all)
    }

    async fn manifest_names(&self, session: &str) -> Result<Vec<String>, SnapshotError> {
        let prefix = StorePath::from(format!("sessions/{session}/snapshots"));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect())
    }

    async fn manifest(&self, session: &str, name: &str) -> Result<Manifest, SnapshotError> {
        let id = format!("{session}/{name}");
        let bytes = match self.store.get(&manifest_path(session, name)).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Err(SnapshotError::NotFound(id)),
            Err(e) => return Err(e.into()),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Corrupt {
                snapshot: id.clone(),
                detail: format!("unreadable manifest: {e}"),
            })?;
        if manifest.version > MANIFEST_VERSION {
            return Err(SnapshotError::Corrupt {
                snapshot: id,
                detail: format!(
                    "manifest format {} is newer than this worker's ({MANIFEST_VERSION})",
                    manifest.version
                ),
            });
        }
        Ok(manifest)
    }

    /// `<session>` (its latest) or `<session>/<name>` to the manifest.
    pub async fn resolve(&self, reference: &str) -> Result<Manifest, SnapshotError> {
        let bad = || SnapshotError::BadReference(reference.to_owned());
        let (session, name) = match reference.split_once('/') {
            Some((session, name)) => (session, name.to_owned()),
            None => {
                let pointer = self
                    .latest_pointer(reference)
                    .await?
                    .ok_or_else(|| SnapshotError::NotFound(reference.to_owned()))?;
                (reference, pointer.name)
            }
        };
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !plain(session) || !plain(&name) {
            return Err(bad());
        }
        self.manifest(session, &name).await
    }

    // -----------------------------------------------------------------------------------------
    // Restoring

    /// Rebuilds `manifest` into `targets` (empty directories, by source name). Every blob is
    /// checked against its hash. Returns the cache a following snapshot starts from.
    pub async fn restore(
        &self,
        manifest: &Manifest,
        targets: &[Source],
    ) -> Result<FileCache, SnapshotError> {
        let id = format!("{}/{}", manifest.session, manifest.name);
        let plan =
            manifest::plan_restore(manifest, targets).map_err(|detail| SnapshotError::Corrupt {
                snapshot: id.clone(),
                detail,
            })?;
        for dir in &plan.dirs {
            std::fs::create_dir_all(dir)?;
        }
        futures_util::stream::iter(plan.files.clone())
            .map(|(path, entry)| {
                let (this, id) = (self.clone(), id.clone());
                async move { this.restore_file(&id, &path, &entry).await }
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        // Links last: nothing restored afterwards can be written through one. Each is made
        // through `hearth-content`, so a link the manifest (not trusted) names on the way to
        // another is refused, never followed out of the session.
        for (root, relative, target) in &plan.links {
            let made =
                hearth_content::Tree::open(root).and_then(|tree| tree.symlink(target, relative));
            if let Err(e) = made {
                return Err(SnapshotError::Corrupt {
                    snapshot: id.clone(),
                    detail: format!("link `{}` cannot be made: {e}", relative.display()),
                });
            }
        }
        Ok(manifest::cache_after_restore(manifest, &plan))
    }

    /// Writes one file from its blob as the blob streams in: memory holds one chunk, whatever
    /// the file's size. Runs of zero blocks are skipped (the file is restored sparse, as it most
    /// likely was). The content is checked against its hash and size as it goes; a mismatch
    /// removes the file and fails the restore.
    async fn restore_file(
        &self,
        id: &str,
        path: &Path,
        entry: &Entry,
    ) -> Result<(), SnapshotError> {
        let hash = entry.sha256.as_deref().unwrap_or_default();
        let corrupt = |detail: String| SnapshotError::Corrupt {
            snapshot: id.to_owned(),
            detail,
        };
        let got = match self.store.get(&blob_path(hash)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(corrupt(format!("the blob of `{}` is missing", entry.path)));
            }
            Err(e) => return Err(e.into()),
        };
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(path).await?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            if written > entry.size {
                break;
            }
            hasher.update(&chunk);
            write_sparse(&mut file, &chunk).await?;
        }
        // Writes happen in the background: an error (a full disk) shows at the flush, and must
        // fail the restore rather than leave zeros where the data should be.
        file.flush().await?;
        file.set_len(written.min(entry.size)).await?;
        if written != entry.size || hex(&hasher.finalize()) != hash {
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
            return Err(corrupt(format!(
                "the blob of `{}` does not match its hash",
                entry.path
            )));
        }
        // Safe permission bits only: a restored file is root's on disk, and setuid, setgid,
        // sticky or world-write bits from a store (which is not trusted) or from a jailed
        // program have no business on it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(hearth_content::safe_mode(
            entry.mode,
        )))
        .await?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Retention and garbage collection

    /// Deletes the session's oldest manifests beyond `keep` (never the latest). Returns how many.
    pub async fn prune(&self, session: &str, keep: usize) -> Result<usize, SnapshotError> {
        let latest = self
            .latest_pointer(session)
            .await?
            .map(|pointer| pointer.name);
        let mut names = self.manifest_names(session).await?;
        names.sort();
        let excess = names.len().saturating_sub(keep.max(1));
        let mut deleted = 0;
        for name in names.iter().take(excess) {
            if Some(name) != latest.as_ref() {
                self.store.delete(&manifest_path(session, name)).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Deletes every blob that no manifest and no snapshot in progress references and that is
    /// older than `grace`. A snapshot announces all its blobs in an intent before it uploads
    /// any, and removes the intent only after its manifest is written; this lists the blobs
    /// first and what references them second, so a blob of a snapshot in progress is always
    /// spared, whatever `grace` says and whatever the workers' clocks (`grace` only protects
    /// blobs of writers older than intents).
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport, SnapshotError> {
        let mut report = GcReport::default();
        // The blobs first, then what references them: a blob uploaded after this listing is
        // not a candidate, and one uploaded before it was announced (by an intent) before its
        // upload, so the intent is read below. No clock decides what is safe.
        let blobs: Vec<_> = self
            .store
            .list(Some(&StorePath::from("blobs")))
            .try_collect()
            .await?;
        let mut referenced = HashSet::new();
        let records: Vec<_> = self
            .store
            .list(Some(&StorePath::from("sessions")))
            .try_collect()
            .await?;
        let abandoned_before = chrono::Utc::now() - chrono::Duration::hours(INTENT_HOURS);
        for meta in records {
            let location = meta.location.as_ref();
            // `sessions/<id>/snapshots/<name>.json` or `sessions/<id>/inflight/<name>.json`,
            // by position: a session may be called `inflight`.
            let parts: Vec<&str> = location.split('/').collect();
            let (kind, session, name) = match parts.as_slice() {
                ["sessions", session, kind @ ("snapshots" | "inflight"), file] => {
                    match file.strip_suffix(".json") {
                        Some(name) => (*kind, *session, name),
                        None => continue,
                    }
                }
                _ => continue,
            };
            let bytes = match self.store.get(&meta.location).await {
                Ok(got) => Some(got.bytes().await?),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let unreadable = |e: serde_json::Error| SnapshotError::Corrupt {
                snapshot: location.to_owned(),
                detail: format!("unreadable, nothing collected: {e}"),
            };
            if kind == "inflight" {
                let Some(bytes) = bytes else {
                    // Gone since the listing: the snapshot finished (its manifest, written
                    // before the intent was removed, may postdate the listing: read it now) or
                    // failed (then there is none).
                    match self.manifest(session, name).await {
                        Ok(manifest) => referenced.extend(manifest.blob_hashes()),
                        Err(SnapshotError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                    continue;
                };
                // A worker that died mid-snapshot leaves its intent: a day later it protects
                // nothing any more (the only use of a clock here, with a day's margin).
                if meta.last_modified < abandoned_before {
                    let _ = self.store.delete(&meta.location).await;
                    continue;
                }
                let intent: Intent = serde_json::from_slice(&bytes).map_err(unreadable)?;
                report.in_progress += 1;
                referenced.extend(intent.blobs);
                continue;
            }
            let Some(bytes) = bytes else { continue };
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(unreadable)?;
            report.manifests += 1;
            referenced.extend(manifest.blob_hashes());
        }
        // A grace longer than the calendar reaches back spares everything (no panic on the
        // subtraction: any `grace_s` a caller sends is a valid, if odd, request).
        let cutoff = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|grace| chrono::Utc::now().checked_sub_signed(grace))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        for meta in blobs {
            report.blobs += 1;
            let hash = meta.location.filename().unwrap_or_default();
            if referenced.contains(hash) {
                continue;
            }
            if meta.last_modified > cutoff {
                report.kept_recent += 1;
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => report.deleted += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(report)
    }

    /// Puts a session archive (see [`export_archive`]), as it streams in, in the store; returns
    /// its key and size.
    pub async fn put_export(
        &self,
        session: &str,
        mut archive: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> Result<(String, u64), SnapshotError> {
        let key = format!("exports/{session}/{:013}.tar.zst", now_ms());
        let location = StorePath::from(key.as_str());
        // In parts as it comes: memory holds a part or two, whatever the archive's size, and
        // counts against the same budget as snapshot uploads.
        let _memory = self.reserve_memory(2 * self.tuning.part_bytes as u64).await;
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.tuning.part_bytes);
        let mut size = 0u64;
        while let Some(chunk) = archive.recv().await {
            size += chunk.len() as u64;
            writer.wait_for_capacity(0).await?;
            writer.write(&chunk);
        }
        writer.finish().await?;
        Ok((key, size))
    }

    /// The exports stored for `session`, oldest first.
    pub async fn list_exports(&self, session: &str) -> Result<Vec<ExportInfo>, SnapshotError> {
        let prefix = StorePath::from(format!("exports/{session}"));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut exports: Vec<ExportInfo> = metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_owned();
                let created_at_ms = export_time(&name)?;
                Some(ExportInfo {
                    key: meta.location.to_string(),
                    name,
                    bytes: meta.size,
                    created_at_ms,
                })
            })
            .collect();
        exports.sort_by_key(|e| e.created_at_ms);
        Ok(exports)
    }

    /// The archive of export `name` of `session`, as a stream of chunks straight from the
    /// store (nothing of it held whole). `None` for a name that is not an export's.
    pub async fn get_export(
        &self,
        session: &str,
        name: &str,
    ) -> Result<
        Option<(
            u64,
            futures_util::stream::BoxStream<'static, Result<Bytes, SnapshotError>>,
        )>,
        SnapshotError,
    > {
        if export_time(name).is_none() {
            return Ok(None);
        }
        let location = StorePath::from(format!("exports/{session}/{name}"));
        match self.store.get(&location).await {
            Ok(got) => {
                let size = got.meta.size;
                let stream = got.into_stream().map_err(SnapshotError::from).boxed();
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an export (one whose archive turned out cut short).
    pub async fn delete_export(&self, key: &str) -> Result<(), SnapshotError> {
        Ok(self.store.delete(&StorePath::from(key)).await?)
    }
}

/// When an export named `name` was made, if `name` is an export's (`<13 digits>.tar.zst`).
fn export_time(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".tar.zst")?;
    (digits.len() == 13 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// After this many hours an intent is taken for a dead worker's and no longer protects blobs.
const INTENT_HOURS: i64 = 24;

fn blob_path(hash: &str) -> StorePath {
    StorePath::from(format!("blobs/{}/{hash}", &hash[..2.min(hash.len())]))
}

/// The block a restore leaves as a hole when it holds only zeros.
const SPARSE_BLOCK: usize = 4096;

/// Writes `chunk` at the file's position, seeking over runs of zero blocks instead of writing
/// them (the caller sets the length at the end, so a trailing hole counts).
async fn write_sparse(file: &mut tokio::fs::File, chunk: &[u8]) -> std::io::Result<()> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let mut rest = chunk;
    while !rest.is_empty() {
        let zero = |block: &[u8]| block.iter().all(|&b| b == 0);
        let blocks = rest.chunks(SPARSE_BLOCK);
        let holes = blocks
            .clone()
            .take_while(|b| zero(b))
            .map(<[u8]>::len)
            .sum::<usize>();
        if holes > 0 {
            file.seek(std::io::SeekFrom::Current(holes as i64)).await?;
            rest = &rest[holes..];
            continue;
        }
        let data = blocks
            .take_while(|b| !zero(b))
            .map(<[u8]>::len)
            .sum::<usize>();
        file.write_all(&rest[..data]).await?;
        rest = &rest[data..];
    }
    Ok(())
}

/// A snapshot in progress: the blobs its manifest will name.
#[derive(Serialize, Deserialize)]
struct Intent {
    blobs: Vec<String>,
}

/// Where a snapshot in progress announces its blobs.
fn intent_path(session: &str, name: &str) -> StorePath {
    StorePath::from(format!("sessions/{session}/inflight/{name}.json"))
}

fn manifest_path(session: &str, name: &str) -> StorePath {
    StorePath::from(format!("sessions/{session}/snapshots/{name}.json"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
