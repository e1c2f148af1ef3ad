//! Every worker is a door: where a request for a session this worker does not hold goes.
//!
//! The session's ownership records say who owns it; the owner's lease says whether that
//! worker is alive and where it listens. A live owner gets the request forwarded (by the HTTP
//! layer); an owner whose lease lapsed (or was released by a drain) has its session taken
//! over here: a new epoch claimed after the one seen, then the latest snapshot restored. Of
//! doors racing to take a session over, the store lets exactly one claim the epoch; the
//! others find the winner and forward to it.

use std::sync::Arc;
use std::time::Instant;

use hearth_snapshots::{Claim, Ended, Owner, SnapshotError};

use super::{Fleet, ROUTE_CACHE, ROUTES_KEPT, Terms};
use crate::app::App;
use crate::sessions::{Session, SessionError};

/// Where a request for a session not held here goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// Another worker, alive, serves it.
    Forward {
        worker: String,
        url: String,
        /// How long its lease holds without a renewal.
        lease_remaining_ms: u64,
        terms: Terms,
    },
    /// Nobody alive serves it (its owner's lease lapsed or was released, or the owner is this
    /// worker without the session on disk): take it over from the record seen.
    TakeOver(Owner),
    /// It ended: deleted, or expired.
    Ended(Ended),
    /// No worker ever claimed it.
    Unknown,
}

impl Route {
    /// The session's terms, when it is served at all.
    pub fn terms(&self) -> Option<Terms> {
        match self {
            Route::Forward { terms, .. } => Some(terms.clone()),
            Route::TakeOver(owner) => Some(Terms::of(owner)),
            Route::Ended(_) | Route::Unknown => None,
        }
    }
}

/// Why a takeover did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TakeOverError {
    /// Another worker claimed the session first: ask again where it is.
    #[error("another worker took the session over first")]
    Lost,
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("the restored session could not be prepared: {0}")]
    Prepare(String),
}

impl Fleet {
    /// Where session `id` is served, asking the store unless a route to another worker was
    /// found within the last second.
    pub async fn resolve(&self, id: &str) -> Result<Route, SnapshotError> {
        if let Some(route) = self.cached(id) {
            return Ok(route);
        }
        let store = &self.snapshots.snapshots;
        let route = match store.owner(id).await? {
            None => Route::Unknown,
            Some(Owner {
                ended: Some(ended), ..
            }) => Route::Ended(ended),
            Some(owner) if owner.worker == self.me => Route::TakeOver(owner),
            Some(owner) => {
                self.count_lease_request();
                match store.lease(&owner.worker).await? {
                    Some(lease) if lease.is_live() => {
                        super::check_url(&lease.url).map_err(|why| {
                            SnapshotError::Store(format!("the lease of {}: {why}", owner.worker))
                        })?;
                        Route::Forward {
                            worker: owner.worker.clone(),
                            url: lease.url.clone(),
                            lease_remaining_ms: lease.remaining_ms(),
                            terms: Terms::of(&owner),
                        }
                    }
                    _ => Route::TakeOver(owner),
                }
            }
        };
        if matches!(route, Route::Forward { .. })
            && let Ok(mut routes) = self.routes.lock()
        {
            if routes.len() >= ROUTES_KEPT {
                routes.clear();
            }
            routes.insert(id.to_owned(), (Instant::now(), route.clone()));
        }
        Ok(route)
    }

    fn cached(&self, id: &str) -> Option<Route> {
        let routes = self.routes.lock().ok()?;
        let (at, route) = routes.get(id)?;
        (at.elapsed() < ROUTE_CACHE).then(|| route.clone())
    }

    fn count_lease_request(&self) {
        self.lease_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes session `seen` names over on this worker: claims the epoch after `seen`'s, then
    /// restores the session's latest snapshot (none: it starts empty, as its owner lost all
    /// it had) with the terms the record carries. One takeover per session at a time here;
    /// whoever waited for it finds the session served.
    pub async fn take_over(
        &self,
        app: &Arc<App>,
        id: &str,
        seen: Owner,
    ) -> Result<Arc<Session>, TakeOverError> {
        let gate = {
            let mut takeovers = self
                .takeovers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            takeovers.entry(id.to_owned()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        if let Ok(session) = app.sessions.get(id) {
            return Ok(session);
        }
        let started = Instant::now();
        let terms = Terms::of(&seen);
        // A session whose token nobody knows opens with the worker's token only.
        let token_sha256 = terms
            .token_sha256
            .clone()
            .unwrap_or_else(|| crate::tokens::mint().1);
        let (app2, id2, me) = (app.clone(), id.to_owned(), self.me.clone());
        let made = tokio::task::spawn_blocking(move || {
            app2.sessions.create::<TakeOverError>(
                Some(id2),
                terms.quota(),
                terms.egress.clone(),
                token_sha256,
                |id, work_tree, git_dir, state_dir| {
                    let runtime = tokio::runtime::Handle::current();
                    let store = &app2.snapshots.snapshots;
                    let claim = Claim::default();
                    let owner = runtime
                        .block_on(store.claim_after(id, Some(&seen), &me, claim))?
                        .ok_or(TakeOverError::Lost)?;
                    match runtime
                        .block_on(app2.snapshots.restore(id, work_tree, git_dir, state_dir))
                    {
                        Ok(()) | Err(SnapshotError::NotFound(_)) => Ok(owner.epoch),
                        Err(e) => Err(e.into()),
                    }
                },
            )
        })
        .await
        .map_err(|e| TakeOverError::Prepare(e.to_string()))?;
        if let Ok(mut takeovers) = self.takeovers.lock() {
            takeovers.remove(id);
        }
        self.forget(id);
        let session = made?;
        self.taken_over
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            target: "audit",
            session = %id,
            epoch = session.epoch(),
            took_ms = started.elapsed().as_millis() as u64,
            "session taken over"
        );
        Ok(session)
    }
}
