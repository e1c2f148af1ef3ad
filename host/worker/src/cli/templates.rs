//! `hearth tool new`: a buildable tool project, in Rust or Python. A project made outside this
//! repository cannot reach our crates by path, so the template carries what it needs: the WIT
//! world itself, and plain `wit-bindgen` (Rust) or componentize-py (Python).

use std::path::Path;

use anyhow::{Context, Result, bail};

/// The WIT world every tool implements: copied into each project.
const WIT: &str = include_str!("../../../../wit/tool.wit");

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

/// `(path in the project, template text)`.
const RUST: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../templates/rust/README.md.tmpl"),
    ),
];

const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../../templates/python/app.py.tmpl")),
    (
        "logic.py",
        include_str!("../../templates/python/logic.py.tmpl"),
    ),
    (
        "test_logic.py",
        include_str!("../../templates/python/test_logic.py.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../templates/python/README.md.tmpl"),
    ),
];

/// Writes the project for tool `name` into `dir` (which must not exist yet).
pub fn write(name: &str, lang: Lang, dir: &Path) -> Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a tool name: lowercase letters, digits and `_`, starting with a letter"
        );
    }
    if dir.exists() {
        bail!("{} exists already", dir.display());
    }
    let files = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
    };
    // The crate's file name: cargo writes `<name>.wasm` with `-` as `_` (ours has none).
    let fill = |text: &str| text.replace("{{name}}", name).replace("{{crate}}", name);
    for (path, text) in files.iter().copied().chain([("wit/tool.wit", WIT)]) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("making {}", parent.display()))?;
        }
        std::fs::write(&path, fill(text)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
