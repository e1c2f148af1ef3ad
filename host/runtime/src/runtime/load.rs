//! Loading: the engine and its epoch ticker, then every tool — built in, one directory per tool
//! under `tools_dir`, and the tools installed earlier — compiled (or taken from the cache),
//! pre-linked, asked what it is, and given its policy. A tool that fails to load is skipped,
//! logged and listed in [`Runtime::failed`]: no single tool stops a worker from starting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;

use super::store::{CallState, new_store, spawn_epoch_ticker};
use super::{
    FailedTool, LoadStats, LoadedTool, Runtime, RuntimeConfig, ToolInfo, ToolSource, bindings, wit,
};
use crate::cache::{CacheOutcome, CompileCache};
use crate::clock::{CallClock, clamp_sleeps_to_deadline};
use crate::engine::{CallSlots, build_engine};
use crate::error::LoadError;
use crate::limits::CallLimits;
use crate::manifest::{Grant, Manifest};
use crate::schema::Schema;

/// `describe` runs once per tool at load time and must be instant (a componentized Python
/// interpreter takes a few hundred milliseconds to start in a debug build).
const DESCRIBE_DEADLINE: Duration = Duration::from_secs(5);

impl Runtime {
    /// Builds the engine, starts its epoch ticker, and loads every tool. Only the engine can
    /// fail the start; a tool that fails to load is skipped (see [`Runtime::failed`]).
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
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker))
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
            linker,
            cache,
            host_limits: config.limits,
            grants: config.grants,
            installed_dir: config.installed_dir.clone(),
            tools: RwLock::new(BTreeMap::new()),
            failed: Vec::new(),
            stats: Mutex::new(LoadStats::default()),
            installing: Mutex::new(()),
            wasi_runtime: Some(wasi_runtime),
            slots: CallSlots::new(max_calls),
        };
        if config.builtins {
            for (name, wasm) in crate::BUILTIN_TOOLS {
                let loaded =
                    runtime.prepare(wasm, ToolSource::Builtin, Some(name), &Manifest::default());
                runtime.keep(format!("builtin:{name}"), loaded);
            }
        }
        if let Some(dir) = &config.tools_dir {
            runtime.load_dir(dir, |tool_dir| ToolSource::Directory(tool_dir.to_owned()));
        }
        if let Some(dir) = &config.installed_dir {
            runtime.load_dir(dir, |_| ToolSource::Installed);
        }
        Ok(runtime)
    }

    /// Adds a tool loaded at start, or says why it was skipped.
    fn keep(&mut self, source: String, loaded: Result<LoadedTool, LoadError>) {
        let loaded = loaded.and_then(|tool| {
            let tools = self.tools.get_mut().unwrap_or_else(|p| p.into_inner());
            match tools.contains_key(&tool.info.name) {
                true => Err(LoadError::Duplicate(tool.info.name)),
                false => {
                    tools.insert(tool.info.name.clone(), Arc::new(tool));
                    Ok(())
                }
            }
        });
        if let Err(error) = loaded {
            tracing::error!(%source, %error, "a tool failed to load; the worker starts without it");
            self.failed.push(FailedTool {
                source,
                error: error.to_string(),
            });
        }
    }

    /// Loads `<dir>/<name>/tool.wasm` (+ `tool.toml`) for every subdirectory, in name order.
    fn load_dir(&mut self, dir: &Path, source: impl Fn(&Path) -> ToolSource) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            // An installed-tools directory not made yet holds no tools.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) => {
                let error = LoadError::Io {
                    path: dir.to_owned(),
                    error,
                };
                return self.keep(dir.display().to_string(), Err(error));
            }
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        entries.sort();
        // Half-done installs (`.<name>.new`, `.<name>.old`) are not tools.
        let is_tool = |p: &PathBuf| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        };
        for tool_dir in entries.into_iter().filter(is_tool) {
            let loaded = read_tool_dir(&tool_dir).and_then(|(wasm, manifest, name)| {
                self.prepare(&wasm, source(&tool_dir), Some(&name), &manifest)
            });
            self.keep(tool_dir.display().to_string(), loaded);
        }
    }

    /// Compiles (or takes from the cache), pre-links and describes one tool, and gives it its
    /// policy: everything but making it callable. `expected_name`: the name it is installed
    /// under, which must be the name it declares.
    pub(super) fn prepare(
        &self,
        wasm: &[u8],
        source: ToolSource,
        expected_name: Option<&str>,
        manifest: &Manifest,
    ) -> Result<LoadedTool, LoadError> {
        let started = Instant::now();
        let source_name = source.to_string();
        let (component, outcome) =
            self.cache
                .load(&self.engine, wasm)
                .map_err(|e| LoadError::Compile {
                    source_name: source_name.clone(),
                    reason: format!("{e:#}"),
                })?;
        if let Ok(mut stats) = self.stats.lock() {
            match outcome {
                CacheOutcome::Hit => stats.from_cache += 1,
                CacheOutcome::Compiled => stats.compiled += 1,
            }
        }
        let describe_failed = |e: wasmtime::Error| LoadError::Describe {
            source_name: source_name.clone(),
            reason: format!("{e:#}"),
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::ToolPre::new)
            .map_err(describe_failed)?;
        let metadata = self.describe(&pre).map_err(describe_failed)?;

        let name = metadata.name;
        if !is_valid_tool_name(&name) {
            return Err(LoadError::BadName { source_name, name });
        }
        if let Some(installed) = expected_name.filter(|i| *i != name) {
            return Err(LoadError::NameMismatch {
                source_name,
                declared: name,
                installed: installed.to_owned(),
            });
        }
        let schema = Schema::parse(&metadata.input_schema).map_err(|error| LoadError::Schema {
            tool: name.clone(),
            error,
        })?;
        let input_schema = serde_json::from_str(&metadata.input_schema).unwrap_or(Value::Null);
        let no_grant = Grant::default();
        let grant = self.grants.get(&name).unwrap_or(&no_grant);
        let policy = manifest
            .grant(metadata.read_only, self.host_limits, grant)
            .map_err(|error| LoadError::Manifest {
                tool: name.clone(),
                error,
            })?;
        tracing::debug!(tool = %name, %source_name, ?policy, ?outcome, "loaded tool");
        let info = ToolInfo {
            name,
            description: metadata.description,
            input_schema,
            read_only: policy.read_only,
            limits: policy.limits,
            source,
            version: hex(&Sha256::digest(wasm)),
            mounts: policy.mounts.clone(),
            env: policy.env.keys().cloned().collect(),
            network: policy.network.iter().map(|p| p.to_string()).collect(),
            loaded_at_ms: now_ms(),
            load_ms: started.elapsed().as_millis() as u64,
        };
        Ok(LoadedTool {
            info,
            policy,
            schema,
            pre,
        })
    }

    /// Asks a freshly instantiated tool what it is, with no filesystem at all.
    fn describe(&self, pre: &bindings::ToolPre<CallState>) -> wasmtime::Result<wit::Metadata> {
        let _context = self.enter_wasi_context();
        let clock = CallClock::start();
        let mut wasi = WasiCtxBuilder::new();
        wasi.monotonic_clock(clock);
        let memory = self
            .host_limits
            .memory_bytes
            .max(CallLimits::default().memory_bytes);
        let nowhere = (std::sync::Arc::default(), false);
        let state = CallState::new(wasi.build(), clock, memory, DESCRIBE_DEADLINE, nowhere);
        let mut store = new_store(&self.engine, state, DESCRIBE_DEADLINE);
        let instance = pre.instantiate(&mut store)?;
        instance.call_describe(&mut store)
    }

    /// The loaded tools, by name.
    pub fn tools(&self) -> Vec<ToolInfo> {
        self.registry().values().map(|t| t.info.clone()).collect()
    }

    pub fn tool(&self, name: &str) -> Option<ToolInfo> {
        self.registry().get(name).map(|t| t.info.clone())
    }

    /// Whether tool `name` only reads (`None`: no such tool). Asked before every call, so it
    /// copies nothing.
    pub fn read_only(&self, name: &str) -> Option<bool> {
        self.registry().get(name).map(|t| t.info.read_only)
    }

    /// How many tools are loaded.
    pub fn tool_count(&self) -> usize {
        self.registry().len()
    }

    /// The tools that failed to load at start, and why.
    pub fn failed(&self) -> &[FailedTool] {
        &self.failed
    }

    /// How many tools were compiled and how many came from the cache.
    pub fn load_stats(&self) -> LoadStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    pub(super) fn registry(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<LoadedTool>>> {
        self.tools.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tool directory's component, manifest and name (the directory's).
fn read_tool_dir(dir: &Path) -> Result<(Vec<u8>, Manifest, String), LoadError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let wasm_path = dir.join("tool.wasm");
    let wasm = std::fs::read(&wasm_path).map_err(|error| LoadError::Io {
        path: wasm_path,
        error,
    })?;
    let manifest = Manifest::load(&dir.join("tool.toml")).map_err(|error| LoadError::Manifest {
        tool: name.clone(),
        error,
    })?;
    Ok((wasm, manifest, name))
}

/// Names agents type and URLs carry: short, lowercase, unambiguous.
pub(super) fn is_valid_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
