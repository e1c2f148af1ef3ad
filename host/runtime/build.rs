//! Builds the guest tools and embeds the built-in ones in this crate (`BUILTIN_TOOLS`).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let guests = match hearth_guest_build::build() {
        Ok(guests) => guests,
        Err(e) => {
            // A build script reports through a panic; the message is what a person will read.
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut code = String::from("/// The built-in tools: (name, component bytes).\n");
    code.push_str("pub const BUILTIN_TOOLS: &[(&str, &[u8])] = &[\n");
    for tool in &guests.tools {
        let _ = writeln!(
            code,
            "    ({:?}, include_bytes!({:?})),",
            tool.name, tool.path
        );
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("builtin_tools.rs");
    if let Err(e) = std::fs::write(&out, code) {
        eprintln!("writing {}: {e}", out.display());
        std::process::exit(1);
    }
}
