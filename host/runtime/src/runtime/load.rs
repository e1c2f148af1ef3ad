//! Loading: the engine and its epoch ticker, then every tool — built in, or one directory per
//! tool under `tools_dir` — compiled (or taken from the cache), pre-linked, and asked what it
//! is. A tool that fails to load fails the whole start. Also what the runtime answers about
//! the tools it loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;

use super::store::{CallState, new_store, spawn_epoch_ticker};
use super::{LoadStats, LoadedTool, Runtime, RuntimeConfig, ToolInfo, bindings, wit};
use crate::cache::{CacheOutcome, CompileCache};
use crate::clock::{CallClock, clamp_sleeps_to_deadline};
use crate::engine::{CallSlots, build_engine};
use crate::error::LoadError;
use crate::limits::{CallLimits, Manifest};
use crate::schema::Schema;

/// `describe` runs once per tool at load time and must be instant.
const DESCRIBE_DEADLINE: Duration = Duration::from_secs(5);

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
}

/// Names agents type and URLs carry: short, lowercase, unambiguous.
fn is_valid_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
