//! The worker's configuration: embedded defaults, an optional TOML file, command-line flags and
//! `HEARTH_TOKEN`, in rising order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_runtime::CallLimits;
use serde::Deserialize;

/// The address `hearth serve` listens on when nothing else is said: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";
/// Where sessions and the compiled-tool cache live when nothing else is said.
pub const DEFAULT_DATA_DIR: &str = "./hearth-data";
/// The largest request body (a file upload, a tool's arguments). Larger bodies get 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The largest file the files API reads back in one answer.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Live sessions one worker keeps before refusing new ones with 507.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// Everything `hearth serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// This worker's name in the snapshot store's ownership records [default: a random one,
    /// kept in `<data_dir>/worker-id`]. Unique within a fleet sharing a store.
    pub worker_id: Option<String>,
    /// Bearer token every route but `/v1/health` requires. Without one the worker only listens
    /// on loopback.
    pub token: Option<String>,
    pub log_format: LogFormat,
    /// Extra tools, one directory each (`tool.wasm` + optional `tool.toml`).
    pub tools_dir: Option<PathBuf>,
    /// Compiled tools, kept across restarts [default: `<data_dir>/cache/compiled`]. Must be
    /// writable by the worker only: its files are native code the worker runs.
    pub cache_dir: Option<PathBuf>,
    /// The view path of the workspace.
    pub workspace_path: String,
    /// The view path of the scratch directory.
    pub scratch_path: String,
    /// Caps each session's scratch directory (`/tmp`) at this many MiB by mounting a tmpfs of
    /// that size on it. Off by default: the mounts outlive the worker process.
    pub scratch_mib: Option<u64>,
    /// Host directories every session sees read-only, e.g. shared skills.
    pub read_only_areas: Vec<ReadOnlyArea>,
    pub max_body_bytes: usize,
    /// A session without a call for this long is snapshotted and freed (its id then answers
    /// `session_expired`, and `from_snapshot` brings it back); 0: sessions never expire.
    pub idle_expire_s: f64,
    /// The most a drain (on SIGTERM) takes: programs end, each session's last snapshot is
    /// taken, then the worker exits, whether or not every snapshot made it.
    pub drain_timeout_s: f64,
    /// The deepest nesting of directories the worker walks in a session (snapshots, exports,
    /// commits); a deeper tree answers 422 `too_deep` naming this limit.
    pub max_tree_depth: usize,
    pub max_file_bytes: u64,
    pub max_sessions: usize,
    /// Tool calls that run at once; more wait their turn.
    pub max_concurrent_calls: u32,
    pub limits: LimitsConfig,
    pub exec: ExecConfig,
    pub git: GitConfig,
    pub http: HttpConfig,
    pub snapshots: SnapshotConfig,
    pub quota: QuotaConfig,
    pub tools: ToolsConfig,
    pub mcp: McpConfig,
    pub egress: crate::network::EgressConfig,
    pub fleet: crate::fleet::FleetConfig,
}

/// MCP at `/v1/sessions/{id}/mcp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `Host` values the endpoint answers (DNS-rebinding protection): names or `name:port`.
    /// Empty: loopback names only (rmcp's default) — a worker behind a service must list the
    /// names it is reached by.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s allowed (`https://app.example.com`); empty: any request without one,
    /// and none with one is checked.
    pub allowed_origins: Vec<String>,
}

/// Tools installed on the running worker, and what the operator grants tools.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// The token `PUT` and `DELETE /v1/tools/{name}` need (or HEARTH_OPERATOR_TOKEN); without
    /// one, installs are off. Distinct from `token`: a controller, and the agents it hands
    /// tokens to, must not be able to install code on the worker.
    pub operator_token: Option<String>,
    /// Let an install replace a built-in tool.
    pub replace_builtins: bool,
    /// What each tool may be granted beyond the defaults (`[tools.grants.<name>]`, e.g.
    /// `env = { API_KEY = "…" }`); a tool gets only what its manifest asks for, and a manifest
    /// asking for more than this is refused.
    pub grants: std::collections::BTreeMap<String, hearth_runtime::Grant>,
}

impl std::fmt::Debug for ToolsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsConfig")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "[redacted]"),
            )
            .field("replace_builtins", &self.replace_builtins)
            .field("grants", &self.grants.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Snapshots of sessions in object storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// `file:///dir`, `s3://bucket/prefix`, `gs://…`, `az://…` [default: `<data_dir>/store`].
    pub store_url: Option<String>,
    /// The object_store builder keys for that store (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_allow_http`, …).
    pub store_options: std::collections::BTreeMap<String, String>,
    /// Let the store client read its standard environment variables for credentials.
    pub credentials_from_env: bool,
    /// A background snapshot follows a session's last change after this many seconds; 0: only
    /// on demand.
    pub auto_delay_s: f64,
    /// Snapshots kept per session.
    pub keep: usize,
    /// Garbage collection leaves unreferenced blobs younger than this alone.
    pub gc_grace_s: u64,
    /// Files above this go up in multipart uploads of `part_mib` parts.
    pub multipart_threshold_mib: u64,
    pub part_mib: u64,
    /// What snapshot uploads may hold in memory at once, all sessions together.
    pub memory_mib: u64,
    /// Retries of one store request, and the most time they may take.
    pub max_retries: usize,
    pub retry_timeout_s: f64,
    /// Take a last snapshot when a session is deleted (a request can also ask for one).
    pub snapshot_on_delete: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            store_url: None,
            store_options: Default::default(),
            credentials_from_env: false,
            auto_delay_s: 30.0,
            keep: 10,
            gc_grace_s: 3600,
            multipart_threshold_mib: 16,
            part_mib: 8,
            memory_mib: 32,
            max_retries: 3,
            retry_timeout_s: 10.0,
            snapshot_on_delete: false,
        }
    }
}

/// git on the worker: who commits, which remotes sessions may use, and the credentials the
/// host presents to them (never visible to the session).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    /// The branch of a new session's repository.
    pub default_branch: String,
    /// The author of commits whose request names none.
    pub author: hearth_git::Author,
    /// URL prefixes sessions may clone from, pull from and push to (e.g.
    /// `https://github.com/acme/`). Empty: no remote at all.
    pub allowed_remotes: Vec<String>,
    pub credentials: Vec<CredentialConfig>,
    /// The longest patch text `git/diff` answers with.
    pub max_diff_bytes: usize,
    /// Every git operation runs in a helper process killed after this long (a FIFO the agent
    /// planted where git expects a file costs its session one such wait, nothing more).
    pub timeout_s: f64,
    /// The git helper's address-space limit.
    pub memory_mib: u64,
    /// The `hearth-git` helper; default: next to the `hearth` binary.
    pub helper: Option<PathBuf>,
}

/// Per-session quotas and the worker-wide free-space floor (see `storage`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Each session's workspace and /tmp on a volume of their own, whose size and inode count
    /// are its quota. Off: plain directories on the data dir, without limits.
    pub enabled: bool,
    /// A session's quota when its create names none: bytes (MiB) and inodes, workspace and
    /// /tmp together.
    pub bytes_mib: u64,
    pub inodes: u64,
    /// The most a create may ask for: a caller cannot raise its own limits past these.
    pub max_bytes_mib: u64,
    pub max_inodes: u64,
    /// Volumes of the default quota kept formatted and mounted ahead, so a create is a mount
    /// move (microseconds), not a format (~20 ms).
    pub warm_volumes: usize,
    /// Worker-wide: below this much free space on the data dir's filesystem, nothing that
    /// writes session content starts (507 `storage_full`). 0: no floor.
    pub min_free_mib: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bytes_mib: 1024,
            inodes: 100_000,
            max_bytes_mib: 16 * 1024,
            max_inodes: 1_000_000,
            warm_volumes: 2,
            min_free_mib: 256,
        }
    }
}

impl QuotaConfig {
    pub fn default_quota(&self) -> hearth_volume::Quota {
        hearth_volume::Quota {
            bytes: self.bytes_mib << 20,
            inodes: self.inodes,
        }
    }

    pub fn max_quota(&self) -> hearth_volume::Quota {
        hearth_volume::Quota {
            bytes: self.max_bytes_mib << 20,
            inodes: self.max_inodes,
        }
    }
}

/// The connection limits of the accept loop (see `serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A connection that has not sent a whole request head after this long (a half-open or
    /// slow client, an idle keep-alive connection) is closed.
    pub header_timeout_s: f64,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Requests per second each token may make, sustained (0: no limit); more are answered
    /// 429 `rate_limited` with `Retry-After`.
    pub rate_per_s: f64,
    /// Requests a token may make at once above its rate.
    pub rate_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout_s: 10.0,
            max_connections: 512,
            rate_per_s: 1000.0,
            rate_burst: 2000,
        }
    }
}

impl Default for GitConfig {
    fn default() -> Self {
        Self {
            default_branch: "main".into(),
            author: hearth_git::Author {
                name: "Hearth agent".into(),
                email: "agent@hearth.invalid".into(),
            },
            allowed_remotes: Vec::new(),
            credentials: Vec::new(),
            max_diff_bytes: 1024 * 1024,
            timeout_s: 120.0,
            memory_mib: 2048,
            helper: None,
        }
    }
}

/// One credential: a token (`token` or, better, `token_env`) for https remotes, or an ssh key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Remote URLs this credential is for.
    pub url_prefix: String,
    /// Defaults to `x-access-token` for tokens and `git` for ssh keys.
    pub username: Option<String>,
    pub token: Option<String>,
    /// The environment variable of the worker holding the token.
    pub token_env: Option<String>,
    pub ssh_key: Option<PathBuf>,
    pub ssh_passphrase_env: Option<String>,
}

impl std::fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("url_prefix", &self.url_prefix)
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("token_env", &self.token_env)
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

impl GitConfig {
    /// The remote policy, with every secret read now (from the config or the worker's
    /// environment), so a missing one stops the worker at start-up, not at the first push.
    pub fn remote_access(&self) -> Result<hearth_git::RemoteAccess, ConfigError> {
        let credentials = self
            .credentials
            .iter()
            .map(CredentialConfig::resolve)
            .collect::<Result<_, _>>()?;
        let access = hearth_git::RemoteAccess {
            allowed: self.allowed_remotes.clone(),
            credentials,
        };
        // Every rule parsed now: a bad entry stops the start, not a later request.
        access
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(access)
    }
}

impl CredentialConfig {
    fn resolve(&self) -> Result<hearth_git::Credential, ConfigError> {
        let bad = |why: &str| ConfigError::Credential(format!("{}: {why}", self.url_prefix));
        let from_env = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(&format!("environment variable {name} is not set")))
        };
        let token = match (&self.token, &self.token_env) {
            (Some(token), None) => Some(token.clone()),
            (None, Some(name)) => Some(from_env(name)?),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(bad("give `token` or `token_env`, not both")),
        };
        let secret = match (token, &self.ssh_key) {
            (Some(token), None) => hearth_git::Secret::Token {
                username: self
                    .username
                    .clone()
                    .unwrap_or_else(|| "x-access-token".into()),
                token,
            },
            (None, Some(key)) => hearth_git::Secret::SshKey {
                username: self.username.clone().unwrap_or_else(|| "git".into()),
                private_key: key.clone(),
                passphrase: self
                    .ssh_passphrase_env
                    .as_deref()
                    .map(from_env)
                    .transpose()?,
            },
            _ => return Err(bad("give a token (`token`/`token_env`) or an `ssh_key`")),
        };
        Ok(hearth_git::Credential {
            url_prefix: self.url_prefix.clone(),
            secret,
        })
    }
}

/// Running programs in the session (`/exec`), jailed by `python-runner`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecConfig {
    /// The interpreter offered to scripts (a name on PATH, a shim or a path; resolved once to
    /// the real binary, whose prefix is mounted read-only in every jail).
    pub python: String,
    /// The `hearth-jail` helper [default: next to the `hearth` binary].
    pub helper: Option<PathBuf>,
    /// Layers that must report `enforced`, or exec is refused. The namespaces, the private root,
    /// `no_new_privs`, the capability drop, seccomp and the environment scrub always are (the
    /// helper fails closed without them); list e.g. `landlock`, `cgroups` or `uid` (the program
    /// runs unprivileged, which needs idmapped mounts on the session's filesystem) to require those.
    pub required_layers: Vec<hearth_python_runner::Layer>,
    /// Wall time when a request gives none, and the most a request may ask for.
    pub timeout_s: f64,
    pub max_timeout_s: f64,
    pub memory_mib: u64,
    pub max_processes: u64,
    /// Largest file a program may write.
    pub file_size_mib: u64,
    /// Kept of each of stdout and stderr.
    pub output_bytes: usize,
    /// Jails started ahead of their runs (each a sleeping process in its own cgroups and
    /// namespaces): a run takes one and skips the slow cgroup join. 0 starts each with its run.
    pub warm_jails: usize,
    /// Background processes one session may run at once.
    pub max_background: usize,
    /// Background processes the whole worker may run at once.
    pub max_background_total: usize,
    /// A background process's wall time when its request gives none (at most `max_timeout_s`).
    pub background_timeout_s: f64,
    /// Bytes of each of a background process's streams kept for readers (a ring: the oldest
    /// go first).
    pub background_output_bytes: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            helper: None,
            required_layers: Vec::new(),
            timeout_s: 120.0,
            max_timeout_s: 3600.0,
            memory_mib: 1024,
            max_processes: 256,
            file_size_mib: 1024,
            output_bytes: 1024 * 1024,
            warm_jails: 2,
            max_background: 8,
            max_background_total: 128,
            background_timeout_s: 3600.0,
            background_output_bytes: 1024 * 1024,
        }
    }
}

/// A host directory mounted read-only into every session's view.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyArea {
    /// Where the session sees it, e.g. `/workspace/skills`.
    pub path: String,
    /// The host directory behind it.
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Per-call limits of every tool (a tool's own manifest may only lower them).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub deadline_ms: u64,
    pub memory_mib: u64,
    pub result_mib: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = CallLimits::default();
        Self {
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_mib: limits.memory_bytes / (1024 * 1024),
            result_mib: limits.result_bytes / (1024 * 1024),
        }
    }
}

impl LimitsConfig {
    pub fn call_limits(&self) -> CallLimits {
        CallLimits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib * 1024 * 1024,
            result_bytes: self.result_mib * 1024 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8700))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            token: None,
            log_format: LogFormat::Human,
            tools_dir: None,
            cache_dir: None,
            workspace_path: "/workspace".into(),
            scratch_path: "/tmp".into(),
            scratch_mib: None,
            read_only_areas: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_tree_depth: 256,
            idle_expire_s: 0.0,
            drain_timeout_s: 60.0,
            worker_id: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_concurrent_calls: hearth_runtime::DEFAULT_MAX_CONCURRENT_CALLS,
            limits: LimitsConfig::default(),
            exec: ExecConfig::default(),
            git: GitConfig::default(),
            http: HttpConfig::default(),
            snapshots: SnapshotConfig::default(),
            quota: QuotaConfig::default(),
            tools: ToolsConfig::default(),
            mcp: McpConfig::default(),
            egress: crate::network::EgressConfig::default(),
            fleet: crate::fleet::FleetConfig::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    BadQuota(String),
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Parse {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could run tools. \
         Set HEARTH_TOKEN (or `token` in the config file), or listen on loopback (127.0.0.1)"
    )]
    NoTokenOffLoopback(SocketAddr),
    #[error("the token is empty: set a real one, or leave it out to listen on loopback only")]
    EmptyToken,
    #[error("view path `{0}` must be absolute and normalised, like /workspace")]
    BadViewPath(String),
    #[error("read-only area `{path}` must lie inside the workspace ({workspace})")]
    AreaOutsideWorkspace { path: String, workspace: String },
    #[error("read-only area `{path}`: source {source_dir} is not a directory")]
    AreaSourceMissing { path: String, source_dir: PathBuf },
    #[error("snapshots: {0}")]
    Snapshots(String),
    #[error("git credential for {0}")]
    Credential(String),
    #[error("limit `{0}` must be greater than zero")]
    ZeroLimit(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML config file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            error,
        })
    }

    /// Checks what can be checked before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::EmptyToken);
        }
        if self.token.is_none() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::NoTokenOffLoopback(self.listen));
        }
        if let Some(operator) = &self.tools.operator_token {
            if operator.trim().len() < 16 {
                return Err(ConfigError::Invalid(
                    "tools.operator_token must be at least 16 characters".into(),
                ));
            }
            if self.token.as_deref() == Some(operator.as_str()) {
                return Err(ConfigError::Invalid(
                    "tools.operator_token must differ from `token`: whoever holds the worker's \
                     token must not be able to install code"
                        .into(),
                ));
            }
        }
        for path in [&self.workspace_path, &self.scratch_path] {
            if !hearth_view_path::is_normalized(path) {
                return Err(ConfigError::BadViewPath(path.clone()));
            }
        }
        for area in &self.read_only_areas {
            if !hearth_view_path::is_normalized(&area.path) {
                return Err(ConfigError::BadViewPath(area.path.clone()));
            }
            if area.path == self.workspace_path
                || !hearth_view_path::is_within(&area.path, &self.workspace_path)
            {
                return Err(ConfigError::AreaOutsideWorkspace {
                    path: area.path.clone(),
                    workspace: self.workspace_path.clone(),
                });
            }
            if !area.source.is_dir() {
                return Err(ConfigError::AreaSourceMissing {
                    path: area.path.clone(),
                    source_dir: area.source.clone(),
                });
            }
        }
        let limits = [
            ("limits.deadline_ms", self.limits.deadline_ms),
            ("limits.memory_mib", self.limits.memory_mib),
            ("limits.result_mib", self.limits.result_mib),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_sessions", self.max_sessions as u64),
            ("max_concurrent_calls", u64::from(self.max_concurrent_calls)),
            ("git.memory_mib", self.git.memory_mib),
            ("snapshots.memory_mib", self.snapshots.memory_mib),
            ("max_tree_depth", self.max_tree_depth as u64),
            ("http.max_connections", self.http.max_connections as u64),
            (
                "http.header_timeout_s",
                u64::from(self.http.header_timeout_s > 0.0),
            ),
            ("git.timeout_s", u64::from(self.git.timeout_s > 0.0)),
            ("http.rate_burst", u64::from(self.http.rate_burst)),
            (
                "http.rate_per_s (0 for no limit, never negative)",
                u64::from(self.http.rate_per_s >= 0.0 && self.http.rate_per_s.is_finite()),
            ),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::ZeroLimit(name));
        }
        self.egress
            .policy()
            .map_err(|why| ConfigError::Invalid(format!("egress: {why}")))?;
        self.fleet
            .check()
            .map_err(|why| ConfigError::Invalid(format!("fleet: {why}")))?;
        if self.quota.enabled {
            let (default, max) = (self.quota.default_quota(), self.quota.max_quota());
            default
                .check()
                .map_err(|why| ConfigError::BadQuota(format!("quota.bytes_mib/inodes: {why}")))?;
            if default.bytes > max.bytes || default.inodes > max.inodes {
                return Err(ConfigError::BadQuota(
                    "the default quota (quota.bytes_mib, quota.inodes) is above the maximum \
                     (quota.max_bytes_mib, quota.max_inodes)"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's full configuration example is a configuration this worker reads (a key
    /// in the wrong table, or one the worker no longer knows, fails here).
    #[test]
    fn the_readmes_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\nlisten").unwrap_or_default() + "```toml\n".len();
        let end = readme[start..]
            .find("```")
            .map_or(readme.len(), |e| start + e);
        let parsed = toml::from_str::<Config>(&readme[start..end]);
        assert!(parsed.is_ok(), "{parsed:?}");
        let config = parsed.unwrap_or_default();
        assert_eq!(config.scratch_mib, Some(512));
        assert_eq!(config.http.max_connections, 512);
    }

    /// A layer the jail would never report is a typo: refused when the config is read, with
    /// the names that exist.
    #[test]
    fn a_required_layer_must_be_a_layer() {
        let typo = toml::from_str::<Config>("[exec]\nrequired_layers = [\"landlok\"]\n");
        let message = typo.map(drop).map_err(|e| e.to_string()).unwrap_err();
        assert!(
            message.contains("landlok") && message.contains("landlock"),
            "{message}"
        );
        let fine = toml::from_str::<Config>("[exec]\nrequired_layers = [\"landlock\", \"uid\"]\n");
        assert_eq!(
            fine.map(|c| c.exec.required_layers).unwrap_or_default(),
            [
                hearth_python_runner::Layer::Landlock,
                hearth_python_runner::Layer::Uid
            ]
        );
    }

    #[test]
    fn defaults_are_loopback_and_valid() {
        let config = Config::default();
        assert!(config.listen.ip().is_loopback());
        config.validate().unwrap();
    }

    #[test]
    fn no_token_off_loopback_is_refused() {
        let config = Config {
            listen: "0.0.0.0:8700".parse().unwrap(),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NoTokenOffLoopback(_))
        ));
        let config = Config {
            token: Some("t".into()),
            ..config
        };
        config.validate().unwrap();
        let config = Config {
            token: Some("  ".into()),
            ..config
        };
        assert!(matches!(config.validate(), Err(ConfigError::EmptyToken)));
    }

    #[test]
    fn parses_a_file_and_refuses_unknown_keys() {
        let config: Config = toml::from_str(
            "listen = \"127.0.0.1:9000\"\n[limits]\ndeadline_ms = 2000\n[[read_only_areas]]\npath = \"/workspace/skills\"\nsource = \"/srv/skills\"\n",
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.deadline_ms, 2000);
        assert_eq!(config.read_only_areas[0].path, "/workspace/skills");
        assert!(toml::from_str::<Config>("listne = \"x\"").is_err());
    }

    #[test]
    fn areas_must_sit_inside_the_workspace() {
        let area = |path: &str| Config {
            read_only_areas: vec![ReadOnlyArea {
                path: path.into(),
                source: std::env::temp_dir(),
            }],
            ..Config::default()
        };
        area("/workspace/skills").validate().unwrap();
        assert!(matches!(
            area("/etc").validate(),
            Err(ConfigError::AreaOutsideWorkspace { .. })
        ));
        assert!(matches!(
            area("/workspace").validate(),
            Err(ConfigError::AreaOutsideWorkspace { .. })
        ));
        assert!(matches!(
            area("/workspace/../etc").validate(),
            Err(ConfigError::BadViewPath(_))
        ));
    }
}
