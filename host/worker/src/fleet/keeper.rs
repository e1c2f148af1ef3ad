//! Keeping this worker's lease: taken at start-up, renewed every `lease_renew_s`, given up at
//! the end of a drain (see `drain`).
//!
//! A worker that could not renew for a while may have lost its lease: other doors may have
//! taken some of its sessions over. From the moment its lease is *in doubt* (less than one
//! renewal left) it serves no session before asking the store who owns it (see `http::door`),
//! and when a renewal finally succeeds it re-checks every session it holds before it trusts
//! them again (`fence_all`: the ones taken over are parked). So a worker cut off from the store
//! never answers for a session another worker serves.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_snapshots::Lease;

use super::Fleet;
use crate::app::App;
use crate::sessions::now_ms;

/// Renews the lease until the worker stops. A renewal the store refuses is retried at the next
/// tick (and said): the lease lapses only if the store stays away for a whole lifetime.
pub async fn keep_lease(app: Arc<App>) {
    let Some(fleet) = app.fleet.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(fleet.config.lease_renew_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let was_in_doubt = fleet.lease_in_doubt();
        let renewed_at = now_ms();
        match fleet.renew().await {
            Ok(_) if was_in_doubt => {
                tracing::warn!("the lease is renewed after a gap: checking who owns each session");
                app.snapshots.fence_all(&app.sessions).await;
                fleet.renewed(renewed_at);
            }
            Ok(_) => fleet.renewed(renewed_at),
            Err(e) => tracing::warn!(error = %e, "the lease could not be renewed"),
        }
    }
}

impl Fleet {
    /// Takes or renews this worker's lease now (the caller says when it counts: `renewed`).
    pub async fn renew(&self) -> Result<Lease, hearth_snapshots::SnapshotError> {
        let ttl_ms = (self.config.lease_ttl_s * 1000.0) as u64;
        let lease = Lease::new(&self.me, &self.url, ttl_ms);
        self.lease_requests.fetch_add(1, Ordering::Relaxed);
        self.snapshots.snapshots.renew_lease(&lease).await
    }

    /// Records a renewal that was sent at `at_ms` and succeeded, every session held being
    /// known to be this worker's.
    pub fn renewed(&self, at_ms: u64) {
        self.last_renewed_ms.fetch_max(at_ms, Ordering::AcqRel);
    }

    /// Whether other workers may already take this worker for dead: less than one renewal
    /// period of the lease is left since the last renewal that succeeded.
    pub fn lease_in_doubt(&self) -> bool {
        let ttl_ms = (self.config.lease_ttl_s * 1000.0) as u64;
        let renew_ms = (self.config.lease_renew_s * 1000.0) as u64;
        let last = self.last_renewed_ms.load(Ordering::Acquire);
        now_ms() >= last.saturating_add(ttl_ms.saturating_sub(renew_ms))
    }

    /// Gives the lease up: other workers take this worker's sessions at once.
    pub async fn release(&self) -> Result<(), hearth_snapshots::SnapshotError> {
        self.lease_requests.fetch_add(1, Ordering::Relaxed);
        self.snapshots.snapshots.release_lease(&self.me).await
    }
}
