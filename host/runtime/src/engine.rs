//! The wasmtime engine every tool runs on, and the gate that keeps calls within its capacity.
//!
//! Instances come from a pooling allocator: each call's linear memory is a slot reused from an
//! earlier call, reset by the allocator, with its first pages kept resident. A fresh `mmap` per
//! call would instead pay page faults for every page the guest touches and a TLB-flushing
//! `munmap` at the end — most of a small tool call's cost. The pool has a fixed number of slots,
//! so [`CallSlots`] makes surplus calls wait for one instead of failing.

use std::sync::{Condvar, Mutex};

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::CallLimits;

/// Core module instances one call may make: a Rust `wasm32-wasip2` component needs 3 or 4 (its
/// module plus the shims `wasm-component-ld` adds); a componentize-py one needs 14 (libc,
/// libpython, the WASI adapter, its runtime and bindings, …). Each costs only address space
/// until used.
const CORE_INSTANCES_PER_CALL: u32 = 16;
/// Bytes of each memory slot kept resident between calls (reset with `memset`, not re-faulted).
const MEMORY_KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// Builds the engine: epoch interruption on (deadlines), a pooling allocator sized for
/// `max_concurrent_calls` instances whose memories may grow to `limits.memory_bytes`.
pub(crate) fn build_engine(
    limits: CallLimits,
    max_concurrent_calls: u32,
) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_concurrent_calls)
        .total_core_instances(max_concurrent_calls * CORE_INSTANCES_PER_CALL)
        .max_core_instances_per_component(CORE_INSTANCES_PER_CALL)
        .total_memories(max_concurrent_calls * 2)
        .total_tables(max_concurrent_calls * CORE_INSTANCES_PER_CALL)
        .total_stacks(max_concurrent_calls)
        .max_memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 * 1024)
        // Where the kernel has `PAGEMAP_SCAN` (Linux 6.7+), a slot is reset by rewriting only
        // the pages the call dirtied, not the whole resident part: a small call dirties a few
        // pages of the 2 MiB, and the `memset` of all of it was a tenth of a busy worker's CPU
        // (issue 19). Elsewhere, the `memset` as before.
        .pagemap_scan(Enabled::Auto);
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// A counting semaphore over the pool's slots. Blocking is fine: calls run on blocking threads.
pub(crate) struct CallSlots {
    state: Mutex<SlotCount>,
    freed: Condvar,
}

struct SlotCount {
    free: u32,
    /// Callers blocked in [`CallSlots::acquire`]. A release wakes one only when there is one:
    /// `Condvar::notify_one` is a `futex` system call even with no waiter, and it was one per
    /// tool call (issue 19).
    waiting: u32,
}

/// One held slot; returned on drop.
pub(crate) struct CallSlot<'a>(&'a CallSlots);

impl CallSlots {
    pub(crate) fn new(slots: u32) -> Self {
        Self {
            state: Mutex::new(SlotCount {
                free: slots,
                waiting: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot.
    pub(crate) fn acquire(&self) -> CallSlot<'_> {
        let mut state = self.lock();
        while state.free == 0 {
            state.waiting += 1;
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.waiting -= 1;
        }
        state.free -= 1;
        CallSlot(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotCount> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for CallSlot<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.free += 1;
        if state.waiting > 0 {
            self.0.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn slots_block_until_released() {
        let slots = Arc::new(CallSlots::new(1));
        let held = slots.acquire();
        let waiter = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                let _slot = slots.acquire();
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "the second caller waits while the only slot is held"
        );
        drop(held);
        waiter.join().unwrap();
    }

    #[test]
    fn every_waiter_gets_a_slot_in_turn() {
        let slots = Arc::new(CallSlots::new(2));
        let held = [slots.acquire(), slots.acquire()];
        let waiters: Vec<_> = (0..6)
            .map(|_| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    let _slot = slots.acquire();
                    std::thread::sleep(std::time::Duration::from_millis(2));
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(waiters.iter().all(|w| !w.is_finished()));
        drop(held);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        let state = slots.lock();
        assert_eq!((state.free, state.waiting), (2, 0));
    }
}
