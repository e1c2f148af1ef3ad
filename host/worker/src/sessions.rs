//! Sessions: an agent's home on this worker.
//!
//! On disk, under `<data-dir>/sessions/<id>/`, with quotas on (the default):
//!
//! ```text
//! volume.img      the session's volume (see `storage`), mounted at volume/:
//! volume/
//!   workspace/    the agent's files            -> /workspace (read-write)
//!   tmp/          scratch, kept for the session -> /tmp       (read-write)
//!   git/          the git directory (its work tree is workspace/; in no view)
//! state/          host-only bookkeeping: never part of any view
//!   session.json  the record: id, creation, quota, the hash of the session's token
//! ```
//!
//! Without a volume (quotas off, or a session made before them), `workspace/` and `tmp/` are
//! directly in `<id>/` and the git directory is `state/git/`.
//!
//! Read-only areas (e.g. shared skills) are operator directories mounted into every view, not
//! copied: creating a session costs a few `mkdir`s whatever their size, and no session can
//! change them (every view grants them read-only).
//!
//! Each session has a reader/writer lock: read-only tools share it, anything that changes files
//! takes it alone, so two edits of one file are applied one after the other, never lost.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_runtime::{Mount, SessionView};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::storage::{Floor, QuotaRecord, Storage, StorageError};

/// The session's record, relative to its directory; written last on create, removed first on
/// delete.
const RECORD: &str = "state/session.json";

/// The git directory of a session without a volume, relative to its directory.
const GIT_DIR: &str = "state/git";

/// Longest session id accepted.
pub const MAX_SESSION_ID_LEN: usize = 64;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "session id `{0}` is invalid: use 1–64 ASCII letters, digits, `-` or `_`, starting with a letter or digit"
    )]
    InvalidId(String),
    #[error("session `{0}` already exists")]
    Exists(String),
    #[error("no session `{0}`")]
    NotFound(String),
    #[error(
        "session `{id}` expired after being idle; its last snapshot is `{snapshot}`: bring it \
         back with POST /v1/sessions {{\"id\": \"{id}\", \"from_snapshot\": \"{id}\"}}"
    )]
    Expired { id: String, snapshot: String },
    #[error(
        "session `{id}` was taken over by worker `{worker}` (epoch {epoch}); this worker's copy \
         is parked: ask that worker, or restore it from its latest snapshot"
    )]
    Moved {
        id: String,
        worker: String,
        epoch: u64,
    },
    #[error("this worker already holds its maximum of {0} sessions")]
    Full(usize),
    #[error("the configured view is invalid: {0}")]
    InvalidView(#[from] hearth_runtime::view::ViewError),
    #[error("session storage: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What `session.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    created_at_ms: u64,
    /// The session's volume, when it has one (absent in records of sessions without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaRecord>,
    /// The SHA-256 of the session's own token (see `tokens`); absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_sha256: Option<String>,
    /// What the session asked its programs may reach (absent: the worker's `[egress] allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    egress: Option<Vec<String>>,
    /// The ownership epoch this worker holds in the snapshot store (absent or 0: not claimed
    /// yet; the first snapshot claims it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epoch: Option<u64>,
}

/// One live session.
pub struct Session {
    pub id: String,
    pub created_at_ms: u64,
    pub view: SessionView,
    dir: PathBuf,
    lock: Arc<tokio::sync::RwLock<()>>,
    /// Serialises git operations that only hold the session lock shared (status, log, diff
    /// still write the index).
    git: Arc<tokio::sync::Mutex<()>>,
    deleted: AtomicBool,
    tool_calls: AtomicU64,
    /// Counts exclusive holds of the lock: every change to the session's files happens under
    /// one, so a snapshot that saw count N holds every change up to N.
    changes: AtomicU64,
    last_change_ms: AtomicU64,
    /// When the session's lock was last taken or released, shared or exclusive: its last use.
    last_used_ms: Arc<AtomicU64>,
    /// The snapshot bookkeeping of this session.
    pub snapshots: crate::session_snapshots::SessionSnapshots,
    /// The mount point of the session's volume, when it has one.
    volume: Option<PathBuf>,
    floor: Floor,
    /// Its runs, foreground and background (see `docs/concurrency.md`).
    pub processes: Arc<crate::processes::Processes>,
    /// The network its runs share, made at its first run.
    network: Mutex<Option<Arc<crate::network::SessionNetwork>>>,
    /// What it asked its programs may reach (`None`: the worker's list).
    pub egress: Option<Vec<String>>,
    /// The ownership epoch this worker holds (0: not claimed yet); see `hearth_snapshots::Owner`.
    epoch: AtomicU64,
}

/// A run in progress: the session counts as changing from its start to its end (a snapshot
/// taken meanwhile holds the files as they were at some moment of the run, and another is due
/// after it), and as in use.
pub struct RunTicket {
    session: Arc<Session>,
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        let session = &self.session;
        session.changes.fetch_add(1, Ordering::AcqRel);
        session.last_change_ms.store(now_ms(), Ordering::Release);
        session.last_used_ms.store(now_ms(), Ordering::Release);
    }
}

/// A held session lock; dropping it releases the session, and marks it used until then (a
/// call that runs for an hour is use, not idleness).
pub struct SessionGuard {
    _held: Held,
    last_used_ms: Arc<AtomicU64>,
}

enum Held {
    Shared(#[allow(dead_code, reason = "held for its Drop")] tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(
        #[allow(dead_code, reason = "held for its Drop")] tokio::sync::OwnedRwLockWriteGuard<()>,
    ),
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.last_used_ms.store(now_ms(), Ordering::Release);
    }
}

impl Session {
    /// Waits for the session's lock: shared for read-only work, exclusive for writes. Fails if
    /// the session was deleted while waiting.
    /// An exclusive hold is refused while the worker's disk is under its free-space floor.
    pub async fn lock(&self, exclusive: bool) -> Result<SessionGuard, SessionError> {
        if exclusive {
            self.floor.check()?;
        }
        self.last_used_ms.store(now_ms(), Ordering::Release);
        let guard = if exclusive {
            let guard = self.lock.clone().write_owned().await;
            self.changes.fetch_add(1, Ordering::AcqRel);
            self.last_change_ms.store(now_ms(), Ordering::Release);
            Held::Exclusive(guard)
        } else {
            Held::Shared(self.lock.clone().read_owned().await)
        };
        let guard = SessionGuard {
            _held: guard,
            last_used_ms: self.last_used_ms.clone(),
        };
        if self.deleted.load(Ordering::Acquire) {
            return Err(SessionError::NotFound(self.id.clone()));
        }
        Ok(guard)
    }

    /// Undoes what the session's own programs and tools may have done to the places a run is
    /// built on, so a run always starts: the workspace and scratch directories get mode 0755
    /// back (after a `chmod 000 /workspace`), and every read-only area nested in the workspace
    /// finds a directory to be mounted on (after a tool replaced it with a file or a link).
    /// Cheap: a few `fstat`s, before every run.
    pub fn repair_for_run(&self) -> Result<(), hearth_content::ContentError> {
        let mounts = self.view.mounts();
        for mount in mounts.iter().filter(|m| m.writable) {
            let tree = hearth_content::Tree::open(&mount.host_path)?;
            if tree.stat_self()?.st_mode & 0o7777 != 0o755 {
                tree.set_mode(0o755)?;
            }
        }
        let workspace = &mounts[0];
        let tree = hearth_content::Tree::open(&workspace.host_path)?;
        for area in mounts.iter().filter(|m| !m.writable) {
            let Some(below) = area
                .view_path
                .strip_prefix(workspace.view_path.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
            else {
                continue;
            };
            if tree.repair_mount_point(Path::new(below))? {
                tracing::info!(session = %self.id, area = %area.view_path, "repaired a read-only area's mount point");
            }
        }
        Ok(())
    }

    /// What the session's volume holds and can hold; `None` without a volume (quotas off).
    pub fn usage(&self) -> Option<hearth_volume::Usage> {
        let volume = self.volume.as_ref()?;
        hearth_volume::Usage::of(volume)
            .inspect_err(|e| tracing::warn!(session = %self.id, error = %e, "reading volume usage"))
            .ok()
    }

    /// The session's usage, if it has a volume and the volume is at its limit: what turns a
    /// failed write into 507 `quota_exceeded`.
    pub fn full_usage(&self) -> Option<hearth_volume::Usage> {
        self.usage().filter(hearth_volume::Usage::is_full)
    }

    /// The session's scratch mount (`/tmp`): the second of every session's view.
    pub fn scratch(&self) -> &Mount {
        &self.view.mounts()[1]
    }

    /// The workspace on the host: the first of every session's view.
    pub fn workspace_dir(&self) -> &Path {
        &self.view.mounts()[0].host_path
    }

    /// The git directory: never in any view; on the session's volume when it has one.
    pub fn git_dir(&self) -> PathBuf {
        git_dir(&self.dir, self.volume.is_some())
    }

    /// Held by git operations that run under the shared session lock, waited for without a
    /// thread (a session whose git is wedged parks nothing), and movable into the blocking
    /// work it guards.
    pub async fn git_lock_owned(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.git.clone().lock_owned().await
    }

    /// Held by git operations that run under the shared session lock (from a blocking
    /// thread).
    pub fn git_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.git.blocking_lock()
    }

    /// The same, from async code.
    pub async fn git_lock_async(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.git.lock().await
    }

    /// The ownership epoch this worker holds (0: not claimed yet).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// When the session was last used (its lock taken or released).
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Acquire)
    }

    /// Ends every run of the session and starts no more, and removes its network (blocking):
    /// what happens when the session goes, is parked, or the worker stops.
    fn end_runs(&self) {
        self.processes.close();
        self.network
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Whether a call holds the session, or a program of it runs, right now.
    pub fn is_busy(&self) -> bool {
        self.lock.try_write().is_err() || self.processes.running() > 0
    }

    /// Starts a run: counted as a change now and again when the ticket drops. Refused when
    /// the session is gone or the worker's disk is under its floor.
    pub fn begin_run(self: &Arc<Self>) -> Result<RunTicket, SessionError> {
        self.floor.check()?;
        if self.deleted.load(Ordering::Acquire) {
            return Err(SessionError::NotFound(self.id.clone()));
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.last_change_ms.store(now_ms(), Ordering::Release);
        self.last_used_ms.store(now_ms(), Ordering::Release);
        Ok(RunTicket {
            session: self.clone(),
        })
    }

    /// Whether the session may hold what a snapshot at change count `seen` does not: it
    /// changed since, or a program of it is running.
    pub fn changed_since(&self, seen: u64) -> bool {
        self.changes() != seen || self.processes.running() > 0
    }

    /// The session's network, made by `open` at the first call (blocking).
    pub fn network<E>(
        &self,
        open: impl FnOnce(PathBuf) -> Result<crate::network::SessionNetwork, E>,
    ) -> Result<Arc<crate::network::SessionNetwork>, E> {
        let mut network = self.network.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(network) = &*network {
            return Ok(network.clone());
        }
        let made = Arc::new(open(self.dir.join("state").join("netns"))?);
        *network = Some(made.clone());
        Ok(made)
    }

    /// The session's network if a run made it.
    pub fn existing_network(&self) -> Option<Arc<crate::network::SessionNetwork>> {
        self.network
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many exclusive holds (possible changes) the session has seen.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// When the session last changed, in ms since the epoch.
    pub fn last_change_ms(&self) -> u64 {
        self.last_change_ms.load(Ordering::Acquire)
    }

    /// The session's directory (its state holds the snapshot cache).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn count_tool_call(&self) {
        self.tool_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tool_calls(&self) -> u64 {
        self.tool_calls.load(Ordering::Relaxed)
    }

    /// RFC 3339 creation time.
    pub fn created_at(&self) -> String {
        rfc3339_ms(self.created_at_ms)
    }
}

/// Every session of this worker.
pub struct Sessions {
    root: PathBuf,
    workspace_path: String,
    scratch_path: String,
    areas: Vec<Mount>,
    max_sessions: usize,
    scratch_mib: Option<u64>,
    storage: Storage,
    /// Session tokens' hashes, to the session each opens.
    tokens: RwLock<HashMap<String, String>>,
    /// Held while a record is rewritten.
    rewriting: Mutex<()>,
    live: RwLock<HashMap<String, Arc<Session>>>,
    /// Ids being created: taken, and counted against the limit, before the (possibly slow)
    /// preparation runs without holding `live`.
    creating: Mutex<HashSet<String>>,
    /// Sessions expired for idleness, with the snapshot that holds them (at most
    /// [`EXPIRED_KEPT`] remembered, so a stale id says why it is gone).
    expired: Mutex<HashMap<String, String>>,
    /// Sessions another worker took over, parked here: (worker, epoch) by id.
    moved: Mutex<HashMap<String, (String, u64)>>,
    /// Background processes running on the worker, all sessions together.
    background_running: Arc<std::sync::atomic::AtomicUsize>,
    /// The outputs of ended background processes kept, all sessions together.
    retained_output: Arc<crate::processes::Retained>,
}

/// Expired sessions remembered by name.
const EXPIRED_KEPT: usize = 10_000;

impl Sessions {
    /// Opens (creating if needed) `<data-dir>/sessions` and takes back the sessions already
    /// there, so a restarted worker keeps its agents' homes.
    pub fn open(config: &Config, storage: Storage) -> Result<Self, SessionError> {
        let root = config.data_dir.join("sessions");
        std::fs::create_dir_all(&root)?;
        let areas = config
            .read_only_areas
            .iter()
            .map(|a| Mount {
                view_path: a.path.clone(),
                host_path: a.source.clone(),
                writable: false,
            })
            .collect();
        let sessions = Self {
            root,
            workspace_path: config.workspace_path.clone(),
            scratch_path: config.scratch_path.clone(),
            areas,
            max_sessions: config.max_sessions,
            scratch_mib: config.scratch_mib,
            storage,
            tokens: RwLock::default(),
            rewriting: Mutex::default(),
            live: RwLock::new(HashMap::new()),
            creating: Mutex::default(),
            expired: Mutex::default(),
            moved: Mutex::default(),
            background_running: Arc::default(),
            retained_output: Arc::default(),
        };
        // Fail at start-up, not at the first session, if the configured view is unusable.
        sessions.session(Record {
            id: "probe".into(),
            created_at_ms: 0,
            quota: None,
            token_sha256: None,
            egress: None,
            epoch: None,
        })?;
        let mut live = HashMap::new();
        for entry in std::fs::read_dir(&sessions.root)? {
            let dir = entry?.path();
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let record = std::fs::read_to_string(dir.join(RECORD))
                .ok()
                .and_then(|text| serde_json::from_str::<Record>(&text).ok());
            match record {
                // The directory's name is the id: a renamed or copied directory must not serve
                // another session's id.
                Some(record) if record.id == name && is_valid_id(&name) => {
                    // A session whose volume cannot be mounted is not served, and said; the
                    // others still are.
                    match Storage::reopen(&dir, record.quota.is_some()) {
                        Ok(base) => {
                            // A network left by a worker that died: what ran in it is gone.
                            hearth_python_runner::netns::remove(&dir.join("state").join("netns"));
                            sessions.cap_scratch(&base.join("tmp"))?;
                            sessions.remember_token(&record);
                            live.insert(record.id.clone(), Arc::new(sessions.session(record)?));
                        }
                        Err(e) => tracing::error!(
                            session = %record.id,
                            error = %e,
                            "cannot mount the session's volume; the session is not served"
                        ),
                    }
                }
                _ => tracing::warn!(
                    dir = %dir.display(),
                    "not a session (no valid state/session.json naming it); left alone until its id is created again"
                ),
            }
        }
        if let Ok(mut map) = sessions.live.write() {
            *map = live;
        }
        Ok(sessions)
    }

    fn session(&self, record: Record) -> Result<Session, SessionError> {
        let dir = self.root.join(&record.id);
        let base = Storage::base(&dir, record.quota.is_some());
        let mut mounts = vec![
            Mount {
                view_path: self.workspace_path.clone(),
                host_path: base.join("workspace"),
                writable: true,
            },
            Mount {
                view_path: self.scratch_path.clone(),
                host_path: base.join("tmp"),
                writable: true,
            },
        ];
        mounts.extend(self.areas.iter().cloned());
        let view = SessionView::new(mounts)?;
        let processes = crate::processes::Processes::load(
            &dir.join("state"),
            self.background_running.clone(),
            self.retained_output.clone(),
        );
        Ok(Session {
            id: record.id,
            created_at_ms: record.created_at_ms,
            view,
            dir,
            lock: Arc::default(),
            git: Arc::default(),
            deleted: AtomicBool::new(false),
            tool_calls: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            last_change_ms: AtomicU64::new(0),
            last_used_ms: Arc::new(AtomicU64::new(now_ms())),
            snapshots: crate::session_snapshots::SessionSnapshots::default(),
            volume: record.quota.is_some().then_some(base),
            floor: self.storage.floor(),
            processes: Arc::new(processes),
            network: Mutex::default(),
            egress: record.egress,
            epoch: AtomicU64::new(record.epoch.unwrap_or(0)),
        })
    }

    /// Unmounts every session's volume and the pool of ready ones, for a clean stop. A scratch
    /// tmpfs of a session without a volume stays (a restart finds it, as before quotas).
    /// Every session's programs end first (they end with the worker), and their networks.
    pub fn release_volumes(&self) {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        for session in live.values() {
            session.end_runs();
        }
        for session in live.values().filter(|s| s.volume.is_some()) {
            Storage::release(&session.dir);
        }
        self.storage.release_pool();
    }

    fn remember_token(&self, record: &Record) {
        if let Some(hash) = &record.token_sha256 {
            self.tokens
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash.clone(), record.id.clone());
        }
    }

    /// The session a token opens, by the token's hash.
    pub fn opened_by(&self, token_sha256: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token_sha256)
            .cloned()
    }

    /// Gives session `id` the token whose hash is `token_sha256`, revoking the one it had. The
    /// record is rewritten whole (a new file renamed over it), so a crash keeps one or the other.
    pub fn replace_token(&self, id: &str, token_sha256: String) -> Result<(), SessionError> {
        let record = self.rewrite_record(id, |record| {
            record.token_sha256 = Some(token_sha256);
        })?;
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, owner| owner != id);
        if let Some(hash) = record.token_sha256 {
            tokens.insert(hash, record.id);
        }
        Ok(())
    }

    /// What another worker needs to serve session `id` (see `fleet::Terms`), from its record.
    pub fn terms(&self, id: &str) -> Result<crate::fleet::Terms, SessionError> {
        let record = self.rewrite_record(id, |_| {})?;
        Ok(crate::fleet::Terms {
            token_sha256: record.token_sha256,
            quota_bytes: record.quota.as_ref().map(|q| q.bytes),
            quota_inodes: record.quota.as_ref().map(|q| q.inodes),
            egress: record.egress,
        })
    }

    /// Records that this worker holds session `id` at ownership `epoch`.
    pub fn set_epoch(&self, id: &str, epoch: u64) -> Result<(), SessionError> {
        let session = self.get(id)?;
        self.rewrite_record(id, |record| record.epoch = Some(epoch))?;
        session.epoch.store(epoch, Ordering::Release);
        Ok(())
    }

    /// Rewrites session `id`'s record with `change`, whole (a new file renamed over it, so a
    /// crash keeps one or the other); returns it as written.
    fn rewrite_record(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record),
    ) -> Result<Record, SessionError> {
        let session = self.get(id)?;
        let _one_at_a_time = self.rewriting.lock().unwrap_or_else(|p| p.into_inner());
        let path = session.dir.join(RECORD);
        let mut record: Record = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                SessionError::Io(std::io::Error::other("the session's record is unreadable"))
            })?;
        change(&mut record);
        let temporary = path.with_extension("json.new");
        std::fs::write(&temporary, serde_json::to_vec(&record).unwrap_or_default())?;
        std::fs::rename(&temporary, &path)?;
        Ok(record)
    }

    /// The worker's storage policy (quotas, the free-space floor).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Creates a session, with `id` or a fresh random one, on a volume of `quota` (from
    /// [`Storage::quota_for`]; `None`: plain directories), opened by the token whose hash is
    /// `token_sha256` besides the operator's. `prepare` fills it (a git repository, a restored
    /// snapshot) before it becomes visible, given the workspace, the git directory and the
    /// state directory; if it fails, nothing of the session is left.
    pub fn create<E: From<SessionError>>(
        &self,
        id: Option<String>,
        quota: Option<hearth_volume::Quota>,
        egress: Option<Vec<String>>,
        token_sha256: String,
        prepare: impl FnOnce(&str, &Path, &Path, &Path) -> Result<u64, E>,
    ) -> Result<Arc<Session>, E> {
        let id = match id {
            Some(id) if is_valid_id(&id) => id,
            Some(id) => return Err(SessionError::InvalidId(id).into()),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        self.storage.floor().check().map_err(SessionError::from)?;
        let _reservation = self.reserve(&id)?;
        if let Ok(mut expired) = self.expired.lock() {
            expired.remove(&id);
        }
        if let Ok(mut moved) = self.moved.lock() {
            moved.remove(&id);
        }
        let dir = self.root.join(&id);
        // Leftovers of a create or delete that died half-way are not a session: clear them.
        if dir.exists() {
            tracing::warn!(dir = %dir.display(), "removing the leftovers of an unfinished session");
            crate::scratch::release(&dir.join("tmp"));
            Storage::release(&dir);
            hearth_content::remove_tree(&dir)
                .map_err(|e| SessionError::Io(std::io::Error::other(e)))?;
        }
        let mut record = Record {
            id: id.clone(),
            created_at_ms: now_ms(),
            quota: quota.map(QuotaRecord::from),
            token_sha256: Some(token_sha256),
            egress,
            epoch: None,
        };
        let made = (|| -> Result<PathBuf, SessionError> {
            std::fs::create_dir(&dir)?;
            std::fs::create_dir(dir.join("state"))?;
            let base = self.storage.place(&dir, quota)?;
            self.cap_scratch(&base.join("tmp"))?;
            Ok(base)
        })()
        .map_err(E::from)
        .and_then(|base| {
            let git = git_dir(&dir, quota.is_some());
            prepare(&id, &base.join("workspace"), &git, &dir.join("state"))
        })
        .and_then(|epoch| {
            record.epoch = (epoch > 0).then_some(epoch);
            // Written last: a directory without it is a session that was never finished.
            std::fs::write(
                dir.join(RECORD),
                serde_json::to_vec(&record).unwrap_or_default(),
            )
            .map_err(SessionError::from)?;
            self.remember_token(&record);
            Ok(self.session(record)?)
        });
        match made {
            Ok(session) => {
                let session = Arc::new(session);
                self.live
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(id, session.clone());
                Ok(session)
            }
            Err(e) => {
                crate::scratch::release(&dir.join("tmp"));
                Storage::release(&dir);
                let _ = hearth_content::remove_tree(&dir);
                Err(e)
            }
        }
    }

    /// Takes `id` for a create in progress, within the session limit. The id is released when
    /// the returned guard drops (by then the session is live, or gone).
    fn reserve(&self, id: &str) -> Result<Reservation<'_>, SessionError> {
        let live = self
            .live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut creating = self
            .creating
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if live.len() + creating.len() >= self.max_sessions {
            return Err(SessionError::Full(self.max_sessions));
        }
        if live.contains_key(id) || creating.contains(id) {
            return Err(SessionError::Exists(id.to_owned()));
        }
        creating.insert(id.to_owned());
        Ok(Reservation {
            sessions: self,
            id: id.to_owned(),
        })
    }

    /// Puts the size cap on a session's scratch directory, when one is configured.
    fn cap_scratch(&self, tmp: &std::path::Path) -> Result<(), SessionError> {
        match self.scratch_mib {
            Some(mib) => crate::scratch::ensure(tmp, mib)
                .map_err(|e| SessionError::Io(std::io::Error::other(e))),
            None => Ok(()),
        }
    }

    pub fn get(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        if let Some(session) = self.live.read().ok().and_then(|live| live.get(id).cloned()) {
            return Ok(session);
        }
        if let Some((worker, epoch)) = self.moved.lock().ok().and_then(|m| m.get(id).cloned()) {
            return Err(SessionError::Moved {
                id: id.to_owned(),
                worker,
                epoch,
            });
        }
        let expired = self.expired.lock().ok().and_then(|e| e.get(id).cloned());
        Err(match expired {
            Some(snapshot) => SessionError::Expired {
                id: id.to_owned(),
                snapshot,
            },
            None => SessionError::NotFound(id.to_owned()),
        })
    }

    /// Remembers that `id` expired into `snapshot`.
    pub fn mark_expired(&self, id: &str, snapshot: &str) {
        if let Ok(mut expired) = self.expired.lock() {
            if expired.len() >= EXPIRED_KEPT {
                expired.clear();
            }
            expired.insert(id.to_owned(), snapshot.to_owned());
        }
    }

    /// All sessions, oldest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<_> = self
            .live
            .read()
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        all
    }

    pub fn len(&self) -> usize {
        self.live.read().map(|l| l.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes a session once the calls running in it have finished.
    pub async fn delete(&self, id: &str) -> Result<(), SessionError> {
        self.remove(id, None).await.map(drop)
    }

    /// Removes a session if it has not changed since change count `seen` (what a snapshot
    /// holds): nothing made after the snapshot is lost. Returns whether it was removed.
    pub async fn delete_if_unchanged(&self, id: &str, seen: u64) -> Result<bool, SessionError> {
        self.remove(id, Some(seen)).await
    }

    /// Stops serving session `id`, which worker `worker` took over at `epoch`: its programs
    /// end, and its directory is kept, renamed `<id>.parked-<epoch>-<ms>` (a restart does not
    /// serve it; an operator may look at it), not deleted. Requests for it answer 404
    /// `session_moved`.
    pub async fn park(&self, id: &str, worker: &str, epoch: u64) -> Result<(), SessionError> {
        let session = self.get(id)?;
        let _exclusive = session.lock.clone().write_owned().await;
        if session.deleted.swap(true, Ordering::AcqRel) {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        if let Ok(mut moved) = self.moved.lock() {
            if moved.len() >= EXPIRED_KEPT {
                moved.clear();
            }
            moved.insert(id.to_owned(), (worker.to_owned(), epoch));
        }
        self.forget(id);
        let (dir, parked) = (
            session.dir.clone(),
            self.root.join(format!("{id}.parked-{epoch}-{}", now_ms())),
        );
        let ending = session.clone();
        tokio::task::spawn_blocking(move || {
            ending.end_runs();
            crate::scratch::release(&dir.join("tmp"));
            Storage::release(&dir);
            std::fs::rename(&dir, &parked)
        })
        .await
        .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        tracing::warn!(session = %id, %worker, epoch, "another worker took the session over; this copy is parked");
        Ok(())
    }

    /// Serves session `id` no more: out of the live map, its token opening nothing.
    fn forget(&self, id: &str) {
        if let Ok(mut live) = self.live.write() {
            live.remove(id);
        }
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, owner| owner != id);
    }

    async fn remove(&self, id: &str, seen: Option<u64>) -> Result<bool, SessionError> {
        let session = self.get(id)?;
        // Taken as a writer would, without counting as a change.
        let _exclusive = session.lock.clone().write_owned().await;
        if session.deleted.load(Ordering::Acquire) {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        if seen.is_some_and(|seen| session.changed_since(seen)) {
            return Ok(false);
        }
        session.deleted.store(true, Ordering::Release);
        // Its programs end with it, and its network.
        let ending = session.clone();
        tokio::task::spawn_blocking(move || ending.end_runs())
            .await
            .map_err(|e| SessionError::Io(std::io::Error::other(e)))?;
        self.forget(id);
        let dir = session.dir.clone();
        // The record goes first: if the removal dies half-way, what is left is no longer a
        // session (a restart will not resurrect it, a create of the same id clears it).
        // Removed through `hearth-content`: no link an agent planted is followed, and a tree of
        // any depth goes without running out of descriptors or path length.
        tokio::task::spawn_blocking(move || {
            let gone = |r: std::io::Result<()>| match r {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            gone(std::fs::remove_file(dir.join(RECORD)))?;
            crate::scratch::release(&dir.join("tmp"));
            Storage::release(&dir);
            hearth_content::remove_tree(&dir).map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| SessionError::Io(std::io::Error::other(e)))??;
        Ok(true)
    }
}

/// An id being created; see [`Sessions::reserve`].
struct Reservation<'a> {
    sessions: &'a Sessions,
    id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.sessions
            .creating
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.id);
    }
}

/// A session's git directory, given its directory and whether it has a volume: in its state
/// directory without one (as before quotas), beside the workspace on the volume with one.
fn git_dir(dir: &Path, has_volume: bool) -> PathBuf {
    if has_volume {
        Storage::base(dir, true).join("git")
    } else {
        dir.join(GIT_DIR)
    }
}

/// Ids become directory names and URL segments: keep them boring.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SESSION_ID_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-27T01:02:03.456Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "S1", "agent-7_run-3", &"x".repeat(64)] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "a/b",
            "..",
            "a b",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_741_323_456), "2026-11-27T01:02:03.456Z");
    }
}
