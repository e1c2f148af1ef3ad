//! One call's store and the limits it enforces: the epoch deadline (and the ticker that
//! advances the epoch), the memory, table and instance caps, and the state the store owns —
//! all dropped with the store when the call ends.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hearth_egress::HostPattern;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::listing::ListingGrant;
use super::wit;
use crate::clock::{CallClock, CallDeadline};
use crate::network::CallNetwork;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the epoch advances. Deadlines are enforced to within one tick.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A store for one call, owning `state`: its limiter installed, and a trap once `deadline` has
/// passed (rounded up to whole epoch ticks, plus the tick already under way).
pub(super) fn new_store(engine: &Engine, state: CallState, deadline: Duration) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    store
}

/// Everything one call's store owns; dropped with the store at the end of the call.
pub(super) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: CallLimiter,
    clock: CallClock,
    deadline: tokio::time::Instant,
    /// Set when a guest's sleep was cut short at the deadline.
    pub(super) sleep_cut: Arc<AtomicBool>,
    http: WasiHttpCtx,
    /// Where the call's HTTP requests may go (`crate::network`): nowhere unless granted.
    network: CallNetwork,
    /// What the `listing` import may list: the call's mounts (none until granted).
    listing: ListingGrant,
}

impl CallState {
    /// `network`: the tool's allow-list and whether credential headers may leave.
    pub(super) fn new(
        wasi: WasiCtx,
        clock: CallClock,
        memory_bytes: u64,
        deadline: Duration,
        network: (Arc<Vec<HostPattern>>, bool),
    ) -> Self {
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(deadline).unwrap_or(now);
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter::new(memory_bytes),
            clock,
            deadline,
            sleep_cut: Arc::default(),
            http: WasiHttpCtx::new(),
            network: CallNetwork::new(network.0, network.1, deadline),
            listing: ListingGrant::default(),
        }
    }

    /// Lets the `listing` import list `grant`'s directories: the same mounts as the preopens.
    pub(super) fn with_listing(mut self, grant: ListingGrant) -> Self {
        self.listing = grant;
        self
    }

    pub(super) fn listing(&self) -> &ListingGrant {
        &self.listing
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.network,
        }
    }
}

impl CallDeadline for CallState {
    fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    fn clock(&self) -> CallClock {
        self.clock
    }

    fn sleep_cut(&self) -> Arc<AtomicBool> {
        self.sleep_cut.clone()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for CallState {}

/// Caps linear memory and tables, and remembers that a cap was hit so the failure can be named.
pub(super) struct CallLimiter {
    memory_bytes: usize,
    pub(super) memory_exceeded: bool,
}

/// A tool has no business with more table slots than this (function references).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Core instances, memories and tables per store: a Rust component uses a handful.
const MAX_INSTANCES: usize = 64;

impl CallLimiter {
    fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
pub(super) fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("hearth-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}
