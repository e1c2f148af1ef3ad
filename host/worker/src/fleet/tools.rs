//! One registry for the fleet: a tool installed, upgraded or removed through any worker is
//! served (or no longer served) by every worker.
//!
//! The store holds the truth (see `hearth_snapshots::ToolRecord`): an install through the API
//! puts the component, installs it here, then writes the tool's record; a removal removes it
//! here, then writes a tombstone. Every worker lists the records every `tools_sync_s` (one
//! LIST, whatever its sessions; a record is read again only when its version in the listing
//! changed) and brings its own tools to what they say, through the same `Runtime::install` and
//! `Runtime::remove` an operator's upload goes through: the component is checked again (the
//! world, its schema, its manifest against *this* worker's grants), and a worker whose grants
//! refuse it keeps what it had and says so in its log.
//!
//! Only installed tools take part. Built-ins and the operator's tools directory are each
//! worker's own configuration; tools installed on a worker before it joined a fleet stay on it
//! until a record names them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hearth_runtime::ToolSource;
use hearth_snapshots::{SnapshotError, ToolRecord, ToolState};

use super::Fleet;
use crate::app::App;
use crate::sessions::now_ms;

/// What this worker last read of each record: the version the store listed it at.
pub type SeenRecords = HashMap<String, String>;

/// Held while a sync pass applies records and while an install or removal through this worker
/// is recorded, so that the two never interleave on one worker.
pub type ToolsGuard<'a> = tokio::sync::MutexGuard<'a, SeenRecords>;

/// The longest the first pass may hold up a worker's start: a store that does not answer in
/// this time is left to the next pass.
pub const FIRST_PASS: Duration = Duration::from_secs(10);

/// Brings this worker's tools to the fleet's records every `tools_sync_s`, until it stops.
pub async fn keep_tools(app: Arc<App>) {
    let Some(fleet) = app.fleet.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(fleet.config.tools_sync_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sync_tools(&app, &fleet).await {
            tracing::warn!(error = %e, "the fleet's tools could not be read");
        }
    }
}

/// One pass: every record whose version changed since the last pass is read and applied.
/// Returns how many changed a tool here.
pub async fn sync_tools(app: &App, fleet: &Fleet) -> Result<usize, SnapshotError> {
    let store = &fleet.snapshots.snapshots;
    let mut seen = fleet.lock_tools().await;
    let mut changed = 0;
    let mut outcome = Ok(());
    for listed in store.list_tool_records().await? {
        if seen.get(&listed.name) == Some(&listed.version) {
            continue;
        }
        let record = match store.tool_record(&listed.name).await.or_else(unreadable) {
            Ok(Some(record)) => record,
            // Gone, or not a record: not read again until its version changes.
            Ok(None) => {
                seen.insert(listed.name, listed.version);
                continue;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        match apply(app, &record).await {
            Ok(true) => changed += 1,
            Ok(false) => {}
            // The store failed half-way: the next pass tries this record again.
            Err(Retry(e)) => {
                outcome = Err(e);
                break;
            }
        }
        seen.insert(listed.name, listed.version);
    }
    // What changed before a failure is said all the same (MCP clients list the tools again).
    if changed > 0 {
        fleet
            .tools_applied
            .fetch_add(changed as u64, Ordering::Relaxed);
        let _ = app.tools_changed.send(());
    }
    outcome.map(|()| changed)
}

/// A record that cannot be read as one is said and skipped (it is not this code's, or it is
/// damaged); the store failing is not.
fn unreadable(e: SnapshotError) -> Result<Option<ToolRecord>, SnapshotError> {
    match e {
        SnapshotError::Corrupt { .. } => {
            tracing::warn!(error = %e, "a tool record of the fleet is skipped");
            Ok(None)
        }
        e => Err(e),
    }
}

/// A store failure that leaves a record to the next pass.
struct Retry(SnapshotError);

/// Brings tool `record.name` on this worker to `record`; whether it changed anything. A record
/// this worker cannot follow (a component that is missing or damaged, one its grants refuse)
/// is said in the log and left: the worker keeps what it had.
async fn apply(app: &App, record: &ToolRecord) -> Result<bool, Retry> {
    let runtime = app.runtime.clone();
    let name = record.name.clone();
    let installed_here = runtime
        .tool(&name)
        .is_some_and(|t| t.source == ToolSource::Installed);
    match &record.state {
        ToolState::Removed if !installed_here => Ok(false),
        ToolState::Removed => {
            let removed = blocking(move || runtime.remove(&name)).await;
            follow(record, removed.map(|r| r.map(|t| t.version)))
        }
        ToolState::Installed {
            component_sha256,
            manifest,
        } => {
            let current = runtime.tool(&name).map(|t| t.version);
            let same_manifest = runtime.installed_manifest(&name).as_deref()
                == Some(manifest.as_deref().unwrap_or(""));
            if installed_here && current.as_deref() == Some(component_sha256) && same_manifest {
                return Ok(false);
            }
            let max = app.config.max_body_bytes as u64;
            let store = &app.snapshots.snapshots;
            let wasm = match store.tool_component(component_sha256, max).await {
                Ok(wasm) => wasm,
                Err(e @ SnapshotError::Store(_)) => return Err(Retry(e)),
                Err(e) => {
                    tracing::warn!(tool = %name, error = %e, "a tool of the fleet cannot be installed here");
                    return Ok(false);
                }
            };
            let manifest = manifest.clone();
            let replace_builtins = app.config.tools.replace_builtins;
            let installed = blocking(move || {
                runtime.install(&name, &wasm, manifest.as_deref(), replace_builtins)
            })
            .await;
            follow(record, installed.map(|r| r.map(|i| i.tool.version)))
        }
    }
}

/// Runs `f` off the async threads (compiling a tool takes a while); `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Says what following `record` did (`outcome`: the version it left, or why it was refused).
fn follow(
    record: &ToolRecord,
    outcome: Option<Result<String, hearth_runtime::InstallError>>,
) -> Result<bool, Retry> {
    let action = match record.state {
        ToolState::Installed { .. } => "install",
        ToolState::Removed => "remove",
    };
    match outcome {
        Some(Ok(version)) => {
            tracing::info!(
                target: "audit",
                action,
                by = %format!("fleet:{}", record.by_worker),
                tool = %record.name,
                version = %version,
                "tool changed as the fleet's registry says"
            );
            Ok(true)
        }
        Some(Err(e)) => {
            tracing::warn!(
                tool = %record.name,
                action,
                by = %record.by_worker,
                error = %e,
                "this worker does not follow the fleet's record of a tool"
            );
            Ok(false)
        }
        None => Ok(false),
    }
}

impl Fleet {
    /// Holds this worker's tool changes and sync passes apart (see [`ToolsGuard`]).
    pub async fn lock_tools(&self) -> ToolsGuard<'_> {
        self.tools_seen.lock().await
    }

    /// Records for the fleet that tool `name` is installed with `wasm` and `manifest` (done on
    /// this worker already, under `guard`).
    pub async fn record_installed(
        &self,
        guard: &mut ToolsGuard<'_>,
        name: &str,
        wasm: Bytes,
        manifest: Option<String>,
    ) -> Result<(), SnapshotError> {
        let store = &self.snapshots.snapshots;
        let outcome = async {
            let component_sha256 = store.put_tool_component(wasm).await?;
            let state = ToolState::Installed {
                component_sha256,
                manifest,
            };
            store.put_tool_record(&self.record(name, state)).await
        }
        .await;
        self.recorded(guard, name, outcome)
    }

    /// Records for the fleet that tool `name` is removed (done on this worker already, under
    /// `guard`).
    pub async fn record_removed(
        &self,
        guard: &mut ToolsGuard<'_>,
        name: &str,
    ) -> Result<(), SnapshotError> {
        let record = self.record(name, ToolState::Removed);
        let outcome = self.snapshots.snapshots.put_tool_record(&record).await;
        self.recorded(guard, name, outcome)
    }

    fn record(&self, name: &str, state: ToolState) -> ToolRecord {
        ToolRecord {
            name: name.to_owned(),
            state,
            at_ms: now_ms(),
            by_worker: self.me.clone(),
        }
    }

    /// A change that could not be recorded is forgotten as read: the next pass brings this
    /// worker back to what the fleet's record says.
    fn recorded(
        &self,
        guard: &mut ToolsGuard<'_>,
        name: &str,
        outcome: Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        if outcome.is_err() {
            guard.remove(name);
        }
        outcome
    }
}
