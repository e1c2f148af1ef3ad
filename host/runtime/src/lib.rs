//! Hearth's tool runtime.
//!
//! Every tool an agent calls is a WebAssembly component implementing the `hearth:tool` world
//! (`wit/tool.wit`). The runtime compiles each tool once (keeping the compiled artifact on disk,
//! see [`cache`]), pre-links it, and runs every call in a fresh instance whose only filesystem is
//! one session's [`SessionView`]: the tool can touch the session's directories at their view
//! paths and nothing else — no other path, no network, no environment — for a bounded time and
//! memory. The host decides those grants: a tool's manifest can only narrow them, and what it
//! needs beyond them (an environment variable) it gets only if the operator grants it
//! ([`manifest`]). Tools can be installed, upgraded and removed while the runtime serves.
//!
//! ```no_run
//! use hearth_runtime::{Mount, Runtime, RuntimeConfig, SessionView};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let view = SessionView::new(vec![Mount {
//!     view_path: "/workspace".into(),
//!     host_path: "/srv/hearth/sessions/s1/workspace".into(),
//!     writable: true,
//! }])?;
//! let answer = runtime.call(&view, "write_file", &serde_json::json!({
//!     "file_path": "/workspace/hello.txt",
//!     "content": "hi",
//! }))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cache;
pub mod capture;
mod clock;
mod engine;
pub mod error;
pub mod limits;
pub mod manifest;
pub mod network;
mod runtime;
pub mod schema;
pub mod view;

pub use error::{CallError, LoadError, ToolErrorKind};
pub use limits::CallLimits;
pub use manifest::{Grant, Manifest, MountAccess};
pub use runtime::{
    DEFAULT_MAX_CONCURRENT_CALLS, FailedTool, InstallError, Installed, LoadStats, Runtime,
    RuntimeConfig, ToolInfo, ToolSource,
};
pub use view::{Mount, ResolveError, Resolved, SessionView};

include!(concat!(env!("OUT_DIR"), "/builtin_tools.rs"));
