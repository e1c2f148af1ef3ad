//! View paths: the absolute paths agents use (`/workspace/src/main.py`, `/tmp/out.json`).
//!
//! The host (files API, session layout) and the guest tools (every tool argument) must agree
//! exactly on what a path means, or a path could pass one check and mean something else to the
//! other. This crate is that single definition; it is pure `std` and builds for the host and
//! for `wasm32-wasip2` alike.
//!
//! Normalisation is lexical: `.` and empty segments vanish and `..` removes the previous
//! segment. Symlinks are not resolved here; that is the kernel's job (`openat2` with
//! `RESOLVE_BENEATH` under every preopen and `cap-std` handle), which refuses any link leading
//! out of its directory.
//!
//! A name longer than [`MAX_NAME_BYTES`] is refused here too: the kernel would refuse it anyway
//! (`ENAMETOOLONG`), but only once a tool is running, as an opaque I/O error instead of an
//! invalid path.

use std::fmt;

/// The longest file name Linux filesystems accept (`NAME_MAX`), in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a string is not a usable view path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Does not start with `/`.
    Relative,
    /// `..` would climb above `/`.
    ClimbsAboveRoot,
    /// Holds a NUL byte, which no filesystem path may contain.
    Nul,
    /// A component is longer than [`MAX_NAME_BYTES`]; holds its length in bytes.
    NameTooLong(usize),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Relative => {
                f.write_str("is relative; view paths are absolute (e.g. /workspace/main.py)")
            }
            PathError::ClimbsAboveRoot => f.write_str("climbs above the root of the view"),
            PathError::Nul => f.write_str("contains a NUL byte"),
            PathError::NameTooLong(bytes) => write!(
                f,
                "has a name of {bytes} bytes; names are limited to {MAX_NAME_BYTES} bytes"
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// Normalises an absolute view path: `/workspace/./a//b/../c` becomes `/workspace/a/c`.
///
/// Every component is checked, even one a later `..` removes, so a path is refused or accepted
/// whatever the spelling.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::Relative);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        if segment.len() > MAX_NAME_BYTES {
            return Err(PathError::NameTooLong(segment.len()));
        }
        match segment {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::ClimbsAboveRoot);
                }
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// True for paths [`normalize`] leaves unchanged (other than `/` itself).
pub fn is_normalized(path: &str) -> bool {
    path.len() > 1 && normalize(path).is_ok_and(|n| n == path)
}

/// True when normalised `path` is `base` or lies below it.
pub fn is_within(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

/// The part of normalised `path` below `base` (`""` for `base` itself), if it is within it.
pub fn strip_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if !is_within(path, base) {
        return None;
    }
    Some(path[base.len()..].trim_start_matches('/'))
}

/// The parent of a normalised path (`/` for top-level entries and for `/` itself).
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Joins a normalised directory path and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dot_segments() {
        assert_eq!(
            normalize("/workspace/./a//b/../c").as_deref(),
            Ok("/workspace/a/c")
        );
        assert_eq!(normalize("/").as_deref(), Ok("/"));
        assert_eq!(
            normalize("/workspace/../../etc"),
            Err(PathError::ClimbsAboveRoot)
        );
        assert_eq!(normalize("workspace/a"), Err(PathError::Relative));
        assert_eq!(normalize("/a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        let longest = "n".repeat(MAX_NAME_BYTES);
        let path = format!("/workspace/{longest}");
        assert_eq!(normalize(&path).as_deref(), Ok(path.as_str()));
        let too_long = "n".repeat(MAX_NAME_BYTES + 1);
        for bad in [
            format!("/workspace/{too_long}"),
            format!("/workspace/{too_long}/a.txt"),
            format!("/{too_long}"),
            format!("/workspace/{too_long}/../a.txt"),
        ] {
            assert_eq!(normalize(&bad), Err(PathError::NameTooLong(256)), "{bad}");
        }
        // The limit is in bytes, not characters: 128 two-byte characters are 256 bytes.
        let wide = "é".repeat(128);
        assert_eq!(
            normalize(&format!("/tmp/{wide}")),
            Err(PathError::NameTooLong(256))
        );
        assert!(normalize(&format!("/tmp/{}", "é".repeat(127))).is_ok());
        assert!(!is_normalized(&format!("/workspace/{too_long}")));
        let message = PathError::NameTooLong(256).to_string();
        assert!(message.contains("255 bytes"), "{message}");
    }

    #[test]
    fn containment_is_by_whole_segments() {
        assert!(is_within("/workspace/a", "/workspace"));
        assert!(is_within("/workspace", "/workspace"));
        assert!(!is_within("/workspacex/a", "/workspace"));
        assert_eq!(strip_base("/workspace/a/b", "/workspace"), Some("a/b"));
        assert_eq!(strip_base("/workspace", "/workspace"), Some(""));
        assert_eq!(strip_base("/tmp/a", "/workspace"), None);
    }

    #[test]
    fn normalized_form() {
        assert!(is_normalized("/workspace/skills"));
        for bad in [
            "/",
            "workspace",
            "/workspace/",
            "/a/../b",
            "/a/./b",
            "/a//b",
        ] {
            assert!(!is_normalized(bad), "{bad}");
        }
        assert_eq!(parent_of("/workspace/skills"), "/workspace");
        assert_eq!(parent_of("/workspace"), "/");
        assert_eq!(join("/", "tmp"), "/tmp");
        assert_eq!(join("/tmp", "a"), "/tmp/a");
    }
}
