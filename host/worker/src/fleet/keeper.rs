//! Keeping this worker's lease: taken at start-up, renewed every `lease_renew_s`, given up at
//! the end of a drain (see `drain`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_snapshots::Lease;

use super::Fleet;

/// Renews the lease until the worker stops. A renewal the store refuses is retried at the next
/// tick (and said): the lease lapses only if the store stays away for a whole lifetime.
pub async fn keep_lease(fleet: Arc<Fleet>) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(fleet.config.lease_renew_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = fleet.renew().await {
            tracing::warn!(error = %e, "the lease could not be renewed");
        }
    }
}

impl Fleet {
    /// Takes or renews this worker's lease now.
    pub async fn renew(&self) -> Result<Lease, hearth_snapshots::SnapshotError> {
        let ttl_ms = (self.config.lease_ttl_s * 1000.0) as u64;
        let lease = Lease::new(&self.me, &self.url, ttl_ms);
        self.lease_requests.fetch_add(1, Ordering::Relaxed);
        self.snapshots.snapshots.renew_lease(&lease).await
    }

    /// Gives the lease up: other workers take this worker's sessions at once.
    pub async fn release(&self) -> Result<(), hearth_snapshots::SnapshotError> {
        self.lease_requests.fetch_add(1, Ordering::Relaxed);
        self.snapshots.snapshots.release_lease(&self.me).await
    }
}
