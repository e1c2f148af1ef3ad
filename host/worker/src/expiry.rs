//! Idle sessions expire: after `idle_expire_s` without a call, a session is snapshotted and its
//! directories are freed. Nothing a snapshot keeps is lost — it is removed only if nothing
//! changed after the snapshot, and a store that fails keeps it; `/tmp`, scratch space that no
//! snapshot holds, goes with it — and its id then answers 404 `session_expired`
//! naming the snapshot, which `POST /v1/sessions {"id", "from_snapshot"}` brings back, here or
//! on any worker sharing the store.

use std::time::Duration;

use crate::fleet::Fleet;
use crate::sessions::{Sessions, now_ms};
use crate::snapshots::SnapshotService;

/// Checks sessions for idleness until the worker stops (off when `idle` is 0 s).
pub async fn run(
    sessions: &Sessions,
    snapshots: &SnapshotService,
    fleet: Option<&Fleet>,
    idle: f64,
) {
    if idle <= 0.0 {
        return;
    }
    let idle_ms = (idle * 1000.0) as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64((idle / 4.0).clamp(0.25, 30.0)));
    loop {
        tick.tick().await;
        for session in sessions.list() {
            // In use, or a snapshot that failed is waiting for its retry: not now.
            if now_ms().saturating_sub(session.last_used_ms()) < idle_ms
                || session.is_busy()
                || !snapshots.may_try(&session)
            {
                continue;
            }
            let snapshot = match snapshots.take(sessions, &session).await {
                Ok(info) => info.id,
                Err(e) => {
                    tracing::warn!(session = %session.id, error = %e, "an idle session could not be snapshotted; it stays");
                    continue;
                }
            };
            let seen = session.snapshots.snapshotted_changes();
            let epoch = session.epoch();
            match sessions.delete_if_unchanged(&session.id, seen).await {
                Ok(true) => {
                    sessions.mark_expired(&session.id, &snapshot);
                    if let Some(fleet) = fleet {
                        // Any door then answers `session_expired` with the snapshot.
                        let ended = hearth_snapshots::Ended {
                            reason: "expired".into(),
                            snapshot: Some(snapshot.clone()),
                        };
                        if let Err(e) = fleet.end(&session.id, epoch, ended).await {
                            tracing::warn!(session = %session.id, error = %e, "the expiry could not be recorded in the store");
                        }
                    }
                    tracing::info!(session = %session.id, %snapshot, "idle session expired");
                }
                // Used again since the snapshot: it stays.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session = %session.id, error = %e, "expiring an idle session failed")
                }
            }
        }
    }
}
