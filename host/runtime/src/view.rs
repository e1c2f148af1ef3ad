//! A session's view: which host directories a call sees, at which paths, with which rights.
//!
//! The view is the whole of what a tool can reach. Each mount becomes one WASI preopen at its view
//! path (`/workspace`, `/tmp`, `/workspace/skills`, …); there is deliberately no `.` or `/`
//! preopen, because wasi-libc would re-root every absolute path under it (`/etc/passwd` would
//! quietly become `workspace/etc/passwd`) instead of refusing it.

use std::path::PathBuf;

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
    /// Validates the mounts. Nested mounts (a read-only area inside the workspace) are allowed;
    /// they shadow the directory they sit in for every path below them.
    pub fn new(mounts: Vec<Mount>) -> Result<Self, ViewError> {
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
}

/// `/a/b` style: starts with `/`, no empty, `.` or `..` segments, no trailing `/`, no NUL.
pub fn is_normalized(path: &str) -> bool {
    path.len() > 1
        && path.starts_with('/')
        && !path.contains('\0')
        && path[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
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
