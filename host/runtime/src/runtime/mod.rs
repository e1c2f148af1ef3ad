//! The runtime: one engine, every tool compiled and pre-linked once, a fresh store per call.
//!
//! This file holds the runtime's configuration, the answers about loaded tools, and the
//! `Runtime` itself; its work is beside it:
//! - `load`: building the engine, compiling and pre-linking a tool, asking it what it is, and
//!   loading every tool at start (a tool that fails is skipped and reported, never fatal);
//! - `registry`: installing, upgrading and removing tools on a running runtime;
//! - `call`: `Runtime::call`, which lists every grant a call gets, and how its failure is named;
//! - `store`: what one call's store owns, and the limits it enforces (deadline, memory, tables).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::cache::CompileCache;
use crate::engine::CallSlots;
use crate::limits::CallLimits;
use crate::manifest::{Grant, MountAccess, Policy};
use crate::schema::Schema;

mod call;
mod listing;
mod load;
mod registry;
mod store;

pub use registry::{InstallError, Installed};

use store::CallState;

mod bindings {
    wasmtime::component::bindgen!({
        world: "tool",
        path: "../../wit",
    });
}

use bindings::hearth::tool::types as wit;

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Load the built-in tools embedded in this binary.
    pub builtins: bool,
    /// Extra tools: one directory per tool holding `tool.wasm` and optionally `tool.toml`.
    pub tools_dir: Option<PathBuf>,
    /// Where tools installed on the running runtime are kept (same layout as `tools_dir`), and
    /// loaded again at start; `None`: installs are refused.
    pub installed_dir: Option<PathBuf>,
    /// What the operator grants each tool beyond the defaults, by tool name.
    pub grants: BTreeMap<String, Grant>,
    /// Where compiled artifacts are kept between restarts; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// The host's limits for every call: the default, and the ceiling a manifest may lower.
    pub limits: CallLimits,
    /// Calls that run at once; more wait for a slot. Each slot reserves address space (not
    /// memory) for one instance.
    pub max_concurrent_calls: u32,
}

/// Enough for a loaded 2-core worker (each call holds a slot only while its guest runs).
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 128;

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            builtins: true,
            tools_dir: None,
            installed_dir: None,
            grants: BTreeMap::new(),
            cache_dir: None,
            limits: CallLimits::default(),
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
        }
    }
}

/// What agents and operators can know about a loaded tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    /// Effective: what the tool declares, narrowed by its manifest.
    pub read_only: bool,
    pub limits: CallLimits,
    pub source: ToolSource,
    /// The SHA-256 of the component, in hex: what an upgrade changes.
    pub version: String,
    /// The view areas the tool sees (`None`: the whole view), as its manifest narrows them.
    pub mounts: Option<BTreeMap<String, MountAccess>>,
    /// The names of the environment variables it is given (never their values).
    pub env: Vec<String>,
    /// The hosts its HTTP requests may go to.
    pub network: Vec<String>,
    /// When it was loaded (ms since the epoch), and how long compiling (or taking it from the
    /// cache), linking and asking it what it is took.
    pub loaded_at_ms: u64,
    pub load_ms: u64,
}

/// Where a tool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolSource {
    /// Embedded in this binary.
    Builtin,
    /// The operator's `tools_dir`, read at start.
    Directory(PathBuf),
    /// Installed on the running worker (kept in `installed_dir`).
    Installed,
}

impl std::fmt::Display for ToolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolSource::Builtin => f.write_str("builtin"),
            ToolSource::Directory(dir) => write!(f, "{}", dir.display()),
            ToolSource::Installed => f.write_str("installed"),
        }
    }
}

/// A tool that could not be loaded at start: skipped, and said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedTool {
    /// Where it came from (`builtin:<name>`, its directory).
    pub source: String,
    pub error: String,
}

/// How a tool load went, for start-up logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub compiled: usize,
    pub from_cache: usize,
}

struct LoadedTool {
    info: ToolInfo,
    policy: Policy,
    schema: Schema,
    pre: bindings::ToolPre<CallState>,
}

/// Runs tools. Cheap to share behind an `Arc`; `call` takes `&self` and may run on many threads.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompileCache,
    host_limits: CallLimits,
    grants: BTreeMap<String, Grant>,
    installed_dir: Option<PathBuf>,
    /// Each tool swaps as a whole: a call takes its `Arc` and finishes on that version, whatever
    /// is installed meanwhile.
    tools: RwLock<BTreeMap<String, Arc<LoadedTool>>>,
    failed: Vec<FailedTool>,
    stats: Mutex<LoadStats>,
    /// One install at a time: two uploads of the same name must not interleave on disk.
    installing: Mutex<()>,
    /// wasmtime-wasi's synchronous bindings run each host call as a future. Without a Tokio
    /// context on the calling thread they fall back to a global runtime and a `yield_now` per
    /// host call, which costs tens of microseconds each; entering this runtime's context makes
    /// them a direct poll on the calling thread. Its one thread drives the timers of guest
    /// sleeps. `Option` only so `Drop` can shut it down from any context.
    wasi_runtime: Option<tokio::runtime::Runtime>,
    slots: CallSlots,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.wasi_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Runtime {
    /// Enters the Tokio context wasmtime-wasi's host calls run in, unless the caller (e.g. a
    /// worker's `spawn_blocking` thread) already has one.
    fn enter_wasi_context(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => None,
            Err(_) => self.wasi_runtime.as_ref().map(|r| r.enter()),
        }
    }
}
