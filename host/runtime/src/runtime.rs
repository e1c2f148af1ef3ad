//! The runtime: one engine, every tool compiled and pre-linked once, a fresh store per call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::cache::{CacheOutcome, CompileCache};
use crate::capture::CapturedOutput;
use crate::clock::{CallClock, CallDeadline, clamp_sleeps_to_deadline};
use crate::engine::{CallSlots, build_engine};
use crate::error::{CallError, LoadError, ToolErrorKind};
use crate::limits::{CallLimits, MAX_CAPTURED_OUTPUT_BYTES, Manifest};
use crate::schema::Schema;
use crate::view::SessionView;

mod bindings {
    wasmtime::component::bindgen!({
        world: "tool",
        path: "../../wit",
    });
}

use bindings::hearth::tool::types as wit;

/// How often the epoch advances. Deadlines are enforced to within one tick.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// `describe` runs once per tool at load time and must be instant.
const DESCRIBE_DEADLINE: Duration = Duration::from_secs(5);

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Load the built-in tools embedded in this binary.
    pub builtins: bool,
    /// Extra tools: one directory per tool holding `tool.wasm` and optionally `tool.toml`.
    pub tools_dir: Option<PathBuf>,
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
    /// `builtin` or the directory the tool was installed from.
    pub source: String,
}

/// How a tool load went, for start-up logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub compiled: usize,
    pub from_cache: usize,
}

struct LoadedTool {
    info: ToolInfo,
    schema: Schema,
    pre: bindings::ToolPre<CallState>,
}

/// Runs tools. Cheap to share behind an `Arc`; `call` takes `&self` and may run on many threads.
pub struct Runtime {
    engine: Engine,
    tools: BTreeMap<String, LoadedTool>,
    stats: LoadStats,
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
    /// Builds the engine, starts its epoch ticker, and loads every tool. Any tool that fails to
    /// load fails the whole start.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let max_calls = config.max_concurrent_calls.max(1);
        let engine = build_engine(config.limits, max_calls)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        // Without a ticker no deadline would fire: refuse to start rather than pretend.
        spawn_epoch_ticker(&engine)
            .map_err(|e| LoadError::Engine(format!("starting the epoch ticker: {e}")))?;

        let cache_path = config.cache_dir.clone();
        let cache =
            CompileCache::new(&engine, config.cache_dir).map_err(|error| LoadError::Cache {
                path: cache_path.unwrap_or_default(),
                error,
            })?;
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| clamp_sleeps_to_deadline(&mut linker))
            .and_then(|()| bindings::Tool::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let wasi_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hearth-wasi")
            .enable_time()
            .build()
            .map_err(|e| LoadError::Engine(format!("starting the WASI timer thread: {e}")))?;

        let mut runtime = Self {
            engine,
            tools: BTreeMap::new(),
            stats: LoadStats::default(),
            wasi_runtime: Some(wasi_runtime),
            slots: CallSlots::new(max_calls),
        };
        if config.builtins {
            for (name, wasm) in crate::BUILTIN_TOOLS {
                runtime.load(
                    &cache,
                    &linker,
                    wasm,
                    "builtin",
                    Some(name),
                    &Manifest::default(),
                    config.limits,
                )?;
            }
        }
        if let Some(dir) = &config.tools_dir {
            runtime.load_dir(&cache, &linker, dir, config.limits)?;
        }
        Ok(runtime)
    }

    /// Loads `<dir>/<name>/tool.wasm` (+ `tool.toml`) for every subdirectory, in name order.
    fn load_dir(
        &mut self,
        cache: &CompileCache,
        linker: &Linker<CallState>,
        dir: &Path,
        limits: CallLimits,
    ) -> Result<(), LoadError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| LoadError::Io { path, error }
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        entries.sort();
        for tool_dir in entries.into_iter().filter(|p| p.is_dir()) {
            let wasm_path = tool_dir.join("tool.wasm");
            let wasm = std::fs::read(&wasm_path).map_err(io(&wasm_path))?;
            let installed = tool_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let manifest = Manifest::load(&tool_dir.join("tool.toml")).map_err(|error| {
                LoadError::Manifest {
                    tool: installed.clone().unwrap_or_default(),
                    error,
                }
            })?;
            let source = tool_dir.display().to_string();
            self.load(
                cache,
                linker,
                &wasm,
                &source,
                installed.as_deref(),
                &manifest,
                limits,
            )?;
        }
        Ok(())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one private call site per source; a struct would only rename them"
    )]
    fn load(
        &mut self,
        cache: &CompileCache,
        linker: &Linker<CallState>,
        wasm: &[u8],
        source: &str,
        installed_as: Option<&str>,
        manifest: &Manifest,
        host_limits: CallLimits,
    ) -> Result<(), LoadError> {
        let source_name = source.to_owned();
        let (component, outcome) =
            cache
                .load(&self.engine, wasm)
                .map_err(|e| LoadError::Compile {
                    source_name: source_name.clone(),
                    reason: format!("{e:#}"),
                })?;
        match outcome {
            CacheOutcome::Hit => self.stats.from_cache += 1,
            CacheOutcome::Compiled => self.stats.compiled += 1,
        }
        let describe_failed = |e: wasmtime::Error| LoadError::Describe {
            source_name: source_name.clone(),
            reason: format!("{e:#}"),
        };
        let pre = linker
            .instantiate_pre(&component)
            .and_then(bindings::ToolPre::new)
            .map_err(describe_failed)?;
        let metadata = self.describe(&pre).map_err(describe_failed)?;

        let name = metadata.name;
        if !is_valid_tool_name(&name) {
            return Err(LoadError::BadName { source_name, name });
        }
        if let Some(installed) = installed_as.filter(|i| *i != name) {
            return Err(LoadError::NameMismatch {
                source_name,
                declared: name,
                installed: installed.to_owned(),
            });
        }
        if self.tools.contains_key(&name) {
            return Err(LoadError::Duplicate(name));
        }
        let schema = Schema::parse(&metadata.input_schema).map_err(|error| LoadError::Schema {
            tool: name.clone(),
            error,
        })?;
        let input_schema = serde_json::from_str(&metadata.input_schema).unwrap_or(Value::Null);
        let (read_only, limits) =
            manifest
                .narrow(metadata.read_only, host_limits)
                .map_err(|error| LoadError::Manifest {
                    tool: name.clone(),
                    error,
                })?;
        tracing::debug!(tool = %name, %source, read_only, ?outcome, "loaded tool");
        let info = ToolInfo {
            name: name.clone(),
            description: metadata.description,
            input_schema,
            read_only,
            limits,
            source: source.to_owned(),
        };
        self.tools.insert(name, LoadedTool { info, schema, pre });
        Ok(())
    }

    /// Enters the Tokio context wasmtime-wasi's host calls run in, unless the caller (e.g. a
    /// worker's `spawn_blocking` thread) already has one.
    fn enter_wasi_context(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => None,
            Err(_) => self.wasi_runtime.as_ref().map(|r| r.enter()),
        }
    }

    /// Asks a freshly instantiated tool what it is, with no filesystem at all.
    fn describe(&self, pre: &bindings::ToolPre<CallState>) -> wasmtime::Result<wit::Metadata> {
        let _context = self.enter_wasi_context();
        let clock = CallClock::start();
        let mut wasi = WasiCtxBuilder::new();
        wasi.monotonic_clock(clock);
        let memory = CallLimits::default().memory_bytes;
        let state = CallState::new(wasi.build(), clock, memory, DESCRIBE_DEADLINE);
        let mut store = new_store(&self.engine, state, DESCRIBE_DEADLINE);
        let instance = pre.instantiate(&mut store)?;
        instance.call_describe(&mut store)
    }

    /// The loaded tools, by name.
    pub fn tools(&self) -> impl Iterator<Item = &ToolInfo> {
        self.tools.values().map(|t| &t.info)
    }

    pub fn tool(&self, name: &str) -> Option<&ToolInfo> {
        self.tools.get(name).map(|t| &t.info)
    }

    /// How many tools were compiled and how many came from the cache at start-up.
    pub fn load_stats(&self) -> LoadStats {
        self.stats
    }

    /// Runs tool `name` with `args` against `view`.
    ///
    /// The arguments are validated first; then a fresh instance runs with exactly the view's
    /// directories as preopens (all read-only for a read-only tool), no environment, no
    /// arguments, no network, stdin closed, stdout and stderr captured with a cap, an epoch
    /// deadline and a memory cap. Whatever the guest does, the store is dropped afterwards.
    pub fn call(&self, view: &SessionView, name: &str, args: &Value) -> Result<Value, CallError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| CallError::UnknownTool(name.to_owned()))?;
        tool.schema
            .validate(args)
            .map_err(|error| CallError::InvalidArguments {
                tool: name.to_owned(),
                error,
            })?;
        let started = Instant::now();
        let _slot = self.slots.acquire();
        let _context = self.enter_wasi_context();
        let result = self.run(tool, view, args);
        let elapsed = started.elapsed();
        match &result {
            Ok(_) => tracing::debug!(tool = name, ?elapsed, "tool call succeeded"),
            Err(
                e @ (CallError::DeadlineExceeded { .. }
                | CallError::MemoryExceeded { .. }
                | CallError::Crashed { .. }),
            ) => {
                let stderr = match e {
                    CallError::Crashed { stderr, .. } => stderr.as_str(),
                    _ => "",
                };
                tracing::warn!(tool = name, ?elapsed, code = e.code(), error = %e, stderr, "tool call hit a limit");
            }
            Err(e) => tracing::debug!(tool = name, ?elapsed, code = e.code(), "tool call refused"),
        }
        result
    }

    fn run(&self, tool: &LoadedTool, view: &SessionView, args: &Value) -> Result<Value, CallError> {
        let info = &tool.info;
        let host_error = |reason: String| CallError::Host {
            tool: info.name.clone(),
            reason,
        };
        let stdout = CapturedOutput::new(MAX_CAPTURED_OUTPUT_BYTES);
        let stderr = CapturedOutput::new(MAX_CAPTURED_OUTPUT_BYTES);

        let clock = CallClock::start();
        let mut wasi = WasiCtxBuilder::new();
        wasi.monotonic_clock(clock);
        // Must precede `preopened_dir`: the flag is captured per directory. It lets filesystem
        // calls run on this (blocking) thread instead of hopping through a thread pool.
        wasi.allow_blocking_current_thread(true)
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut mounts = Vec::with_capacity(view.mounts().len());
        for mount in view.mounts() {
            let writable = mount.writable && !info.read_only;
            let perms = if writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&mount.host_path, &mount.view_path, perms)
                .map_err(|e| host_error(format!("opening {}: {e}", mount.host_path.display())))?;
            mounts.push(wit::Mount {
                path: mount.view_path.clone(),
                writable,
            });
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.path.len()));

        let state = CallState::new(
            wasi.build(),
            clock,
            info.limits.memory_bytes,
            info.limits.deadline,
        );
        let mut store = new_store(&self.engine, state, info.limits.deadline);
        let context = wit::CallContext {
            mounts,
            home: view.home().to_owned(),
        };
        let instance = match tool.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            // The guest has not run yet: only its declared memory can be at fault.
            Err(_) if store.data().limiter.memory_exceeded => {
                return Err(CallError::MemoryExceeded {
                    tool: info.name.clone(),
                    limit_bytes: info.limits.memory_bytes,
                });
            }
            Err(e) => return Err(host_error(format!("instantiating: {e:#}"))),
        };
        let outcome = instance.call_invoke(&mut store, &context, &args.to_string());

        // A guest can return without meeting another epoch check after a sleep the host cut
        // short at the deadline; its answer may rest on a wait that did not happen: refuse it.
        if outcome.is_ok()
            && store
                .data()
                .sleep_cut
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(CallError::DeadlineExceeded {
                tool: info.name.clone(),
                deadline: info.limits.deadline,
            });
        }
        match outcome {
            Ok(Ok(text)) => {
                let size = text.len() as u64;
                if size > info.limits.result_bytes {
                    return Err(CallError::ResultTooLarge {
                        tool: info.name.clone(),
                        size,
                        limit: info.limits.result_bytes,
                    });
                }
                serde_json::from_str(&text).map_err(|e| CallError::InvalidResult {
                    tool: info.name.clone(),
                    reason: e.to_string(),
                })
            }
            Ok(Err(refusal)) => Err(tool_refusal(refusal)),
            Err(error) => Err(classify_failure(info, &error, store.data(), &stderr)),
        }
    }
}

fn new_store(engine: &Engine, state: CallState, deadline: Duration) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    store
}

/// Names agents type and URLs carry: short, lowercase, unambiguous.
fn is_valid_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A tool's error message is shown to agents and logged: a hostile or buggy tool must not make
/// it megabytes long.
const MAX_ERROR_MESSAGE_BYTES: usize = 4 * 1024;

fn tool_refusal(error: wit::ToolError) -> CallError {
    let (kind, mut message) = match error {
        wit::ToolError::InvalidInput(m) => (ToolErrorKind::InvalidInput, m),
        wit::ToolError::InvalidPath(m) => (ToolErrorKind::InvalidPath, m),
        wit::ToolError::NotFound(m) => (ToolErrorKind::NotFound, m),
        wit::ToolError::PermissionDenied(m) => (ToolErrorKind::PermissionDenied, m),
        wit::ToolError::IsDirectory(m) => (ToolErrorKind::IsDirectory, m),
        wit::ToolError::Conflict(m) => (ToolErrorKind::Conflict, m),
        wit::ToolError::TooLarge(m) => (ToolErrorKind::TooLarge, m),
        wit::ToolError::Other(m) => (ToolErrorKind::Other, m),
    };
    if message.len() > MAX_ERROR_MESSAGE_BYTES {
        let mut end = MAX_ERROR_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    CallError::Tool { kind, message }
}

/// Turns a trap or host error into the failure the caller sees. The memory flag is checked
/// first: a guest whose allocation was refused usually dies by `abort`, which is a plain trap.
fn classify_failure(
    info: &ToolInfo,
    error: &wasmtime::Error,
    state: &CallState,
    stderr: &CapturedOutput,
) -> CallError {
    let tool = info.name.clone();
    let trap = error.downcast_ref::<Trap>();
    if matches!(trap, Some(Trap::Interrupt)) {
        return CallError::DeadlineExceeded {
            tool,
            deadline: info.limits.deadline,
        };
    }
    if state.limiter.memory_exceeded {
        return CallError::MemoryExceeded {
            tool,
            limit_bytes: info.limits.memory_bytes,
        };
    }
    let reason = match (trap, error.downcast_ref::<wasmtime_wasi::I32Exit>()) {
        (Some(trap), _) => trap.to_string(),
        (None, Some(exit)) => format!("the tool exited (code {}) instead of returning", exit.0),
        // Anything else raised inside a host call on the guest's behalf (a bad resource handle,
        // a closed stream): the guest's fault, not the worker's.
        (None, None) => format!("{error:#}"),
    };
    let captured = stderr.take();
    CallError::Crashed {
        tool,
        reason,
        stderr: String::from_utf8_lossy(&captured.bytes).into_owned(),
    }
}

/// Everything one call's store owns; dropped with the store at the end of the call.
struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    clock: CallClock,
    deadline: tokio::time::Instant,
    /// Set when a guest's sleep was cut short at the deadline.
    sleep_cut: Arc<AtomicBool>,
}

impl CallState {
    fn new(wasi: WasiCtx, clock: CallClock, memory_bytes: u64, deadline: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter::new(memory_bytes),
            clock,
            deadline: now.checked_add(deadline).unwrap_or(now),
            sleep_cut: Arc::default(),
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
struct CallLimiter {
    memory_bytes: usize,
    memory_exceeded: bool,
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
fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
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
