//! Snapshots of sessions: on demand (`POST /v1/sessions/{id}/snapshots`), in the background
//! after changes (debounced), at delete when asked, and restore at create (`from_snapshot`).
//!
//! A snapshot holds the session shared (no writer runs meanwhile, readers do) plus its git
//! mutex, and covers the workspace and the git directory. Each session's cache of file hashes
//! and of the blobs its latest snapshot references lives in its host-only state, so the next
//! snapshot reads and uploads only what changed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_snapshots::{FileCache, SnapshotError, SnapshotInfo, Snapshots, Source, StoreConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::App;
use crate::config::{ConfigError, SnapshotConfig};
use crate::error::ApiError;
use crate::sessions::{Session, now_ms};

/// The cache file, in a session's state directory.
const CACHE_FILE: &str = "snapshot-cache.json";
/// Background snapshots look for work this often.
const TICK: Duration = Duration::from_millis(250);
/// Longest wait between background attempts while the store is failing.
const MAX_BACKOFF_MS: u64 = 60_000;

/// The worker's snapshot facility.
pub struct SnapshotService {
    pub snapshots: Snapshots,
    config: SnapshotConfig,
    /// Sessions one of whose snapshots was found missing a blob: their next snapshot trusts
    /// none of the blobs its cache remembers and uploads every one again.
    distrusted: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// One session's snapshot bookkeeping.
#[derive(Default)]
pub struct SessionSnapshots {
    /// The change count the last durable snapshot holds.
    snapshotted_changes: AtomicU64,
    running: tokio::sync::Mutex<()>,
    status: std::sync::Mutex<Status>,
    /// Set once the persisted status has been read back (after a restart).
    loaded: AtomicBool,
}

impl SessionSnapshots {
    /// The change count the last durable snapshot holds.
    pub fn snapshotted_changes(&self) -> u64 {
        self.snapshotted_changes.load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Status {
    last: Option<SnapshotInfo>,
    error: Option<String>,
    failures: u32,
    #[serde(skip)]
    next_attempt_ms: u64,
}

/// What `state/snapshot-cache.json` holds.
#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    cache: FileCache,
    last: Option<SnapshotInfo>,
}

/// How long the start-up probe of the store may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

impl SnapshotService {
    pub fn new(
        config: &SnapshotConfig,
        data_dir: &Path,
        max_depth: usize,
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
        })
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
    pub async fn take(&self, session: &Arc<Session>) -> Result<SnapshotInfo, ApiError> {
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
        // The git mutex keeps status/log/diff (which refresh the index) out while the git
        // directory is read; the shared session lock keeps every writer out.
        let git_lock = session.git_lock_async().await;
        let taken = self
            .snapshots
            .take(&session.id, &sources, &mut persisted.cache)
            .await;
        drop(git_lock);
        let info = match taken {
            Ok(info) => info,
            Err(e) => {
                let mut status = state.status.lock().unwrap_or_else(|p| p.into_inner());
                status.failures += 1;
                status.error = Some(e.to_string());
                let backoff = (1_000u64 << status.failures.min(6)).min(MAX_BACKOFF_MS);
                status.next_attempt_ms = now_ms() + backoff;
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
    pub fn status_json(&self, session: &Session) -> Value {
        let state = &session.snapshots;
        self.load_status(session);
        let status = state.status.lock().map(|s| s.clone()).unwrap_or_default();
        json!({
            "last": status.last,
            "pending": session.changes() != state.snapshotted_changes.load(Ordering::Acquire),
            "error": status.error,
        })
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
    pub async fn run_background(app: Arc<App>) {
        let delay_ms = (app.snapshots.config.auto_delay_s * 1000.0) as u64;
        if delay_ms == 0 {
            return;
        }
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let now = now_ms();
            for session in app.sessions.list() {
                let state = &session.snapshots;
                let pending =
                    session.changes() != state.snapshotted_changes.load(Ordering::Acquire);
                let due = now.saturating_sub(session.last_change_ms()) >= delay_ms;
                if pending
                    && due
                    && app.snapshots.may_try(&session)
                    && state.running.try_lock().is_ok()
                {
                    let app = app.clone();
                    tokio::spawn(async move {
                        match app.snapshots.take(&session).await {
                            Ok(info) => {
                                tracing::info!(snapshot = %info.id, uploaded = info.uploaded_blobs, "background snapshot")
                            }
                            Err(e) => {
                                tracing::warn!(session = %session.id, error = %e.message, "background snapshot failed; will retry")
                            }
                        }
                    });
                }
            }
        }
    }
}

fn sources(session: &Session) -> Vec<Source> {
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

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        let status = match &e {
            SnapshotError::BadReference(_) => StatusCode::BAD_REQUEST,
            SnapshotError::NotFound(_) => StatusCode::NOT_FOUND,
            SnapshotError::Corrupt { .. }
            | SnapshotError::TooDeep { .. }
            | SnapshotError::Capture { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SnapshotError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            SnapshotError::Config(_) | SnapshotError::Io(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

pub async fn take(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let session = app.sessions.get(&crate::api::path_params(id)?)?;
    let info = app.snapshots.take(&session).await?;
    Ok((StatusCode::CREATED, Json(json!(info))))
}

pub async fn list(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&crate::api::path_params(id)?)?;
    let snapshots = app.snapshots.snapshots.list(&session.id).await?;
    Ok(Json(json!({ "snapshots": snapshots })))
}

/// Chunks of an export in flight: 16 × 256 KiB at most, whatever the session's size.
const EXPORT_CHUNKS: usize = 16;
const EXPORT_CHUNK_BYTES: usize = 256 * 1024;
/// What an export holds back before its answer commits to a stream: an error before then
/// (a tree too deep, say) is still a proper error answer.
const EXPORT_HOLD_BACK: usize = 1024 * 1024;
/// How long one chunk of an export waits for its consumer before the export gives up and frees
/// the session: a client must take at least 256 KiB every 10 s (~25 KiB/s), so a trickle
/// cannot hold a session's lock for hours.
const EXPORT_PATIENCE: Duration = Duration::from_secs(10);

/// The whole session (workspace and git history) as one `.tar.zst`, streamed: the archive is
/// made on a blocking thread while the session is held shared, into a bounded stream. Returns
/// the stream once its first bytes are out (or the export is done), or the error that ended
/// the export before then.
async fn archive(
    session: &Arc<Session>,
    max_depth: usize,
) -> Result<
    (
        tokio::sync::mpsc::Receiver<Bytes>,
        tokio::task::JoinHandle<Result<(), String>>,
    ),
    ApiError,
> {
    let guard = session.lock(false).await?;
    let git = session.git_lock_owned().await;
    let session = session.clone();
    let (chunks, receiver) = crate::stream::Chunks::channel(EXPORT_CHUNKS);
    let (committed, first) = tokio::sync::oneshot::channel();
    let producer = tokio::task::spawn_blocking(move || {
        let (_guard, _git) = (guard, git);
        let mut out = crate::stream::ChunkWriter::new(
            chunks,
            EXPORT_CHUNK_BYTES,
            EXPORT_HOLD_BACK,
            EXPORT_PATIENCE,
            committed,
        );
        let made = hearth_snapshots::export_archive(&sources(&session), max_depth, &mut out);
        if let Err(SnapshotError::TooDeep { limit }) = &made {
            // Said before any byte went out (see EXPORT_HOLD_BACK), as the 422 it is.
            return out.finish(Err(format!("too_deep:{limit}")));
        }
        out.finish(made.map_err(|e| e.to_string()))
    });
    match first.await {
        Ok(Ok(())) => Ok((receiver, producer)),
        Ok(Err(why)) => Err(
            match why.strip_prefix("too_deep:").and_then(|l| l.parse().ok()) {
                Some(limit) => SnapshotError::TooDeep { limit }.into(),
                None => ApiError::internal(why),
            },
        ),
        // The producer ended without a word: a panic.
        Err(_) => Err(ApiError::internal("the export ended unexpectedly")),
    }
}

pub async fn export_download(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let session = app.sessions.get(&crate::api::path_params(id)?)?;
    let (mut receiver, producer) =
        archive(&session, app.snapshots.snapshots.tuning().max_depth).await?;
    // A failure after the first bytes ends the stream early (the archive lacks zstd's end, so
    // a client sees it is cut); it is in the worker's log.
    let session_id = session.id.clone();
    tokio::spawn(async move {
        if let Ok(Err(why)) = producer.await {
            tracing::warn!(session = %session_id, error = %why, "an export stream ended early");
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::convert::Infallible>))
    });
    let disposition = format!("attachment; filename=\"{}.tar.zst\"", session.id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn export_to_store(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let session = app.sessions.get(&crate::api::path_params(id)?)?;
    let (receiver, producer) =
        archive(&session, app.snapshots.snapshots.tuning().max_depth).await?;
    let stored = app
        .snapshots
        .snapshots
        .put_export(&session.id, receiver)
        .await;
    let made = producer.await.map_err(ApiError::internal)?;
    let (key, size) = stored?;
    if let Err(why) = made {
        // A cut archive must not stay behind looking like an export.
        let _ = app.snapshots.snapshots.delete_export(&key).await;
        return Err(ApiError::internal(why));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "bytes": size })),
    ))
}

/// The exports stored for a session (`POST .../export`), oldest first.
pub async fn list_exports(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&crate::api::path_params(id)?)?;
    let exports = app.snapshots.snapshots.list_exports(&session.id).await?;
    Ok(Json(json!({ "exports": exports })))
}

/// A stored export, streamed from the store as it comes (no more of it in memory than a chunk).
pub async fn download_export(
    State(app): State<Arc<App>>,
    params: Result<UrlPath<(String, String)>, PathRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (id, name) = crate::api::path_params(params)?;
    let session = app.sessions.get(&id)?;
    let Some((size, stream)) = app
        .snapshots
        .snapshots
        .get_export(&session.id, &name)
        .await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "export_not_found",
            format!(
                "session `{}` has no export `{name}`; GET .../exports lists them",
                session.id
            ),
        ));
    };
    let headers = [
        (
            axum::http::header::CONTENT_TYPE,
            "application/zstd".to_owned(),
        ),
        (axum::http::header::CONTENT_LENGTH, size.to_string()),
        (
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-{name}\"", session.id),
        ),
    ];
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    grace_s: Option<u64>,
}

/// Collects blobs no snapshot references (older than the grace period).
pub async fn collect_garbage(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: GcRequest = crate::api::json_body(body)?;
    let grace = Duration::from_secs(request.grace_s.unwrap_or(app.snapshots.config.gc_grace_s));
    let report = app.snapshots.snapshots.collect_garbage(grace).await?;
    Ok(Json(json!(report)))
}
