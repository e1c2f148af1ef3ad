//! Where the worker finds its helper binaries.

/// A helper binary named `name` next to the running binary, or one directory up (where cargo
/// puts test binaries): how the worker finds `hearth-jail` and `hearth-git`.
pub fn beside_binary(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}
