//! The Hearth worker: agents' sessions on this machine's disk, and the HTTP API a controller
//! calls to run tools in them.
//!
//! [`start`] is all a binary (or a test) needs: it validates the configuration, loads the tools
//! (compiled artifacts are cached under the data dir), takes back the sessions already on disk,
//! binds the listener and serves until the shutdown future resolves, letting in-flight requests
//! finish.

mod app;
mod binaries;
pub mod config;
pub mod drain;
pub mod exec;
pub mod expiry;
pub mod files;
pub mod fleet;
#[cfg(feature = "bench-floor")]
pub mod floor;
pub mod git;
pub mod http;
pub mod metrics;
pub mod network;
pub mod processes;
pub mod rate;
pub mod scratch;
pub mod session_snapshots;
pub mod sessions;
pub mod snapshots;
pub mod storage;
pub mod stream;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use app::{App, StartError, build_app};
pub use binaries::beside_binary;
pub use config::Config;

/// A worker that is accepting connections.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Resolves when the server has shut down and every in-flight request has been answered.
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
    pub app: Arc<App>,
}

/// Starts serving `config` until `shutdown` resolves.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let mut config = config;
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| StartError::Bind { addr, error })?;
    let addr = listener
        .local_addr()
        .map_err(|error| StartError::Bind { addr, error })?;
    config.fleet.advertise_port(addr.port());
    let app = build_app(config).await?;
    let router = http::router(app.clone());
    let background = tokio::spawn({
        let app = app.clone();
        async move {
            app.snapshots
                .clone()
                .run_background(app.sessions.clone())
                .await
        }
    });
    let expiry = tokio::spawn({
        let app = app.clone();
        async move {
            let idle = app.config.idle_expire_s;
            expiry::run(&app.sessions, &app.snapshots, app.fleet.as_deref(), idle).await
        }
    });
    let lease = app
        .fleet
        .is_some()
        .then(|| tokio::spawn(fleet::keep_lease(app.clone())));
    // A worker joining a fleet serves the fleet's tools from its first request (if the store
    // answers in time; the next pass catches up otherwise).
    if let Some(fleet) = &app.fleet {
        match tokio::time::timeout(fleet::FIRST_PASS, fleet::sync_tools(&app, fleet)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the fleet's tools could not be read"),
            Err(_) => tracing::warn!("the fleet's tools were not read in time"),
        }
    }
    let tools = app
        .fleet
        .is_some()
        .then(|| tokio::spawn(fleet::keep_tools(app.clone())));
    let limits = http::serve::Limits {
        header_timeout: std::time::Duration::from_secs_f64(app.config.http.header_timeout_s),
        max_connections: app.config.http.max_connections,
    };
    // The server keeps answering while it drains (503 `draining` but for health and
    // readiness), and stops once the drain is done.
    let draining = app.clone();
    let shutdown = async move {
        shutdown.await;
        drain::drain(&draining).await;
    };
    let stopping = app.clone();
    let done = tokio::spawn(async move {
        let served = http::serve::serve(listener, router, limits, shutdown).await;
        background.abort();
        expiry.abort();
        for task in [lease, tools].into_iter().flatten() {
            task.abort();
        }
        // A stopped worker leaves no volume mounted (its data dir can be moved or deleted); the
        // next start mounts its sessions' volumes again. A killed one leaves them, and the next
        // start finds them in place.
        let _ = tokio::task::spawn_blocking(move || stopping.sessions.release_volumes()).await;
        served
    });
    Ok(Running { addr, done, app })
}
