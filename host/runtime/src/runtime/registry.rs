//! Installing, upgrading and removing tools on a running runtime.
//!
//! An install is prepared completely — compiled (cached by the component's hash), pre-linked,
//! described, its schema and policy checked — before anything changes; then it is written to
//! `installed_dir` (so a restart loads it again) and swapped in. A call already running keeps
//! the version it started with; a failed install changes nothing. Installs are serialised:
//! two uploads of one name never interleave on disk.

use std::path::Path;
use std::sync::Arc;

use super::load::is_valid_tool_name;
use super::{Runtime, ToolInfo, ToolSource};
use crate::error::LoadError;
use crate::manifest::Manifest;

/// Why an install or a removal was refused.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("this worker keeps no installed tools (no installed-tools directory)")]
    Disabled,
    #[error(
        "`{0}` is not a tool name: lowercase letters, digits and `_` (1–64, starting with a letter)"
    )]
    BadName(String),
    #[error("`{0}` is a built-in tool; the operator's configuration does not allow replacing it")]
    Builtin(String),
    #[error("`{name}` comes from the operator's tools directory ({dir}), not from an install")]
    NotInstalled { name: String, dir: String },
    #[error("no tool named `{0}`")]
    NotFound(String),
    /// The component or its manifest: the caller's to fix.
    #[error(transparent)]
    Invalid(LoadError),
    /// Writing it down failed: the worker's fault.
    #[error("keeping the tool on disk: {0}")]
    Io(#[from] std::io::Error),
}

/// What an install did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub tool: ToolInfo,
    /// The version it replaced, if any.
    pub previous: Option<ToolInfo>,
}

impl Runtime {
    /// Installs `wasm` as tool `name` with `manifest` (its text, `None`: an empty one), or
    /// upgrades the tool of that name. Built-ins are replaced only with `replace_builtins`.
    pub fn install(
        &self,
        name: &str,
        wasm: &[u8],
        manifest: Option<&str>,
        replace_builtins: bool,
    ) -> Result<Installed, InstallError> {
        let dir = self.installed_dir.as_ref().ok_or(InstallError::Disabled)?;
        if !is_valid_tool_name(name) {
            return Err(InstallError::BadName(name.to_owned()));
        }
        let _one_at_a_time = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        self.check_replaceable(name, replace_builtins)?;
        let parsed = match manifest {
            Some(text) => Manifest::parse(text, "the manifest").map_err(|error| {
                InstallError::Invalid(LoadError::Manifest {
                    tool: name.to_owned(),
                    error,
                })
            })?,
            None => Manifest::default(),
        };
        let tool = self
            .prepare(wasm, ToolSource::Installed, Some(name), &parsed)
            .map_err(InstallError::Invalid)?;
        keep_on_disk(dir, name, wasm, manifest.unwrap_or(""))?;
        let info = tool.info.clone();
        let previous = self
            .tools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), Arc::new(tool))
            .map(|old| old.info.clone());
        Ok(Installed {
            tool: info,
            previous,
        })
    }

    /// Loads `wasm` with `manifest` into this runtime only (nothing kept on disk), replacing a
    /// tool of the same name: what `hearth tool check` and `hearth tool run` try a component
    /// with, exactly as a worker would load it.
    pub fn add(
        &self,
        wasm: &[u8],
        manifest: &Manifest,
        source: ToolSource,
    ) -> Result<ToolInfo, LoadError> {
        let tool = self.prepare(wasm, source, None, manifest)?;
        let info = tool.info.clone();
        self.tools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.name.clone(), Arc::new(tool));
        Ok(info)
    }

    /// Removes an installed tool. Calls already running finish; new ones answer `unknown_tool`.
    pub fn remove(&self, name: &str) -> Result<ToolInfo, InstallError> {
        let dir = self.installed_dir.as_ref().ok_or(InstallError::Disabled)?;
        let _one_at_a_time = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        let current = self
            .tool(name)
            .ok_or_else(|| InstallError::NotFound(name.to_owned()))?;
        match &current.source {
            ToolSource::Installed => {}
            ToolSource::Builtin => return Err(InstallError::Builtin(name.to_owned())),
            ToolSource::Directory(dir) => {
                return Err(InstallError::NotInstalled {
                    name: name.to_owned(),
                    dir: dir.display().to_string(),
                });
            }
        }
        // Off the disk first: a crash between the two leaves it gone after a restart, as asked.
        remove_from_disk(dir, name)?;
        self.tools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(current)
    }

    /// The manifest text installed tool `name` was installed with (`""` for none), if `name`
    /// is an installed tool: what a fleet compares with its record of the tool.
    pub fn installed_manifest(&self, name: &str) -> Option<String> {
        let dir = self.installed_dir.as_ref()?;
        if !is_valid_tool_name(name) || self.tool(name)?.source != ToolSource::Installed {
            return None;
        }
        std::fs::read_to_string(dir.join(name).join("tool.toml")).ok()
    }

    fn check_replaceable(&self, name: &str, replace_builtins: bool) -> Result<(), InstallError> {
        match self.tool(name).map(|t| t.source) {
            Some(ToolSource::Builtin) if !replace_builtins => {
                Err(InstallError::Builtin(name.to_owned()))
            }
            Some(ToolSource::Directory(dir)) => Err(InstallError::NotInstalled {
                name: name.to_owned(),
                dir: dir.display().to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Writes `<dir>/<name>/{tool.wasm,tool.toml}` so that a crash leaves the old version or the
/// new one, never a mix: the new directory is made beside it, then renamed into place.
fn keep_on_disk(dir: &Path, name: &str, wasm: &[u8], manifest: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let fresh = dir.join(format!(".{name}.new"));
    let stale = dir.join(format!(".{name}.old"));
    let target = dir.join(name);
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&stale);
    std::fs::create_dir(&fresh)?;
    write_synced(&fresh.join("tool.wasm"), wasm)?;
    write_synced(&fresh.join("tool.toml"), manifest.as_bytes())?;
    if target.exists() {
        std::fs::rename(&target, &stale)?;
    }
    std::fs::rename(&fresh, &target)?;
    std::fs::File::open(dir)?.sync_all()?;
    let _ = std::fs::remove_dir_all(&stale);
    Ok(())
}

fn remove_from_disk(dir: &Path, name: &str) -> std::io::Result<()> {
    let stale = dir.join(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&stale);
    std::fs::rename(dir.join(name), &stale)?;
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::remove_dir_all(&stale)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
