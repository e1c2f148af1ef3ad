//! One session's snapshot bookkeeping, held by the session and kept by the snapshot service: a
//! leaf module, so that sessions need not know the service (nor the service's user the session).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hearth_snapshots::SnapshotInfo;
use serde::{Deserialize, Serialize};

/// One session's snapshot bookkeeping.
#[derive(Default)]
pub struct SessionSnapshots {
    /// The change count the last durable snapshot holds.
    pub(crate) snapshotted_changes: AtomicU64,
    pub(crate) running: tokio::sync::Mutex<()>,
    pub(crate) status: std::sync::Mutex<Status>,
    /// Set once the persisted status has been read back (after a restart).
    pub(crate) loaded: AtomicBool,
}

impl SessionSnapshots {
    /// The change count the last durable snapshot holds.
    pub fn snapshotted_changes(&self) -> u64 {
        self.snapshotted_changes.load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) last: Option<SnapshotInfo>,
    pub(crate) error: Option<String>,
    pub(crate) failures: u32,
    #[serde(skip)]
    pub(crate) next_attempt_ms: u64,
}
