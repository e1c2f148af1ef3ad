//! The session's view as a tool sees it: which absolute paths exist and which may be written.
//!
//! The host preopens each mount at its view path, and wasi-libc routes an absolute path to the
//! preopen with the longest matching prefix. [`View::resolve`] applies the same rule *before* any
//! I/O, after normalising the path lexically, so that `..`, `.` and doubled slashes can never
//! route a path to a different mount than the one it names, and so that a path outside every
//! mount is refused as `invalid_path` rather than reported as missing.

use crate::ToolError;
use crate::bindings::hearth::tool::types as wit;

/// One directory of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Normalised absolute view path, e.g. `/workspace/skills`.
    pub path: String,
    pub writable: bool,
}

/// The mounts granted to this call, longest path first.
#[derive(Debug, Clone, Default)]
pub struct View {
    mounts: Vec<Mount>,
    home: String,
}

/// A path checked against the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// `/` itself: not a directory on disk, but the parent of the top-level mounts.
    Root,
    /// A path inside (or at the root of) a mount.
    InMount {
        /// The normalised view path, ready to hand to `std::fs`.
        path: String,
        /// Index of the owning mount in [`View::mounts`].
        mount: usize,
    },
}

impl View {
    /// `home` is the workspace's view path, the default for tools' optional path arguments.
    pub fn new(mut mounts: Vec<Mount>, home: &str) -> Self {
        mounts.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.path.cmp(&b.path)));
        Self {
            mounts,
            home: home.to_owned(),
        }
    }

    /// The workspace's view path (`/workspace` unless the operator chose another).
    pub fn home(&self) -> &str {
        &self.home
    }

    pub(crate) fn from_context(context: &wit::CallContext) -> Self {
        let mounts = context
            .mounts
            .iter()
            .filter_map(|m| {
                let path = normalize(&m.path).ok()?;
                Some(Mount {
                    path,
                    writable: m.writable,
                })
            })
            .collect();
        Self::new(mounts, &context.home)
    }

    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The mounts not nested in another mount (`/workspace`, `/tmp`): what `/` shows.
    pub fn top_mounts(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.iter().filter(|m| {
            !self
                .mounts
                .iter()
                .any(|o| o.path != m.path && is_within(&m.path, &o.path))
        })
    }

    /// Top mount paths, for messages ("use a path under /tmp, /workspace").
    fn roots_for_message(&self) -> String {
        let mut roots: Vec<&str> = self.top_mounts().map(|m| m.path.as_str()).collect();
        roots.sort_unstable();
        roots.join(", ")
    }

    /// Checks `path` against the view. Relative paths and paths outside every mount are
    /// `invalid_path`.
    pub fn resolve(&self, path: &str) -> Result<Resolved, ToolError> {
        let normalized = normalize(path).map_err(|why| {
            // Where to look instead helps with a misspelt path, not with a long name.
            let hint = match why {
                PathError::NameTooLong(_) => String::new(),
                _ => format!("; use an absolute path under {}", self.roots_for_message()),
            };
            ToolError::InvalidPath(format!("path `{path}` {why}{hint}"))
        })?;
        if normalized == "/" {
            return Ok(Resolved::Root);
        }
        match self
            .mounts
            .iter()
            .position(|m| is_within(&normalized, &m.path))
        {
            Some(mount) => Ok(Resolved::InMount {
                path: normalized,
                mount,
            }),
            None => Err(ToolError::InvalidPath(format!(
                "path `{path}` is outside the session's view; use a path under {}",
                self.roots_for_message()
            ))),
        }
    }

    /// Resolves a path that must lie inside a mount (not `/`), as the file tools need.
    pub fn resolve_file(&self, path: &str) -> Result<(String, &Mount), ToolError> {
        match self.resolve(path)? {
            Resolved::Root => Err(ToolError::IsDirectory(format!(
                "`{path}` is the root of the view, not a file"
            ))),
            Resolved::InMount { path, mount } => Ok((path, &self.mounts[mount])),
        }
    }

    /// Like [`View::resolve_file`], and refuses paths in a mount this call may not write.
    pub fn resolve_writable(&self, path: &str) -> Result<(String, &Mount), ToolError> {
        let (resolved, mount) = self.resolve_file(path)?;
        if !mount.writable {
            return Err(ToolError::PermissionDenied(format!(
                "`{path}` is in `{}`, which is read-only",
                mount.path
            )));
        }
        Ok((resolved, mount))
    }

    /// Mounts that appear as entries of a listing of `dir` although the directory on disk
    /// does not hold them: for `/`, the top mounts (wherever they are mounted); elsewhere, the
    /// mounts whose parent is `dir`.
    pub fn child_mounts<'a>(&'a self, dir: &'a str) -> Box<dyn Iterator<Item = &'a Mount> + 'a> {
        if dir == "/" {
            Box::new(self.top_mounts())
        } else {
            Box::new(
                self.mounts
                    .iter()
                    .filter(move |m| parent_of(&m.path) == dir),
            )
        }
    }

    /// True when `path` is the root of a mount.
    pub fn is_mount_root(&self, path: &str) -> bool {
        self.mounts.iter().any(|m| m.path == path)
    }
}

pub use hearth_view_path::{MAX_NAME_BYTES, PathError, is_within, join, normalize, parent_of};

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View::new(
            vec![
                Mount {
                    path: "/workspace".into(),
                    writable: true,
                },
                Mount {
                    path: "/tmp".into(),
                    writable: true,
                },
                Mount {
                    path: "/workspace/skills".into(),
                    writable: false,
                },
            ],
            "/workspace",
        )
    }

    #[test]
    fn spelled_differently_still_lands_in_the_read_only_mount() {
        let v = view();
        for p in [
            "/workspace/./skills/x",
            "/workspace/a/../skills/x",
            "//workspace/skills//x",
        ] {
            let (resolved, mount) = v.resolve_file(p).unwrap();
            assert_eq!(resolved, "/workspace/skills/x");
            assert!(!mount.writable, "{p}");
            assert!(matches!(
                v.resolve_writable(p),
                Err(ToolError::PermissionDenied(_))
            ));
        }
    }

    #[test]
    fn refuses_paths_outside_the_view() {
        let v = view();
        for p in [
            "/etc/passwd",
            "workspace/a",
            "/workspacex/a",
            "/workspace/../etc",
            "../x",
        ] {
            assert!(
                matches!(v.resolve(p), Err(ToolError::InvalidPath(_))),
                "{p}"
            );
        }
        assert_eq!(v.resolve("/"), Ok(Resolved::Root));
    }

    #[test]
    fn names_longer_than_255_bytes_are_invalid_paths() {
        let v = view();
        let longest = format!("/workspace/{}", "n".repeat(MAX_NAME_BYTES));
        assert!(v.resolve_writable(&longest).is_ok());
        let too_long = format!("/tmp/{}.txt", "n".repeat(MAX_NAME_BYTES - 3));
        match v.resolve_writable(&too_long) {
            Err(ToolError::InvalidPath(message)) => {
                assert!(message.contains("255 bytes"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn child_mounts_are_listed_under_their_parent() {
        let v = view();
        let top: Vec<_> = v.child_mounts("/").map(|m| m.path.as_str()).collect();
        assert_eq!(top, ["/workspace", "/tmp"]);
        let deep = View::new(
            vec![
                Mount {
                    path: "/home/agent/ws".into(),
                    writable: true,
                },
                Mount {
                    path: "/tmp".into(),
                    writable: true,
                },
            ],
            "/home/agent/ws",
        );
        let top: Vec<_> = deep.child_mounts("/").map(|m| m.path.as_str()).collect();
        assert_eq!(
            top,
            ["/home/agent/ws", "/tmp"],
            "a deep workspace still shows under /"
        );
        let nested: Vec<_> = v
            .child_mounts("/workspace")
            .map(|m| m.path.as_str())
            .collect();
        assert_eq!(nested, ["/workspace/skills"]);
    }
}
