//! Calling a tool: [`Runtime::call`] validates the arguments and runs a fresh instance with
//! exactly the grants its documentation lists, then names what happened — the tool's answer,
//! its refusal, or the limit or fault that stopped it.

use std::time::Instant;

use serde_json::Value;
use wasmtime::Trap;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::listing::ListingGrant;
use super::store::{CallState, new_store};
use super::{LoadedTool, Runtime, ToolInfo, wit};
use crate::capture::CapturedOutput;
use crate::clock::CallClock;
use crate::error::{CallError, ToolErrorKind};
use crate::limits::MAX_CAPTURED_OUTPUT_BYTES;
use crate::manifest::MountAccess;
use crate::view::SessionView;

impl Runtime {
    /// Runs tool `name` with `args` against `view`.
    ///
    /// The arguments are validated first; then a fresh instance runs with exactly the view's
    /// directories its policy grants as preopens (the whole view unless its manifest names
    /// fewer; read-only where the view, the tool or its manifest says so), only the environment
    /// variables the operator granted it, no arguments, HTTP(S) only to the hosts the operator
    /// granted it (`crate::network`; no raw sockets), stdin closed, stdout and
    /// stderr captured with a cap, an epoch deadline and a memory cap. Whatever the guest does,
    /// the store is dropped afterwards. The call runs on the version of the tool installed when
    /// it began, whatever is installed meanwhile.
    pub fn call(&self, view: &SessionView, name: &str, args: &Value) -> Result<Value, CallError> {
        let tool = self
            .registry()
            .get(name)
            .cloned()
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
        let result = self.run(&tool, view, args);
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
        for (name, value) in &tool.policy.env {
            wasi.env(name, value);
        }
        let mut mounts = Vec::with_capacity(view.mounts().len());
        let mut listable = Vec::with_capacity(view.mounts().len());
        for mount in view.mounts() {
            let Some(access) = tool.policy.mount(&mount.view_path, mount.writable) else {
                continue;
            };
            let writable = access == MountAccess::ReadWrite;
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
            listable.push((mount.view_path.clone(), mount.host_path.clone()));
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.path.len()));

        let network = (tool.policy.network.clone(), tool.policy.network_credentials);
        let state = CallState::new(
            wasi.build(),
            clock,
            info.limits.memory_bytes,
            info.limits.deadline,
            network,
        )
        .with_listing(ListingGrant::new(listable));
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
