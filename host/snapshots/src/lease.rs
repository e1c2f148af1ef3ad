//! Which workers are alive: one lease per worker, `workers/<worker>/lease`, renewed by its
//! worker every few seconds and read by any worker deciding where a session's requests go.
//!
//! A lease is per worker, not per session: the sessions a worker owns point at it through
//! their ownership records (see `owner`), so keeping every one of them alive costs one store
//! write per renewal whatever their number. Only the worker itself writes its lease, so a
//! plain overwrite is enough; what must never race — two workers serving one session — is
//! decided by the ownership records' create-if-absent, never by a lease. A lease only says
//! where to forward and when waiting for an owner is pointless.
//!
//! Expiry is judged by the reader's clock against the writer's `renewed_at_ms`: the fleet's
//! clocks must agree to well within the lease's lifetime (NTP does, by orders of magnitude).
//! A wrong judgement costs availability, never data: a worker that takes a session over
//! claims a new epoch, and the old owner can no longer publish.

use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{SnapshotError, Snapshots, now_ms};

/// The most a lease record may be (a bigger one is not a lease this code wrote).
const MAX_LEASE_BYTES: u64 = 4096;

/// A worker's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub worker: String,
    /// Where other workers forward requests for this worker's sessions.
    pub url: String,
    pub renewed_at_ms: u64,
    /// The lease lapses this long after its last renewal.
    pub ttl_ms: u64,
}

impl Lease {
    /// A lease renewed now.
    pub fn new(worker: &str, url: &str, ttl_ms: u64) -> Self {
        Self {
            worker: worker.to_owned(),
            url: url.to_owned(),
            renewed_at_ms: now_ms(),
            ttl_ms,
        }
    }

    /// Whether the lease still holds at `now_ms`.
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        now_ms < self.renewed_at_ms.saturating_add(self.ttl_ms)
    }

    /// Whether the lease still holds.
    pub fn is_live(&self) -> bool {
        self.is_live_at(now_ms())
    }

    /// Milliseconds until it lapses (0 once it has).
    pub fn remaining_ms(&self) -> u64 {
        self.renewed_at_ms
            .saturating_add(self.ttl_ms)
            .saturating_sub(now_ms())
    }
}

fn lease_path(worker: &str) -> StorePath {
    StorePath::from(format!("workers/{worker}/lease"))
}

impl Snapshots {
    /// The worker's lease, if it has one.
    pub async fn lease(&self, worker: &str) -> Result<Option<Lease>, SnapshotError> {
        let got = match self.store.get(&lease_path(worker)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if got.meta.size > MAX_LEASE_BYTES {
            return Err(SnapshotError::Store(format!(
                "the lease of {worker} is {} bytes",
                got.meta.size
            )));
        }
        let bytes = got.bytes().await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SnapshotError::Store(format!("the lease of {worker}: {e}")))
    }

    /// Writes (takes or renews) the lease, stamped now; returns what was written.
    pub async fn renew_lease(&self, lease: &Lease) -> Result<Lease, SnapshotError> {
        let lease = Lease::new(&lease.worker, &lease.url, lease.ttl_ms);
        let body =
            serde_json::to_vec(&lease).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        self.store
            .put(&lease_path(&lease.worker), PutPayload::from(body))
            .await?;
        Ok(lease)
    }

    /// Gives the lease up: other workers may take this worker's sessions at once.
    pub async fn release_lease(&self, worker: &str) -> Result<(), SnapshotError> {
        match self.store.delete(&lease_path(worker)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lapses_after_its_lifetime() {
        let lease = Lease {
            worker: "w".into(),
            url: "http://w".into(),
            renewed_at_ms: 1_000,
            ttl_ms: 500,
        };
        assert!(lease.is_live_at(1_000));
        assert!(lease.is_live_at(1_499));
        assert!(!lease.is_live_at(1_500));
    }
}
