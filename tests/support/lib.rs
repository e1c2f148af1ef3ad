//! Shared fixtures for Hearth's integration suite: sessions laid out on disk like the worker lays
//! them out, and runtimes loaded with the built-in tools plus the test-only guests.

#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a failed setup should stop the test loudly"
)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hearth_runtime::{CallError, Mount, Runtime, RuntimeConfig, SessionView};
use serde_json::Value;
use tempfile::TempDir;

/// The test-only `hostile` component (built from `guest-tools/test-guests/hostile`).
pub const HOSTILE_WASM: &str = env!("HEARTH_TEST_GUEST_HOSTILE");

/// The built-in `ls`'s component, for tests that need a second, well-behaved one.
pub const LS_WASM: &str = env!("HEARTH_TEST_TOOL_LS");

/// A session on disk:
///
/// ```text
/// <root>/workspace      -> /workspace          (read-write)
/// <root>/tmp            -> /tmp                (read-write)
/// <root>/skills         -> /workspace/skills   (read-only area)
/// <root>/secret.txt        beside the workspace: must never be reachable
/// ```
pub struct TestSession {
    pub root: TempDir,
    pub workspace: PathBuf,
    pub tmp: PathBuf,
    pub skills: PathBuf,
    pub secret: PathBuf,
    pub view: SessionView,
}

pub const SECRET: &str = "the host's secret";

impl TestSession {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("workspace");
        let tmp = root.path().join("tmp");
        let skills = root.path().join("skills");
        for dir in [&workspace, &tmp, &skills] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(skills.join("SKILL.md"), "# a skill\nuse it well\n").unwrap();
        let secret = root.path().join("secret.txt");
        std::fs::write(&secret, SECRET).unwrap();
        let view = SessionView::new(vec![
            Mount {
                view_path: "/workspace".into(),
                host_path: workspace.clone(),
                writable: true,
            },
            Mount {
                view_path: "/tmp".into(),
                host_path: tmp.clone(),
                writable: true,
            },
            Mount {
                view_path: "/workspace/skills".into(),
                host_path: skills.clone(),
                writable: false,
            },
        ])
        .unwrap();
        Self {
            root,
            workspace,
            tmp,
            skills,
            secret,
            view,
        }
    }

    /// Writes a file into the workspace from the host side (creating parents).
    pub fn put(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.workspace.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Reads a workspace file from the host side.
    pub fn get(&self, relative: &str) -> String {
        std::fs::read_to_string(self.workspace.join(relative)).unwrap()
    }

    /// Calls a tool of the shared runtime against this session.
    pub fn call(&self, tool: &str, args: Value) -> Result<Value, CallError> {
        runtime().call(&self.view, tool, &args)
    }

    /// Like [`TestSession::call`], for calls that must succeed.
    pub fn ok(&self, tool: &str, args: Value) -> Value {
        match self.call(tool, args.clone()) {
            Ok(value) => value,
            Err(e) => panic!("{tool} {args} failed: {e} ({})", e.code()),
        }
    }

    /// Like [`TestSession::call`], for calls that must fail; returns the error code and message.
    pub fn err(&self, tool: &str, args: Value) -> (String, String) {
        match self.call(tool, args.clone()) {
            Ok(value) => panic!("{tool} {args} succeeded but should fail: {value}"),
            Err(e) => (e.code().to_owned(), e.to_string()),
        }
    }
}

impl Default for TestSession {
    fn default() -> Self {
        Self::new()
    }
}

/// Every file below `dir` with its content, for "nothing changed" assertions. A worker's
/// volumes are seen through their mounts: their images (`*.img`, sparse and as large as a
/// quota) and the pool of spare volumes (`volumes/`, refilled at any time) are left out.
pub fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let image = meta.is_file() && path.extension().is_some_and(|e| e == "img");
            if image || (meta.is_dir() && path == dir.join("volumes")) {
                continue;
            }
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            } else {
                out.push((path.clone(), Vec::new()));
            }
        }
    }
    out.sort();
    out
}

/// A tools directory holding the given `(install name, wasm path, tool.toml)` entries.
pub fn tools_dir(tools: &[(&str, &str, Option<&str>)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, wasm, manifest) in tools {
        let tool_dir = dir.path().join(name);
        std::fs::create_dir(&tool_dir).unwrap();
        std::fs::copy(wasm, tool_dir.join("tool.wasm")).unwrap();
        if let Some(manifest) = manifest {
            std::fs::write(tool_dir.join("tool.toml"), manifest).unwrap();
        }
    }
    dir
}

/// A compiled-artifact cache shared by the whole test run, so a debug host compiles each
/// component once per checkout rather than once per runtime.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("HEARTH_TEST_CACHE_DIR"))
}

/// A runtime with the built-ins and the given extra tools.
pub fn runtime_with(tools: &[(&str, &str, Option<&str>)]) -> Runtime {
    let dir = tools_dir(tools);
    let runtime = Runtime::new(RuntimeConfig {
        tools_dir: Some(dir.path().to_path_buf()),
        cache_dir: Some(shared_cache_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    drop(dir);
    runtime
}

/// The runtime most tests share: built-ins plus `hostile` with a short deadline.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        runtime_with(&[(
            "hostile",
            HOSTILE_WASM,
            Some("deadline_ms = 500\nmemory_mib = 32\n"),
        )])
    })
}
