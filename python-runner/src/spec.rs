//! What the host tells the jail helper: the whole policy of one run, serialised as JSON in the
//! helper's first argument, so the helper decides nothing on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One run's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailSpec {
    /// An empty host directory, private to the session, on which the jail mounts its root
    /// (a tmpfs). Only the jail's mount namespace sees that mount.
    pub root_dir: PathBuf,
    /// Host directories bound into the jail, in order (a parent before what is mounted in it).
    pub binds: Vec<Bind>,
    /// Symlinks created in the jail's root, e.g. `bin` -> `usr/bin` (merged-/usr systems).
    pub symlinks: Vec<(String, String)>,
    /// Working directory inside the jail.
    pub cwd: String,
    /// The program and its arguments; a program without `/` is looked up in `search_path`.
    pub argv: Vec<String>,
    /// Directories (inside the jail) searched for `argv[0]`.
    pub search_path: Vec<String>,
    /// The program's whole environment: nothing else is passed.
    pub env: BTreeMap<String, String>,
    pub limits: RlimitSpec,
    /// `cgroup.procs` files the helper joins before anything else (memory and pids limits).
    pub cgroup_procs: Vec<PathBuf>,
}

/// A host directory (or file) bound into the jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the jail.
    pub target: String,
    pub writable: bool,
}

/// Per-process limits (`setrlimit`) applied before the program starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSpec {
    pub cpu_seconds: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    /// Address space; 0 leaves it unlimited (the memory cgroup is the real bound).
    pub address_space_bytes: u64,
}

/// The state of one isolation layer, as every answer reports it.
pub type Layers = BTreeMap<String, String>;

/// The value of a layer that holds.
pub const ENFORCED: &str = "enforced";

/// The first line the helper writes on stderr, before the program runs: the layer report, or
/// why the jail could not be built. The host strips it from the program's stderr.
pub const REPORT_PREFIX: &str = "\u{1}hearth-jail ";

/// The helper's exit code when it refused to run the program (a required layer failed).
pub const JAIL_FAILED_EXIT: i32 = 125;

/// What the helper reports on its first stderr line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub layers: Layers,
    /// Set when the program was not started.
    pub error: Option<String>,
}
