//! Deadlines that also hold while a guest is blocked in the host.
//!
//! Epoch interruption is checked in wasm code only. A guest that sleeps (`wasi:clocks`
//! `subscribe-duration` / `subscribe-instant`, then `poll`) is blocked inside the host, where no
//! epoch check runs: a `sleep(1 h)` would hold a worker thread for an hour past its deadline.
//! The runtime therefore replaces both subscribe functions with versions whose pollable becomes
//! ready at the earlier of the guest's wish and the call's deadline; back in wasm, the epoch
//! check ends the call as "deadline exceeded".

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

/// The `wasi:clocks` version whose functions are replaced; the linker matches every guest import
/// of a semver-compatible 0.2.x version to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// What the replaced functions need from a store.
pub(crate) trait CallDeadline {
    /// When the current call must end.
    fn deadline(&self) -> tokio::time::Instant;
    fn table(&mut self) -> &mut ResourceTable;
    /// The guest's monotonic clock (the one given to its WASI context).
    fn clock(&self) -> CallClock;
    /// Raised when a sleep ends early because of the deadline.
    fn sleep_cut(&self) -> Arc<AtomicBool>;
}

/// The guest's monotonic clock: nanoseconds since the call began. Owning it lets the host turn
/// a guest's `subscribe-instant` into a wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallClock {
    start: std::time::Instant,
}

impl CallClock {
    pub(crate) fn start() -> Self {
        Self {
            start: std::time::Instant::now(),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl wasmtime_wasi::HostMonotonicClock for CallClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.now_nanos()
    }
}

/// Installs the clamped subscribe functions over wasmtime-wasi's own.
pub(crate) fn clamp_sleeps_to_deadline<T: CallDeadline + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (nanos,): (u64,)| {
        let state = store.data_mut();
        Ok((clamped(state, Duration::from_nanos(nanos))?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store, (when,): (u64,)| {
        let state = store.data_mut();
        let now = state.clock().now_nanos();
        Ok((clamped(
            state,
            Duration::from_nanos(when.saturating_sub(now)),
        )?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

fn clamped<T: CallDeadline>(
    state: &mut T,
    wait: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let deadline = state.deadline();
    let wished = tokio::time::Instant::now()
        .checked_add(wait)
        .unwrap_or(deadline);
    let (until, cut) = if wished > deadline {
        (deadline, Some(state.sleep_cut()))
    } else {
        (wished, None)
    };
    let sleep = state.table().push(ClampedSleep { until, cut })?;
    subscribe(state.table(), sleep)
}

/// A sleep that ends no later than the call's deadline.
struct ClampedSleep {
    until: tokio::time::Instant,
    /// Present when the guest asked for longer than the deadline allows; raised once the
    /// shortened sleep is over.
    cut: Option<Arc<AtomicBool>>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for ClampedSleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.until).await;
        if let Some(cut) = &self.cut {
            cut.store(true, Ordering::Release);
        }
    }
}
