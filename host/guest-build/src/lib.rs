//! Builds the guest components in `guest-tools/` from a host crate's `build.rs`.
//!
//! The guests are their own cargo workspace, compiled for `wasm32-wasip2` (where a `cdylib` is
//! already a component). Running that build from the host's build scripts is what makes a plain
//! `cargo build` or `cargo test` produce the tools too, with no extra step to forget.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target every guest is compiled for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// One compiled guest component.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The component's name: its directory name under `guest-tools/tools/` or `test-guests/`.
    pub name: String,
    pub path: PathBuf,
}

/// What one build produced.
#[derive(Debug, Clone)]
pub struct Guests {
    /// The built-in tools (`guest-tools/tools/*`) that ship inside the worker.
    pub tools: Vec<Artifact>,
    /// Guests that exist only to test the host (`guest-tools/test-guests/*`).
    pub test_guests: Vec<Artifact>,
}

/// Why the guests could not be built.
#[derive(Debug)]
pub enum Error {
    /// The `wasm32-wasip2` standard library is not installed for this toolchain.
    TargetMissing,
    /// Running cargo failed, or it reported errors (its output is included).
    Cargo(String),
    /// Reading `guest-tools/` failed.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TargetMissing => write!(
                f,
                "the `{GUEST_TARGET}` target is not installed, so Hearth's tools cannot be built.\n\
                 Fix: run `rustup target add {GUEST_TARGET}` and build again."
            ),
            Error::Cargo(output) => write!(f, "building guest-tools/ failed:\n{output}"),
            Error::Io(e) => write!(f, "reading guest-tools/: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Where the guest workspace lives (next to `host/` in this repository).
pub fn guest_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-tools")
}

/// Builds every guest in release mode and tells cargo when to do it again. Call from `build.rs`.
pub fn build() -> Result<Guests, Error> {
    let workspace = guest_workspace();
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "sdk",
        "tools",
        "test-guests",
        "../wit",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    ensure_target_installed()?;

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(&workspace).args([
        "build",
        "--release",
        "--workspace",
        "--target",
        GUEST_TARGET,
    ]);
    scrub_outer_cargo_env(&mut command);
    let output = command
        .output()
        .map_err(|e| Error::Cargo(format!("running cargo: {e}")))?;
    if !output.status.success() {
        return Err(Error::Cargo(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }

    let out_dir = workspace.join("target").join(GUEST_TARGET).join("release");
    Ok(Guests {
        tools: artifacts(&workspace.join("tools"), &out_dir)?,
        test_guests: artifacts(&workspace.join("test-guests"), &out_dir)?,
    })
}

/// Drops what the outer cargo told its build script, so the nested build is configured by
/// `guest-tools/` alone: no host rustflags, no host target, no clippy wrapper. The jobserver
/// (`CARGO_MAKEFLAGS`) is kept so both builds share the same CPU budget.
fn scrub_outer_cargo_env(command: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer_cargo =
            key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS";
        let rust_flags = matches!(
            key,
            "RUSTFLAGS" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOCFLAGS"
        );
        if outer_cargo || rust_flags {
            command.env_remove(key);
        }
    }
}

fn ensure_target_installed() -> Result<(), Error> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    ensure_target_installed_for(Path::new(&rustc))
}

/// Asks `rustc` for its sysroot and looks for the guest target's standard library there.
fn ensure_target_installed_for(rustc: &Path) -> Result<(), Error> {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| Error::Cargo(format!("running {}: {e}", rustc.display())))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(GUEST_TARGET).is_dir() {
        Ok(())
    } else {
        Err(Error::TargetMissing)
    }
}

/// The components built from the crates directly below `dir`: `<crate dir name>.wasm`.
fn artifacts(dir: &Path, out_dir: &Path) -> Result<Vec<Artifact>, Error> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::Io)? {
        let entry = entry.map_err(Error::Io)?;
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = out_dir.join(format!("{name}.wasm"));
        if !path.is_file() {
            return Err(Error::Cargo(format!(
                "expected the component {} after the build; is the crate's [lib] name `{name}`?",
                path.display()
            )));
        }
        found.push(Artifact { name, path });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in `rustc` whose sysroot is `sysroot`.
    fn fake_rustc(dir: &Path, sysroot: &Path) -> PathBuf {
        let script = dir.join("rustc");
        std::fs::write(&script, format!("#!/bin/sh\necho {}\n", sysroot.display())).unwrap();
        let mut permissions = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).unwrap();
        script
    }

    #[test]
    fn a_missing_target_says_how_to_install_it() {
        let dir = std::env::temp_dir().join(format!("hearth-guest-build-{}", std::process::id()));
        let sysroot = dir.join("sysroot");
        std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu")).unwrap();
        let rustc = fake_rustc(&dir, &sysroot);
        let error = ensure_target_installed_for(&rustc).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("run `rustup target add wasm32-wasip2`"),
            "{error}"
        );

        std::fs::create_dir_all(sysroot.join("lib/rustlib/wasm32-wasip2")).unwrap();
        ensure_target_installed_for(&rustc).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
