//! A fleet of workers sharing one snapshot store: who is alive (`lease`), where a request for
//! a session this worker does not hold goes (`door`), and the tools every worker serves
//! (`tools`). Without `[fleet] advertise_url` none of it runs and a worker stands alone.

use serde::Deserialize;

/// `[fleet]`: how this worker takes part in a fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// The URL other workers forward this worker's sessions to (`http://hearth-0.hearth:8080`);
    /// setting it turns the fleet on. Needs a snapshot store every worker shares.
    pub advertise_url: Option<String>,
    /// A worker that has not renewed its lease for this long is taken for dead: any door may
    /// take its sessions over. Clocks of the fleet must agree to well within it.
    pub lease_ttl_s: f64,
    /// How often a worker renews its lease (one store write, whatever the sessions).
    pub lease_renew_s: f64,
    /// How often a worker looks for tools installed, upgraded or removed through another.
    pub tools_sync_s: f64,
    /// The longest a forwarded request may wait for the owner to answer its headers.
    pub forward_timeout_s: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            advertise_url: None,
            lease_ttl_s: 15.0,
            lease_renew_s: 5.0,
            tools_sync_s: 5.0,
            forward_timeout_s: 300.0,
        }
    }
}

/// Why `url` cannot be a worker's advertised URL, if it cannot: `http://host[:port]`, nothing
/// more. Checked where it is configured and again where a lease read from the store names it.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed: hyper::Uri = url
        .parse()
        .map_err(|e| format!("advertise_url {url:?}: {e}"))?;
    if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
        return Err(format!(
            "advertise_url {url:?} must be http://host[:port] (workers forward to each other \
             over the cluster's network)"
        ));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() || parsed.query().is_some() {
        return Err(format!("advertise_url {url:?} must have no path"));
    }
    Ok(())
}

impl FleetConfig {
    /// Whether this worker is part of a fleet.
    pub fn enabled(&self) -> bool {
        self.advertise_url.is_some()
    }

    /// Puts the port the worker bound in an advertised URL that says port 0 (tests and
    /// `listen = "…:0"` start before they know it).
    pub fn advertise_port(&mut self, port: u16) {
        let Some(url) = &self.advertise_url else {
            return;
        };
        if let Ok(uri) = url.parse::<hyper::Uri>()
            && uri.port_u16() == Some(0)
            && let Some(host) = uri.host()
        {
            self.advertise_url = Some(format!("http://{host}:{port}"));
        }
    }

    /// Why the settings cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.advertise_url {
            check_url(url)?;
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.lease_ttl_s)
            && positive(self.lease_renew_s)
            && positive(self.tools_sync_s)
            && positive(self.forward_timeout_s))
        {
            return Err(
                "lease_ttl_s, lease_renew_s, tools_sync_s and forward_timeout_s must be \
                        positive"
                    .into(),
            );
        }
        if self.lease_renew_s * 2.0 > self.lease_ttl_s {
            return Err(
                "lease_renew_s must be at most half of lease_ttl_s, so that one late renewal \
                 does not let the lease lapse"
                    .into(),
            );
        }
        Ok(())
    }
}

mod door;
mod keeper;
mod tools;

pub use door::{Route, TakeOverError};
pub use keeper::keep_lease;
pub use tools::{FIRST_PASS, ToolsGuard, keep_tools, sync_tools};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_snapshots::{Claim, Ended, Owner, SnapshotError};

use crate::snapshots::SnapshotService;

/// What every owner of a session needs to serve it, carried in its ownership records from
/// worker to worker: who may open it, how big its volume is, what its programs may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terms {
    /// The SHA-256 of the session's own token (see `tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The session's quota, when it has a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_inodes: Option<u64>,
    /// What the session asked its programs may reach (absent: the worker's `[egress] allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<String>>,
}

impl Terms {
    /// The terms as an ownership record carries them.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The terms a record carries (a record of another version reads as no terms).
    pub fn of(owner: &Owner) -> Self {
        serde_json::from_value(owner.terms.clone()).unwrap_or_default()
    }

    /// The quota, when the session has one.
    pub fn quota(&self) -> Option<hearth_volume::Quota> {
        Some(hearth_volume::Quota {
            bytes: self.quota_bytes?,
            inodes: self.quota_inodes?,
        })
    }
}

/// How long a resolved route to another worker is trusted without asking the store again. A
/// stale one costs a forward that fails and a fresh look, never a wrong answer: the owner
/// itself checks that it owns the session.
const ROUTE_CACHE: Duration = Duration::from_secs(1);
/// Routes remembered at most (requests for random ids must not grow the map without end).
const ROUTES_KEPT: usize = 65_536;

/// This worker's part in the fleet.
pub struct Fleet {
    pub config: FleetConfig,
    /// This worker's id, as ownership records and leases name it.
    pub me: String,
    /// Where the fleet reaches this worker.
    pub url: String,
    snapshots: Arc<SnapshotService>,
    routes: Mutex<HashMap<String, (Instant, Route)>>,
    /// One takeover at a time per session on this worker.
    takeovers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Store requests spent on leases: this worker's renewals and release, and doors reading
    /// others' (for the metrics and the benchmark).
    pub lease_requests: std::sync::atomic::AtomicU64,
    /// When the last renewal that counts was sent (see `keeper`).
    last_renewed_ms: std::sync::atomic::AtomicU64,
    /// Requests this worker forwarded to another.
    pub forwarded: std::sync::atomic::AtomicU64,
    /// Sessions this worker took over.
    pub taken_over: std::sync::atomic::AtomicU64,
    /// The version of each tool record this worker last read (see `tools`).
    tools_seen: tokio::sync::Mutex<tools::SeenRecords>,
    /// Tool changes this worker made because the fleet's registry said so.
    pub tools_applied: std::sync::atomic::AtomicU64,
}

impl Fleet {
    /// The fleet part of a worker configured with `config` (`None`: the worker stands alone).
    pub fn new(config: &FleetConfig, snapshots: Arc<SnapshotService>) -> Option<Arc<Self>> {
        let url = config.advertise_url.clone()?;
        Some(Arc::new(Self {
            config: config.clone(),
            me: snapshots.worker.clone(),
            url: url.trim_end_matches('/').to_owned(),
            snapshots,
            routes: Mutex::default(),
            takeovers: Mutex::default(),
            lease_requests: std::sync::atomic::AtomicU64::new(0),
            last_renewed_ms: std::sync::atomic::AtomicU64::new(0),
            forwarded: std::sync::atomic::AtomicU64::new(0),
            taken_over: std::sync::atomic::AtomicU64::new(0),
            tools_seen: tokio::sync::Mutex::default(),
            tools_applied: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Claims a new session for this worker with `terms`. An id another worker serves (or
    /// served, and may come back to) is refused with `Ok(None)`, unless the create restores
    /// that very session's own snapshot (`moving`): an operator moving it here on purpose.
    pub async fn claim_new(
        &self,
        id: &str,
        terms: &Terms,
        moving: bool,
    ) -> Result<Option<u64>, SnapshotError> {
        let store = &self.snapshots.snapshots;
        let seen = store.owner(id).await?;
        if seen.as_ref().is_some_and(|o| o.ended.is_none()) && !moving {
            return Ok(None);
        }
        let claim = Claim {
            terms: Some(terms.to_value()),
            ended: None,
        };
        let owner = store
            .claim_after(id, seen.as_ref(), &self.me, claim)
            .await?;
        self.forget(id);
        Ok(owner.map(|o| o.epoch))
    }

    /// Publishes new terms for a session this worker owns at `epoch`; returns the new epoch,
    /// or `None` if another worker took the session over meanwhile.
    pub async fn publish_terms(
        &self,
        id: &str,
        epoch: u64,
        terms: &Terms,
    ) -> Result<Option<u64>, SnapshotError> {
        let claim = Claim {
            terms: Some(terms.to_value()),
            ended: None,
        };
        self.succeed(id, epoch, claim).await
    }

    /// Leaves a tombstone for a session this worker owned at `epoch` and no longer serves
    /// (deleted, expired): no door brings it back.
    pub async fn end(&self, id: &str, epoch: u64, ended: Ended) -> Result<(), SnapshotError> {
        let claim = Claim {
            terms: None,
            ended: Some(ended),
        };
        self.succeed(id, epoch, claim).await.map(|_| ())
    }

    /// A new record after this worker's own at `epoch`, if that is still the latest.
    async fn succeed(
        &self,
        id: &str,
        epoch: u64,
        claim: Claim,
    ) -> Result<Option<u64>, SnapshotError> {
        let store = &self.snapshots.snapshots;
        let seen = store.owner(id).await?;
        self.forget(id);
        match seen {
            Some(owner) if owner.epoch == epoch && owner.worker == self.me => Ok(store
                .claim_after(id, Some(&owner), &self.me, claim)
                .await?
                .map(|o| o.epoch)),
            _ => Ok(None),
        }
    }

    /// The fleet's counters, in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = [
            (
                "hearth_fleet_lease_store_requests_total",
                "Store requests spent on leases.",
                &self.lease_requests,
            ),
            (
                "hearth_fleet_forwarded_total",
                "Requests forwarded to the session's owner.",
                &self.forwarded,
            ),
            (
                "hearth_fleet_takeovers_total",
                "Sessions taken over by this worker.",
                &self.taken_over,
            ),
            (
                "hearth_fleet_tools_applied_total",
                "Tool installs, upgrades and removals made here from the fleet's registry.",
                &self.tools_applied,
            ),
        ];
        counters
            .iter()
            .map(|(name, help, value)| {
                format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    value.load(Relaxed)
                )
            })
            .collect()
    }

    /// Drops what this worker remembers of where session `id` is served.
    pub fn forget(&self, id: &str) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(id);
        }
    }
}
