//! `hearth tool …`: a tool author's loop — start a project, check a component, run it against a
//! directory without a worker — and the operator's verbs on a running worker (install, remove,
//! list).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hearth_runtime::{Manifest, Mount, Runtime, RuntimeConfig, SessionView, ToolSource};

use super::templates::{self, Lang};

#[derive(clap::Subcommand)]
pub enum ToolAction {
    /// Write a new tool project: its README, the WIT world, the code, a test.
    New {
        /// The tool's name: lowercase letters, digits and `_`.
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Where to write it [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Load a component as a worker would, and print what `GET /v1/tools/{name}` would show.
    Check {
        file: PathBuf,
        /// Its manifest (`tool.toml`).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Call a component once against a directory, with the worker's runtime, limits and policy:
    /// the answer on stdout, the tool's error on stderr.
    Run {
        file: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The directory the tool sees as /workspace.
        #[arg(long)]
        workspace: PathBuf,
        /// The directory it sees as /tmp [default: none].
        #[arg(long)]
        tmp: Option<PathBuf>,
        /// The arguments, as JSON.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Install a component on a running worker, or upgrade the tool of that name (needs the
    /// operator's token: --operator-token or HEARTH_OPERATOR_TOKEN).
    Install {
        name: String,
        file: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[arg(long, env = "HEARTH_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: String,
    },
    /// Remove an installed tool from a running worker (needs the operator's token).
    Remove {
        name: String,
        #[arg(long, env = "HEARTH_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: String,
    },
    /// List the tools a running worker offers.
    List,
}

pub async fn run(action: ToolAction, url: &str, token: Option<String>) -> Result<()> {
    match action {
        ToolAction::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            templates::write(&name, lang, &dir)?;
            println!("wrote {} ({lang:?}); see its README.md", dir.display());
            Ok(())
        }
        ToolAction::Check { file, manifest } => {
            let (runtime, info) = load_alone(&file, manifest.as_deref())?;
            drop(runtime);
            print_json(&serde_json::to_value(hearth::http::tool_detail(&info))?)
        }
        ToolAction::Run {
            file,
            manifest,
            workspace,
            tmp,
            args,
        } => {
            let args: serde_json::Value =
                serde_json::from_str(&args).context("--args is not valid JSON")?;
            let (runtime, info) = load_alone(&file, manifest.as_deref())?;
            let mut mounts = vec![mount("/workspace", &workspace)?];
            if let Some(tmp) = &tmp {
                mounts.push(mount("/tmp", tmp)?);
            }
            let view = SessionView::new(mounts)?;
            // wasmtime-wasi's synchronous host calls block: not on an async thread.
            let answer = tokio::task::block_in_place(|| runtime.call(&view, &info.name, &args));
            match answer {
                Ok(answer) => print_json(&answer),
                Err(e) => {
                    eprintln!("{}: {e}", e.code());
                    std::process::exit(1);
                }
            }
        }
        ToolAction::Install {
            name,
            file,
            manifest,
            operator_token,
        } => {
            let wasm =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let manifest = manifest
                .map(|m| {
                    std::fs::read_to_string(&m).with_context(|| format!("reading {}", m.display()))
                })
                .transpose()?;
            let client = hearth_client::Client::new(url, Some(operator_token));
            let installed = client.install_tool(&name, wasm, manifest).await?;
            print_json(&serde_json::to_value(installed)?)
        }
        ToolAction::Remove {
            name,
            operator_token,
        } => {
            let client = hearth_client::Client::new(url, Some(operator_token));
            print_json(&serde_json::to_value(client.remove_tool(&name).await?)?)
        }
        ToolAction::List => {
            for tool in hearth_client::Client::new(url, token).tools().await? {
                let access = if tool.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                println!(
                    "{:<12} {access:<10} {}",
                    tool.name,
                    tool.description.lines().next().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}

/// A runtime holding only the component at `file`, loaded as a worker with default limits
/// would load it.
fn load_alone(file: &Path, manifest: Option<&Path>) -> Result<(Runtime, hearth_runtime::ToolInfo)> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let manifest = match manifest {
        Some(path) => Manifest::load(path)?,
        None => Manifest::default(),
    };
    let runtime = Runtime::new(RuntimeConfig {
        builtins: false,
        cache_dir: cache_dir(),
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })?;
    let info = runtime.add(&wasm, &manifest, ToolSource::Directory(file.to_owned()))?;
    Ok((runtime, info))
}

fn mount(view_path: &str, dir: &Path) -> Result<Mount> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(Mount {
        view_path: view_path.to_owned(),
        host_path: dir.canonicalize()?,
        writable: true,
    })
}

/// Prints `value`; a reader that went away (`| head`) is not an error.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Where the CLI keeps compiled components between runs: the user's own cache directory,
/// private to them (an artifact there is native code the CLI runs without checking it again).
fn cache_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let dir = base.join("hearth").join("compiled");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let private = std::fs::metadata(&dir).is_ok_and(|m| m.permissions().mode() & 0o077 == 0);
    private.then_some(dir)
}
