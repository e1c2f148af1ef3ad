//! The drain: how a worker stops without losing what it acknowledged (on SIGTERM, before a
//! Kubernetes pod goes, or a plain `kill`).
//!
//! 1. The worker stops taking work: `/v1/ready` answers 503 `draining`, and so does every
//!    route but `/v1/health`, `/v1/ready` and `/metrics` (requests already running finish).
//! 2. Each session's programs end (they end with the worker).
//! 3. Each session that changed since its last snapshot gets one more: taken under the
//!    session's shared lock, it waits for the writers that were running, so it holds every
//!    change that was answered.
//! 4. In a fleet, the worker gives its lease up, so another worker takes its sessions over at
//!    once (from the snapshots just taken) instead of after the lease's lifetime. Not if a
//!    last snapshot failed: then the lease lapses on its own, and a restart of this worker on
//!    the same disk within its lifetime still has the changes.
//! 5. The worker exits — after `drain_timeout_s` at the latest, whatever is left undone (and
//!    said in its log).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use crate::app::App;

/// Snapshots taken at once during a drain.
const PARALLEL_SNAPSHOTS: usize = 4;

/// Drains `app` (see the module's doc); returns once done or out of time.
pub async fn drain(app: &Arc<App>) {
    if app.draining.swap(true, Ordering::AcqRel) {
        return;
    }
    let bound = Duration::from_secs_f64(app.config.drain_timeout_s);
    tracing::info!(
        bound_s = bound.as_secs_f64(),
        "draining: no more work is taken; last snapshots"
    );
    let done = tokio::time::timeout(bound, last_snapshots(app)).await;
    match done {
        Ok((taken, failed)) => {
            tracing::info!(taken, failed, "drained");
            release_lease(app, failed).await;
        }
        Err(_) => tracing::error!(
            bound_s = bound.as_secs_f64(),
            "the drain ran out of time: sessions changed since their last snapshot keep those \
             changes only on this worker's disk"
        ),
    }
}

/// Gives the fleet lease up after a drain that snapshotted everything.
async fn release_lease(app: &App, failed: usize) {
    let Some(fleet) = &app.fleet else {
        return;
    };
    if failed > 0 {
        tracing::warn!(failed, "the lease is kept to lapse: a last snapshot failed");
        return;
    }
    match fleet.release().await {
        Ok(()) => tracing::info!("lease released: other workers take the sessions over"),
        Err(e) => tracing::warn!(error = %e, "the lease could not be released; it lapses"),
    }
}

/// Ends every session's programs, then snapshots the sessions that changed; (taken, failed).
async fn last_snapshots(app: &Arc<App>) -> (usize, usize) {
    let sessions = app.sessions.list();
    let ending = sessions.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for session in &ending {
            session.processes.close();
        }
    })
    .await;
    // In a fleet, a session never snapshotted gets one too (a clone at create is not a
    // change): another worker takes it over from the store.
    let in_fleet = app.fleet.is_some();
    let results: Vec<bool> = futures_util::stream::iter(sessions)
        .filter(|session| {
            let seen = session.snapshots.snapshotted_changes();
            let never = in_fleet && app.snapshots.state(session).last.is_none();
            std::future::ready(never || session.changed_since(seen))
        })
        .map(|session| {
            let app = app.clone();
            async move {
                match app.snapshots.take(&app.sessions, &session).await {
                    Ok(info) => {
                        tracing::info!(session = %session.id, snapshot = %info.id, "last snapshot");
                        true
                    }
                    Err(e) => {
                        tracing::error!(session = %session.id, error = %e, "the last snapshot failed");
                        false
                    }
                }
            }
        })
        .buffer_unordered(PARALLEL_SNAPSHOTS)
        .collect()
        .await;
    let taken = results.iter().filter(|ok| **ok).count();
    (taken, results.len() - taken)
}

/// Whether a request may run while draining: what a load balancer and an operator still ask.
pub fn allowed_while_draining(path: &str) -> bool {
    matches!(path, "/v1/health" | "/v1/ready" | "/metrics")
}
