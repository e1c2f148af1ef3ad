//! What the handlers share (`App`), and how it is built: the configuration checked, the tools
//! loaded, the sessions on disk taken back, the jail proved. The HTTP layer reads it; no
//! service knows it.

use std::net::SocketAddr;
use std::sync::Arc;

use hearth_runtime::{LoadError, Runtime, RuntimeConfig};

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::sessions::{SessionError, Sessions};
use crate::{exec, git, rate, snapshots, storage};

/// Everything the handlers share.
pub struct App {
    pub config: Config,
    pub runtime: Arc<Runtime>,
    pub sessions: Arc<Sessions>,
    pub exec: exec::Exec,
    pub git: git::Git,
    pub snapshots: Arc<snapshots::SnapshotService>,
    pub metrics: Metrics,
    pub rate: rate::RateLimiter,
    /// Says that the tool registry changed (an install, an upgrade, a removal), to whoever
    /// listens: MCP clients holding a stream get `notifications/tools/list_changed`.
    pub tools_changed: tokio::sync::broadcast::Sender<()>,
    /// Connections all sessions' egress proxies may hold together.
    pub proxied_connections: Arc<tokio::sync::Semaphore>,
    /// This worker's part in a fleet (`None`: it stands alone).
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Set when the worker starts draining (see `drain`): it takes no more work.
    pub draining: std::sync::atomic::AtomicBool,
    /// Distinguishes request ids of this process from those of earlier ones.
    pub(crate) started_nonce: u32,
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("loading tools: {0}")]
    Tools(#[from] LoadError),
    #[error("opening sessions: {0}")]
    Sessions(#[from] SessionError),
    #[error("listening on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("start-up task failed: {0}")]
    Join(String),
}

/// Builds the shared state: tools, sessions, metrics.
pub async fn build_app(config: Config) -> Result<Arc<App>, StartError> {
    config.validate()?;
    secure_data_dir(&config.data_dir).map_err(SessionError::Io)?;
    let runtime_config = RuntimeConfig {
        builtins: true,
        tools_dir: config.tools_dir.clone(),
        installed_dir: Some(installed_tools_dir(&config.data_dir)),
        grants: config.tools.grants.clone(),
        cache_dir: Some(
            config
                .cache_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("cache").join("compiled")),
        ),
        limits: config.limits.call_limits(),
        max_concurrent_calls: config.max_concurrent_calls,
    };
    // Compiling tools is CPU-bound and may take a second: keep it off the async threads.
    let runtime = tokio::task::spawn_blocking(move || Runtime::new(runtime_config))
        .await
        .map_err(|e| StartError::Join(e.to_string()))??;
    let stats = runtime.load_stats();
    tracing::info!(
        tools = runtime.tool_count(),
        failed = runtime.failed().len(),
        compiled = stats.compiled,
        from_cache = stats.from_cache,
        "tools loaded"
    );
    let git = git::Git::new(&config.git, config.max_tree_depth)?;
    let worker = worker_id(&config).map_err(SessionError::Io)?;
    let snapshots = snapshots::SnapshotService::new(
        &config.snapshots,
        &config.data_dir,
        config.max_tree_depth,
        worker,
    )?;
    snapshots.probe().await?;
    let snapshots = Arc::new(snapshots);
    let fleet = crate::fleet::Fleet::new(&config.fleet, snapshots.clone());
    let lease_taken_at = crate::sessions::now_ms();
    if let Some(fleet) = &fleet {
        // Alive before serving: doors forward this worker's sessions here from now on.
        fleet
            .renew()
            .await
            .map_err(|e| ConfigError::Snapshots(format!("taking this worker's lease: {e}")))?;
        tracing::info!(worker = %fleet.me, url = %fleet.url, "fleet lease taken");
    }
    let (quota, dir) = (config.quota.clone(), config.data_dir.clone());
    let storage = tokio::task::spawn_blocking(move || storage::Storage::open(&quota, &dir))
        .await
        .map_err(|e| StartError::Join(e.to_string()))?
        .map_err(SessionError::from)?;
    let sessions = Arc::new(Sessions::open(&config, storage)?);
    // Sessions another worker took over while this one was away are parked, not served.
    snapshots.fence_all(&sessions).await;
    if let Some(fleet) = &fleet {
        // Every session held is checked: the lease counts from its taking.
        fleet.renewed(lease_taken_at);
    }
    let (exec_config, data_dir) = (config.exec.clone(), config.data_dir.clone());
    let exec = tokio::task::spawn_blocking(move || exec::Exec::start(&exec_config, &data_dir))
        .await
        .map_err(|e| StartError::Join(e.to_string()))?;
    match &exec.unavailable {
        None => tracing::info!(layers = ?exec.layers, "exec jail ready"),
        Some(why) => tracing::warn!(reason = %why, "exec unavailable"),
    }
    tracing::info!(sessions = sessions.len(), data_dir = %config.data_dir.display(), "sessions opened");
    let started_nonce = uuid::Uuid::new_v4().as_u128() as u32;
    let rate = rate::RateLimiter::new(config.http.rate_per_s, config.http.rate_burst);
    Ok(Arc::new(App {
        rate,
        tools_changed: tokio::sync::broadcast::channel(16).0,
        proxied_connections: Arc::new(tokio::sync::Semaphore::new(
            crate::network::PROXIED_CONNECTIONS,
        )),
        draining: std::sync::atomic::AtomicBool::new(false),
        config,
        runtime: Arc::new(runtime),
        sessions,
        exec,
        git,
        snapshots,
        fleet,
        metrics: Metrics::default(),
        started_nonce,
    }))
}

/// This worker's name in the snapshot store's ownership records: the configured one, or one
/// made at the first start and kept in `<data_dir>/worker-id`, so a restart is the same worker.
fn worker_id(config: &Config) -> std::io::Result<String> {
    if let Some(id) = &config.worker_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join("worker-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = format!("w-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

/// Makes the data dir (when missing) and keeps it private to the worker: mode 0700, whatever
/// it was. Every session's files are root's on disk and made by agents; no other user of the
/// host may reach, run or change any of them. A looser mode found here is tightened and said.
fn secure_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != 0o700 {
        tracing::warn!(data_dir = %dir.display(), mode = format!("{mode:o}"), "tightening the data dir to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Where tools installed through the API are kept: under the data dir, so a restart loads them
/// again.
pub fn installed_tools_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("tools").join("installed")
}
