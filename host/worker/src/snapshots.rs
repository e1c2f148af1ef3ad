//! Snapshots of sessions: on demand (`POST /v1/sessions/{id}/snapshots`), in the background
//! after changes (debounced), at delete when asked, and restore at create (`from_snapshot`).
//!
//! A snapshot holds the session shared (no writer runs meanwhile, readers do) plus its git
//! mutex, and covers the workspace and the git directory. Each session's cache of file hashes
//! and of the blobs its latest snapshot references lives in its host-only state, so the next
//! snapshot reads and uploads only what changed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_snapshots::{FileCache, SnapshotError, SnapshotInfo, Snapshots, Source, StoreConfig};
use hearth_wire::sessions::SnapshotState;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, SnapshotConfig};
use crate::session_snapshots::Status;
use crate::sessions::{Session, Sessions, now_ms};

/// Says in the session's snapshot status that a snapshot failed, and when to try again.
fn record_failure(session: &Session, e: &SnapshotError) {
    let mut status = session
        .snapshots
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    status.failures += 1;
    status.error = Some(e.to_string());
    let backoff = (1_000u64 << status.failures.min(6)).min(MAX_BACKOFF_MS);
    status.next_attempt_ms = now_ms() + backoff;
}

/// How many times a snapshot is taken when a file changed while it was stored (a program of
/// the session writing it).
const CHANGED_TRIES: usize = 3;

/// The cache file, in a session's state directory.
const CACHE_FILE: &str = "snapshot-cache.json";
/// Background snapshots look for work this often.
const TICK: Duration = Duration::from_millis(250);
/// Longest wait between background attempts while the store is failing.
const MAX_BACKOFF_MS: u64 = 60_000;

/// The worker's snapshot facility.
pub struct SnapshotService {
    pub snapshots: Snapshots,
    pub config: SnapshotConfig,
    /// Sessions one of whose snapshots was found missing a blob: their next snapshot trusts
    /// none of the blobs its cache remembers and uploads every one again.
    distrusted: std::sync::Mutex<std::collections::HashSet<String>>,
    /// This worker's name in ownership records.
    pub worker: String,
}

/// What `state/snapshot-cache.json` holds.
#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    cache: FileCache,
    last: Option<SnapshotInfo>,
}

/// How long the start-up probe of the store may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why taking a snapshot failed: the session went away while it waited, or the snapshot did.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error(transparent)]
    Session(#[from] crate::sessions::SessionError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl SnapshotService {
    pub fn new(
        config: &SnapshotConfig,
        data_dir: &Path,
        max_depth: usize,
        worker: String,
    ) -> Result<Self, ConfigError> {
        let store_config = StoreConfig {
            url: config.store_url.clone(),
            options: config.store_options.clone(),
            credentials_from_env: config.credentials_from_env,
            max_retries: config.max_retries,
            retry_timeout: Duration::from_secs_f64(config.retry_timeout_s.max(0.0)),
        };
        let store = hearth_snapshots::open(&store_config, data_dir)
            .map_err(|e| ConfigError::Snapshots(e.to_string()))?;
        let mib = 1024 * 1024;
        let tuning = hearth_snapshots::Tuning {
            multipart_threshold: config.multipart_threshold_mib * mib,
            part_bytes: (config.part_mib * mib) as usize,
            memory_bytes: config.memory_mib * mib,
            max_depth,
            ..Default::default()
        };
        Ok(Self {
            snapshots: Snapshots::new(store, tuning),
            config: config.clone(),
            distrusted: std::sync::Mutex::default(),
            worker,
        })
    }

    /// Makes this worker the owner of session `id` at a new epoch (see
    /// `hearth_snapshots::Owner`): from now on only what this worker publishes can be the
    /// session's latest snapshot.
    pub async fn claim(
        &self,
        id: &str,
        terms: Option<serde_json::Value>,
    ) -> Result<u64, SnapshotError> {
        let owner = self.snapshots.claim(id, &self.worker, terms).await?;
        tracing::info!(session = %id, epoch = owner.epoch, "session claimed");
        Ok(owner.epoch)
    }

    /// Whether another worker took session `session` over since this one claimed it: then it
    /// is parked here (and `Err` says so). A session not claimed yet is claimed now.
    async fn fence(&self, sessions: &Sessions, session: &Session) -> Result<u64, TakeError> {
        let mine = session.epoch();
        if mine == 0 {
            let epoch = self.claim(&session.id, None).await?;
            sessions.set_epoch(&session.id, epoch)?;
            return Ok(epoch);
        }
        match self.snapshots.owner(&session.id).await? {
            Some(owner) if owner.epoch > mine => {
                sessions
                    .park(&session.id, &owner.worker, owner.epoch)
                    .await?;
                Err(crate::sessions::SessionError::Moved {
                    id: session.id.clone(),
                    worker: owner.worker,
                    epoch: owner.epoch,
                }
                .into())
            }
            _ => Ok(mine),
        }
    }

    /// Parks every session of `sessions` that another worker took over while this one was
    /// away (at start-up). A store that does not answer leaves them served (and said).
    pub async fn fence_all(&self, sessions: &Sessions) {
        for session in sessions.list() {
            if session.epoch() == 0 {
                continue;
            }
            if let Err(e) = self.fence(sessions, &session).await {
                match e {
                    TakeError::Session(crate::sessions::SessionError::Moved { .. }) => {}
                    other => {
                        tracing::warn!(session = %session.id, error = %other, "could not check who owns the session; it is served")
                    }
                }
            }
        }
    }

    /// Proves the store works (a write, read and delete), at most `PROBE_TIMEOUT`: the worker
    /// refuses to start on a store it could never snapshot to.
    pub async fn probe(&self) -> Result<(), ConfigError> {
        let probed = tokio::time::timeout(
            PROBE_TIMEOUT,
            hearth_snapshots::probe(self.snapshots.store().as_ref()),
        )
        .await;
        let why = match probed {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("the store did not answer a probe within {PROBE_TIMEOUT:?}"),
        };
        Err(ConfigError::Snapshots(format!(
            "{why}; check `snapshots.store_url` and `snapshots.store_options` (endpoint, region, \
             keys, bucket)"
        )))
    }

    /// Takes a snapshot of `session` now; answers once it is durable.
    pub async fn take(
        &self,
        sessions: &Sessions,
        session: &Arc<Session>,
    ) -> Result<SnapshotInfo, TakeError> {
        // Who owns it first: a session another worker took over is parked, not published.
        let epoch = match self.fence(sessions, session).await {
            Ok(epoch) => epoch,
            Err(TakeError::Snapshot(e)) => {
                record_failure(session, &e);
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        let state = &session.snapshots;
        let _running = state.running.lock().await;
        let _guard = session.lock(false).await?;
        let changes = session.changes();
        let mut persisted = read_persisted(session);
        let distrusted = self
            .distrusted
            .lock()
            .map(|mut d| d.remove(&session.id))
            .unwrap_or(false);
        if distrusted {
            persisted.cache.blobs.clear();
        }
        let sources = sources(session);
        // What the session can hold is what one of its snapshots may store.
        let max_bytes = session.usage().map(|usage| usage.bytes_limit);
        // The git mutex keeps status/log/diff (which refresh the index) out while the git
        // directory is read; the shared session lock keeps every writer out.
        let git_lock = session.git_lock_async().await;
        // A program of the session may be writing a file as it is stored: the walk is taken
        // again (the cache makes that cheap) a few times before the snapshot gives up.
        let mut taken = Err(hearth_snapshots::SnapshotError::Changed {
            path: String::new(),
        });
        for _ in 0..CHANGED_TRIES {
            taken = self
                .snapshots
                .take_as(
                    &session.id,
                    epoch,
                    &sources,
                    &mut persisted.cache,
                    max_bytes,
                )
                .await;
            if !matches!(taken, Err(hearth_snapshots::SnapshotError::Changed { .. })) {
                break;
            }
        }
        drop(git_lock);
        let info = match taken {
            Ok(info) => info,
            Err(e) => {
                record_failure(session, &e);
                return Err(e.into());
            }
        };
        state.snapshotted_changes.store(changes, Ordering::Release);
        persisted.last = Some(info.clone());
        write_persisted(session, &persisted);
        *state.status.lock().unwrap_or_else(|p| p.into_inner()) = Status {
            last: Some(info.clone()),
            ..Status::default()
        };
        if let Err(e) = self.snapshots.prune(&session.id, self.config.keep).await {
            tracing::warn!(session = %session.id, error = %e, "pruning old snapshots failed");
        }
        Ok(info)
    }

    /// Whether a snapshot of `session` may be tried now (not while a failed one waits for its
    /// retry, with backoff).
    pub fn may_try(&self, session: &Session) -> bool {
        session
            .snapshots
            .status
            .lock()
            .map(|s| now_ms() >= s.next_attempt_ms)
            .unwrap_or(false)
    }

    /// What session info shows: the last durable snapshot, whether changes are pending, and
    /// the last error while the store fails.
    pub fn state(&self, session: &Session) -> SnapshotState {
        let state = &session.snapshots;
        self.load_status(session);
        let status = state.status.lock().map(|s| s.clone()).unwrap_or_default();
        SnapshotState {
            last: status.last,
            pending: session.changed_since(state.snapshotted_changes.load(Ordering::Acquire)),
            error: status.error,
        }
    }

    /// A restarted worker reads what its sessions' last snapshots were.
    fn load_status(&self, session: &Session) {
        let state = &session.snapshots;
        if state.loaded.swap(true, Ordering::AcqRel) {
            return;
        }
        let last = read_persisted(session).last;
        if let Ok(mut status) = state.status.lock()
            && status.last.is_none()
        {
            status.last = last;
        }
    }

    /// Fills a new session from `reference` (see [`Snapshots::resolve`]).
    pub async fn restore(
        &self,
        reference: &str,
        workspace: &Path,
        git_dir: &Path,
        state_dir: &Path,
    ) -> Result<(), SnapshotError> {
        let manifest = self.snapshots.resolve(reference).await?;
        let targets = [
            Source {
                name: "workspace".into(),
                dir: workspace.to_owned(),
            },
            Source {
                name: "git".into(),
                dir: git_dir.to_owned(),
            },
        ];
        let restored = self.snapshots.restore(&manifest, &targets).await;
        if let Err(SnapshotError::Corrupt { .. }) = &restored {
            // Its blobs are not all there: the session's next snapshot must not count on them.
            if let Ok(mut distrusted) = self.distrusted.lock() {
                distrusted.insert(manifest.session.clone());
            }
        }
        let mut cache = restored?;
        // The state directory is in the session's directory, which is named by its id (the
        // workspace and the git directory may be on the session's volume, elsewhere).
        let session_id = state_dir
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        if session_id.as_deref() != Some(manifest.session.as_str()) {
            // Blobs another session's manifest references may be pruned and collected before
            // this session's first manifest references them: its first snapshot uploads all.
            cache.blobs.clear();
        }
        {
            let persisted = Persisted { cache, last: None };
            let path = state_dir.join(CACHE_FILE);
            let _ = std::fs::write(path, serde_json::to_vec(&persisted).unwrap_or_default());
        }
        Ok(())
    }

    /// Runs forever: snapshots every session whose last change is `auto_delay_s` old and not
    /// yet in a snapshot. Failures back off, and the next attempt catches up.
    pub async fn run_background(self: Arc<Self>, sessions: Arc<Sessions>) {
        let delay_ms = (self.config.auto_delay_s * 1000.0) as u64;
        if delay_ms == 0 {
            return;
        }
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let now = now_ms();
            for session in sessions.list() {
                let state = &session.snapshots;
                let pending =
                    session.changed_since(state.snapshotted_changes.load(Ordering::Acquire));
                let due = now.saturating_sub(session.last_change_ms()) >= delay_ms;
                if pending && due && self.may_try(&session) && state.running.try_lock().is_ok() {
                    let (service, sessions) = (self.clone(), sessions.clone());
                    tokio::spawn(async move {
                        match service.take(&sessions, &session).await {
                            Ok(info) => {
                                tracing::info!(snapshot = %info.id, uploaded = info.uploaded_blobs, "background snapshot")
                            }
                            Err(e) => {
                                tracing::warn!(session = %session.id, error = %e, "background snapshot failed; will retry")
                            }
                        }
                    });
                }
            }
        }
    }
}

pub fn sources(session: &Session) -> Vec<Source> {
    vec![
        Source {
            name: "workspace".into(),
            dir: session.workspace_dir().to_owned(),
        },
        Source {
            name: "git".into(),
            dir: session.git_dir(),
        },
    ]
}

fn read_persisted(session: &Session) -> Persisted {
    std::fs::read(session.state_dir().join(CACHE_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_persisted(session: &Session, persisted: &Persisted) {
    let path = session.state_dir().join(CACHE_FILE);
    let temp = path.with_extension("tmp");
    let written = serde_json::to_vec(persisted)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&temp, bytes))
        .and_then(|()| std::fs::rename(&temp, &path));
    if let Err(e) = written {
        // Only a cost: the next snapshot hashes everything again.
        tracing::warn!(session = %session.id, error = %e, "could not keep the snapshot cache");
    }
}
