//! A session's view: which host directories a call sees, at which paths, with which rights.
//!
//! The view is the whole of what a tool can reach. Each mount becomes one WASI preopen at its view
//! path (`/workspace`, `/tmp`, `/workspace/skills`, …); there is deliberately no `.` or `/`
//! preopen, because wasi-libc would re-root every absolute path under it (`/etc/passwd` would
//! quietly become `workspace/etc/passwd`) instead of refusing it.

use std::path::PathBuf;

use hearth_view_path::{PathError, is_normalized, normalize, strip_base};

/// One directory of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute, normalised path the guest sees, e.g. `/workspace`.
    pub view_path: String,
    /// The host directory behind it.
    pub host_path: PathBuf,
    /// Whether tools that write may change it. Read-only tools never may.
    pub writable: bool,
}

/// A view that cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("a view needs at least one mount (the workspace)")]
    Empty,
    #[error(
        "view path `{0}` must be absolute and normalised (no `.`, `..`, empty segments or trailing `/`)"
    )]
    NotNormalized(String),
    #[error("view path `/` cannot be a mount: mount directories at their own paths")]
    RootMount,
    #[error("view path `{0}` is mounted twice")]
    Duplicate(String),
    #[error("mount `{inner}` is nested in `{outer}` but writable while `{outer}` is read-only")]
    WritableInsideReadOnly { inner: String, outer: String },
}

/// The mounts of one session, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    mounts: Vec<Mount>,
}

impl SessionView {
    /// Validates the mounts. The first is the session's home (its workspace), where tools look
    /// when a path argument is left out. Nested mounts (a read-only area inside the workspace)
    /// are allowed; they shadow the directory they sit in for every path below them.
    pub fn new(mounts: Vec<Mount>) -> Result<Self, ViewError> {
        if mounts.is_empty() {
            return Err(ViewError::Empty);
        }
        for (i, mount) in mounts.iter().enumerate() {
            if mount.view_path == "/" {
                return Err(ViewError::RootMount);
            }
            if !is_normalized(&mount.view_path) {
                return Err(ViewError::NotNormalized(mount.view_path.clone()));
            }
            if mounts[..i].iter().any(|m| m.view_path == mount.view_path) {
                return Err(ViewError::Duplicate(mount.view_path.clone()));
            }
        }
        for inner in mounts.iter().filter(|m| m.writable) {
            if let Some(outer) = mounts
                .iter()
                .find(|o| !o.writable && inner.view_path.starts_with(&format!("{}/", o.view_path)))
            {
                return Err(ViewError::WritableInsideReadOnly {
                    inner: inner.view_path.clone(),
                    outer: outer.view_path.clone(),
                });
            }
        }
        Ok(Self { mounts })
    }

    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The view path of the session's workspace (the first mount).
    pub fn home(&self) -> &str {
        self.mounts.first().map_or("/", |m| m.view_path.as_str())
    }

    /// Resolves a view path to the mount that owns it (the longest mount path containing it),
    /// for host code that serves files directly. The result is relative to the mount's host
    /// directory and must be opened beneath it (e.g. with `cap_std`), never joined onto a path.
    pub fn resolve(&self, path: &str) -> Result<Resolved<'_>, ResolveError> {
        let normalized = normalize(path).map_err(|reason| ResolveError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        self.mounts
            .iter()
            .filter_map(|m| strip_base(&normalized, &m.view_path).map(|rel| (m, rel)))
            .max_by_key(|(m, _)| m.view_path.len())
            .map(|(mount, relative)| Resolved {
                mount,
                relative: relative.to_owned(),
                view_path: normalized.clone(),
            })
            .ok_or_else(|| ResolveError::Outside {
                path: path.to_owned(),
            })
    }
}

/// A view path and the mount it lies in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub mount: &'a Mount,
    /// The path below the mount's directory; empty for the mount itself.
    pub relative: String,
    /// The normalised view path.
    pub view_path: String,
}

/// A view path that names nothing in the view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("path `{path}` {reason}")]
    Invalid { path: String, reason: PathError },
    #[error("path `{path}` is outside the session's view")]
    Outside { path: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(view_path: &str, writable: bool) -> Mount {
        Mount {
            view_path: view_path.into(),
            host_path: "/nonexistent".into(),
            writable,
        }
    }

    #[test]
    fn accepts_the_usual_view() {
        SessionView::new(vec![
            mount("/workspace", true),
            mount("/tmp", true),
            mount("/workspace/skills", false),
        ])
        .unwrap();
    }

    #[test]
    fn resolves_to_the_longest_mount() {
        let view = SessionView::new(vec![
            mount("/workspace", true),
            mount("/workspace/skills", false),
        ])
        .unwrap();
        let r = view.resolve("/workspace/./skills/a/../b.md").unwrap();
        assert_eq!(
            (r.mount.view_path.as_str(), r.relative.as_str()),
            ("/workspace/skills", "b.md")
        );
        let r = view.resolve("/workspace/skillsx").unwrap();
        assert_eq!(
            (r.mount.view_path.as_str(), r.relative.as_str()),
            ("/workspace", "skillsx")
        );
        assert!(matches!(
            view.resolve("/etc/passwd"),
            Err(ResolveError::Outside { .. })
        ));
        assert!(matches!(
            view.resolve("/workspace/../../x"),
            Err(ResolveError::Invalid { .. })
        ));
        assert!(matches!(
            view.resolve("rel"),
            Err(ResolveError::Invalid { .. })
        ));
    }

    #[test]
    fn refuses_views_that_would_widen_access() {
        assert_eq!(
            SessionView::new(vec![mount("/", true)]),
            Err(ViewError::RootMount)
        );
        for bad in ["workspace", "/workspace/", "/a/../b", "/a/./b", "/a//b"] {
            assert!(
                matches!(
                    SessionView::new(vec![mount(bad, true)]),
                    Err(ViewError::NotNormalized(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            SessionView::new(vec![mount("/w", true), mount("/w", false)]),
            Err(ViewError::Duplicate(_))
        ));
        assert!(matches!(
            SessionView::new(vec![mount("/ro", false), mount("/ro/rw", true)]),
            Err(ViewError::WritableInsideReadOnly { .. })
        ));
    }
}
