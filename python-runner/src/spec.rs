//! What the host tells the jail helper: the whole policy of one run, serialised as JSON and
//! framed on the helper's stdin, so the helper decides nothing on its own. Only the cgroups to
//! join come as arguments: a warm helper joins them before its run is known.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One run's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailSpec {
    /// An empty host directory, private to the session, on which the jail mounts its root
    /// (a tmpfs). Only the jail's mount namespace sees that mount.
    pub root_dir: PathBuf,
    /// The host's runtime (`/usr`, the interpreter's prefix), bound read-only as it is: files
    /// anyone may read.
    pub runtime: Vec<Bind>,
    /// The session's directories, in order (a parent before what is mounted in it), bound
    /// through the jail user's idmapping when there is one: the session's files are root's on
    /// the host and the jail user's inside (see `identity`).
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
    /// Layers that must be `enforced` for the program to start: the helper refuses the run
    /// otherwise (a layer can hold at start-up and fail for one run, e.g. idmapping a session's
    /// directories on a filesystem that does not support it).
    #[serde(default)]
    pub required_layers: Vec<Layer>,
    /// Whether the program keeps [`RESULT_FD`], the host's result pipe. Without it the jail
    /// closes that descriptor like every other above stderr.
    #[serde(default)]
    pub result_channel: bool,
    /// The session's network namespace (a file the worker bound it on, `ip netns` style) that
    /// the run joins instead of its own empty one, so the runs of one session reach each other
    /// on loopback. `None`: a namespace of the run's own, with no interface up.
    #[serde(default)]
    pub network: Option<PathBuf>,
    /// Which sockets the program may create (see [`crate::seccomp`]).
    #[serde(default)]
    pub sockets: SocketPolicy,
}

/// The socket families and types a program may open. TCP is only ever admitted inside a
/// session's network namespace, whose only interface is loopback: what leaves it goes through
/// the worker's egress proxy, never a raw socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketPolicy {
    /// `AF_UNIX` only (Python's multiprocessing uses socketpair).
    #[default]
    UnixOnly,
    /// `AF_UNIX`, and `AF_INET`/`AF_INET6` stream sockets (TCP): no UDP, no raw sockets.
    Tcp,
}

/// The descriptor on which the helper receives the write end of the host's result pipe, and
/// the program keeps it when its spec asks for a result channel. A pipe the host holds the
/// other end of, never a path: the host never opens anything the program could have replaced.
pub const RESULT_FD: i32 = 3;

/// The helper's flag naming a `cgroup.procs` file to join before anything else (repeated, one
/// per controller): `hearth-jail --join /sys/fs/cgroup/memory/hearth/run-…/cgroup.procs …`.
pub const JOIN_FLAG: &str = "--join";

/// The descriptor on which the helper receives the read end of the worker's lifeline: a pipe
/// whose write end only the worker holds and never writes. It reads as closed exactly when
/// the worker is gone, however it died, and the helper then ends the run: a program outlives
/// neither its session nor its worker.
pub const LIFELINE_FD: i32 = 4;

/// The most a framed spec may take (a spec is a few KiB; this only bounds a broken sender).
const MAX_SPEC_BYTES: u64 = 16 * 1024 * 1024;

/// A spec as the host writes it on the helper's stdin: its JSON's byte length (`u64`,
/// little-endian), then the JSON. What follows on stdin is the program's own input, so the
/// helper reads exactly this much and no more.
pub fn frame(spec: &JailSpec) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(spec)?;
    let mut framed = (json.len() as u64).to_le_bytes().to_vec();
    framed.extend_from_slice(&json);
    Ok(framed)
}

/// Reads one framed spec from `input` (unbuffered: nothing past the spec is consumed).
pub fn read_framed(input: &mut impl Read) -> std::io::Result<JailSpec> {
    let mut length = [0u8; 8];
    input.read_exact(&mut length)?;
    let length = u64::from_le_bytes(length);
    if length > MAX_SPEC_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a spec of {length} bytes is over the limit"),
        ));
    }
    let mut json = vec![0u8; length as usize];
    input.read_exact(&mut json)?;
    serde_json::from_slice(&json).map_err(std::io::Error::from)
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

/// Every isolation layer a run reports, under the name it is reported by (`Layers`' keys, the
/// health route, `exec.required_layers`). One list: a layer the config names that no run would
/// report is a typo, refused when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Cgroups,
    PidNamespace,
    NetworkNamespace,
    IpcNamespace,
    UtsNamespace,
    CgroupNamespace,
    MountNamespace,
    PivotRoot,
    ReadOnlyRoot,
    Rlimits,
    NoNewPrivs,
    Capabilities,
    Uid,
    Landlock,
    Seccomp,
    Environment,
    WallTime,
}

impl Layer {
    pub const ALL: [Layer; 17] = [
        Layer::Cgroups,
        Layer::PidNamespace,
        Layer::NetworkNamespace,
        Layer::IpcNamespace,
        Layer::UtsNamespace,
        Layer::CgroupNamespace,
        Layer::MountNamespace,
        Layer::PivotRoot,
        Layer::ReadOnlyRoot,
        Layer::Rlimits,
        Layer::NoNewPrivs,
        Layer::Capabilities,
        Layer::Uid,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Environment,
        Layer::WallTime,
    ];

    /// The name a run reports it under.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Cgroups => "cgroups",
            Layer::PidNamespace => "pid_namespace",
            Layer::NetworkNamespace => "network_namespace",
            Layer::IpcNamespace => "ipc_namespace",
            Layer::UtsNamespace => "uts_namespace",
            Layer::CgroupNamespace => "cgroup_namespace",
            Layer::MountNamespace => "mount_namespace",
            Layer::PivotRoot => "pivot_root",
            Layer::ReadOnlyRoot => "read_only_root",
            Layer::Rlimits => "rlimits",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Capabilities => "capabilities",
            Layer::Uid => "uid",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Environment => "environment",
            Layer::WallTime => "wall_time",
        }
    }
}

/// The value of a layer that holds.
pub const ENFORCED: &str = "enforced";

/// The first line the helper writes on stderr, before the program runs: the layer report, or
/// why the jail could not be built. The host strips it from the program's stderr.
pub const REPORT_PREFIX: &str = "\u{1}hearth-jail ";

/// The helper's exit code when it refused to run the program (a required layer failed).
pub const JAIL_FAILED_EXIT: i32 = 125;

/// The version of what host and helper say to each other (the spec, the report, the
/// descriptors handed over). A helper from another build would read a spec it does not
/// understand as one it does, ignoring what it does not know (a session network, a socket
/// policy): the host refuses a run whose helper reports another protocol.
pub const PROTOCOL: u32 = 2;

/// What the helper reports on its first stderr line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub layers: Layers,
    /// Set when the program was not started.
    pub error: Option<String>,
    /// The helper's [`PROTOCOL`] (absent, 0, from a helper older than the field).
    #[serde(default)]
    pub protocol: u32,
}
