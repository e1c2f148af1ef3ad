//! `hearth`: run a worker (`hearth serve`), or talk to one from a terminal.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearth::Config;
use hearth::config::LogFormat;
use serde_json::Value;

#[path = "cli/mod.rs"]
mod cli;

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "A worker where AI agents live: sessions, Wasm tools, HTTP."
)]
struct Cli {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a worker. With no flags: loopback, ./hearth-data, the built-in tools.
    Serve {
        /// TOML configuration file (every key optional; see README).
        #[arg(long, env = "HEARTH_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8700].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where sessions and compiled tools are kept [default: ./hearth-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log format [default: human].
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Manage sessions on a running worker.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
    /// List the tools a running worker offers (`hearth tool list`).
    Tools,
    /// Write, check and try a tool; install, remove and list tools on a running worker.
    Tool {
        #[command(subcommand)]
        action: cli::tool::ToolAction,
    },
    /// Speak MCP on stdin/stdout for a session of a running worker (for clients that launch a
    /// local process): `hearth mcp --session ID`.
    Mcp {
        #[arg(long)]
        session: String,
    },
    /// Print the API's OpenAPI document (what `docs/openapi.json` holds).
    Openapi,
    /// Call a tool in a session: `hearth call SESSION write_file '{"file_path": …}'`.
    Call {
        session: String,
        tool: String,
        /// The tool's arguments as JSON.
        #[arg(default_value = "{}")]
        args: String,
    },
    /// List a directory of a session (`ls` tool).
    Ls {
        session: String,
        #[arg(default_value = "/workspace")]
        path: String,
    },
    /// Run a shell command in a session: `hearth exec SESSION -- pytest -q`. Exits with the
    /// program's code; `--background` prints the process id instead.
    Exec {
        session: String,
        /// Start it in the background (follow it with `hearth logs`).
        #[arg(long)]
        background: bool,
        /// Seconds of wall time [default: the worker's].
        #[arg(long)]
        timeout: Option<f64>,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// List a session's background processes.
    Ps { session: String },
    /// Print what a background process wrote (`--follow`: until it ends).
    Logs {
        session: String,
        process: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Kill a background process (SIGKILL, then forget it), or send it `--signal`.
    Kill {
        session: String,
        process: String,
        #[arg(long, short)]
        signal: Option<String>,
    },
}

/// Where the client subcommands find the worker.
#[derive(clap::Args)]
struct Remote {
    /// The worker's URL (client subcommands).
    #[arg(
        long,
        global = true,
        env = "HEARTH_URL",
        default_value = "http://127.0.0.1:8700"
    )]
    url: String,
    /// The worker's bearer token (client subcommands; `serve` reads HEARTH_TOKEN).
    #[arg(long, global = true, env = "HEARTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Remote {
    fn client(&self) -> hearth_client::Client {
        hearth_client::Client::new(&self.url, self.token.clone())
    }
}

#[derive(Subcommand)]
enum SessionAction {
    /// Create a session (prints its id).
    Create {
        #[arg(long)]
        id: Option<String>,
    },
    List,
    Info {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hearth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command; the exit code is the program's for `hearth exec`, success otherwise.
async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let remote = cli.remote;
    let done: Result<()> = match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            log_format,
        } => {
            let mut config = match config {
                Some(path) => Config::from_file(&path)?,
                None => Config::default(),
            };
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            if let Some(format) = log_format {
                config.log_format = format;
            }
            if let Ok(token) = std::env::var("HEARTH_TOKEN")
                && !token.is_empty()
            {
                config.token = Some(token);
            }
            if let Ok(token) = std::env::var("HEARTH_OPERATOR_TOKEN")
                && !token.is_empty()
            {
                config.tools.operator_token = Some(token);
            }
            // Per replica, where one file configures them all (a StatefulSet's pod name).
            if let Ok(id) = std::env::var("HEARTH_WORKER_ID")
                && !id.is_empty()
            {
                config.worker_id = Some(id);
            }
            if let Ok(url) = std::env::var("HEARTH_ADVERTISE_URL")
                && !url.is_empty()
            {
                config.fleet.advertise_url = Some(url);
            }
            serve(config).await
        }
        Command::Session { action } => {
            let client = remote.client();
            match action {
                SessionAction::Create { id } => {
                    let created = client.create_session(id.as_deref()).await?;
                    println!("{}", created.session.id);
                }
                SessionAction::List => {
                    for session in client.list_sessions().await? {
                        println!(
                            "{}\t{}\t{} tool calls",
                            session.id, session.created_at, session.tool_calls
                        );
                    }
                }
                SessionAction::Info { id } => {
                    print_json(&serde_json::to_value(client.session(&id).await?)?)?
                }
                SessionAction::Delete { id } => drop(client.delete_session(&id).await?),
            }
            Ok(())
        }
        Command::Tool { action } => cli::tool::run(action, &remote.url, remote.token).await,
        Command::Mcp { session } => cli::mcp::bridge(&remote.url, &session, remote.token).await,
        Command::Openapi => {
            print!("{}", hearth::http::openapi_json());
            Ok(())
        }
        Command::Tools => {
            let list = cli::tool::ToolAction::List;
            cli::tool::run(list, &remote.url, remote.token).await
        }
        Command::Call {
            session,
            tool,
            args,
        } => {
            let args: Value =
                serde_json::from_str(&args).context("the tool arguments are not valid JSON")?;
            print_json(&remote.client().call_tool(&session, &tool, args).await?)
        }
        Command::Exec {
            session,
            background,
            timeout,
            command,
        } => {
            let client = remote.client();
            return cli::process::exec(&client, &session, &command, background, timeout).await;
        }
        Command::Ps { session } => cli::process::ps(&remote.client(), &session).await,
        Command::Logs {
            session,
            process,
            follow,
        } => cli::process::logs(&remote.client(), &session, &process, follow).await,
        Command::Kill {
            session,
            process,
            signal,
        } => cli::process::kill(&remote.client(), &session, &process, signal.as_deref()).await,
        Command::Ls { session, path } => {
            let result = remote
                .client()
                .call_tool(&session, "ls", serde_json::json!({ "path": path }))
                .await?;
            for entry in result["entries"].as_array().into_iter().flatten() {
                println!(
                    "{:>10}  {}",
                    entry["size"],
                    entry["path"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
}

async fn serve(config: Config) -> Result<()> {
    init_logging(config.log_format);
    let running = hearth::start(config, shutdown_signal()).await?;
    // The first line on stdout is the address, for scripts and tests that start with port 0.
    println!("hearth listening on http://{}", running.addr);
    std::io::stdout().flush()?;
    tracing::info!(addr = %running.addr, "listening");
    match running.done.await {
        Ok(result) => result.context("serving")?,
        Err(e) => bail!("server task failed: {e}"),
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn print_json(value: &Value) -> Result<()> {
    cli::tool::print_json(value)
}
