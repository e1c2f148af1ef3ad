//! A tool's policy: what its manifest (`tool.toml`) asks for, what the operator grants it, and
//! what it gets — the intersection, or no load at all.
//!
//! Deny by default: a tool gets no environment and no network unless its manifest asks for them
//! *and* the operator's grant for that tool allows them (`crate::network` enforces the hosts). Mounts and limits start from what the
//! host gives every tool (the session's view; the host's deadline and memory) and a manifest can
//! only narrow them. Asking for more than allowed is a load error that says what was asked,
//! never a silent clamp: a manifest never says something that is not true.
//!
//! ```toml
//! read_only = true      # every mount read-only, whatever the tool declares
//! deadline_ms = 2000    # at most the host's deadline
//! memory_mib = 16       # at most the host's memory cap
//! env = ["API_KEY"]     # variables the operator grants this tool by name
//! network = ["api.example.com:443"]  # hosts within the operator's grant (`network`)
//!
//! [mounts]              # only these view areas, each at most as the view allows
//! "/workspace" = "read-only"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hearth_egress::HostPattern;
use serde::{Deserialize, Serialize};

use crate::limits::CallLimits;

/// `tool.toml`: what a tool asks for. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub read_only: Option<bool>,
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    /// The view areas the tool sees, by view path; without it, the whole view.
    pub mounts: Option<BTreeMap<String, MountAccess>>,
    /// Environment variables the tool needs, by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Hosts the tool may send HTTP(S) requests to: `host:port`, `*.example.com:443`, or an
    /// address (`127.0.0.1:8080`, the only way to reach a non-public one).
    #[serde(default)]
    pub network: Vec<String>,
}

/// How a tool may use a view area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountAccess {
    ReadOnly,
    ReadWrite,
}

/// What the operator allows one tool beyond the defaults (`[tools.grants.<name>]` in the
/// worker's configuration).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Variables the tool may be given, with their values (secrets: never shown by any route).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Hosts the tool may be let out to (same forms as the manifest's `network`); a manifest
    /// entry must fall within one of these.
    #[serde(default)]
    pub network: Vec<String>,
    /// Let `Authorization`, `Proxy-Authorization` and `Cookie` headers out (dropped otherwise).
    #[serde(default)]
    pub network_credentials: bool,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("network", &self.network)
            .field("network_credentials", &self.network_credentials)
            .finish()
    }
}

/// What a loaded tool gets.
#[derive(Clone, PartialEq, Eq)]
pub struct Policy {
    pub read_only: bool,
    pub limits: CallLimits,
    /// `None`: the whole view.
    pub mounts: Option<BTreeMap<String, MountAccess>>,
    /// Names and values; the values never leave the host but into the tool's environment.
    pub env: BTreeMap<String, String>,
    /// Where its HTTP requests may go (empty: nowhere).
    pub network: std::sync::Arc<Vec<HostPattern>>,
    pub network_credentials: bool,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("read_only", &self.read_only)
            .field("limits", &self.limits)
            .field("mounts", &self.mounts)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field(
                "network",
                &self
                    .network
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A manifest that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    #[error(
        "manifest asks for `read_only = false`, but the tool declares itself read-only; a manifest can only narrow"
    )]
    WidensReadOnly,
    #[error(
        "manifest asks for {field} = {asked}, above the host's limit of {limit}; a manifest can only narrow"
    )]
    AboveHostLimit {
        field: &'static str,
        asked: u64,
        limit: u64,
    },
    #[error("manifest asks for {field} = 0, which would make every call fail")]
    Zero { field: &'static str },
    #[error(
        "manifest asks for the environment variable `{0}`, which the operator does not grant this tool ([tools.grants.<name>] env)"
    )]
    EnvNotGranted(String),
    #[error("manifest names the mount `{0}`, which is not an absolute view path")]
    BadMount(String),
    #[error("network: {0}")]
    BadHost(String),
    #[error(
        "manifest asks to reach `{0}`, which the operator does not grant this tool ([tools.grants.<name>] network)"
    )]
    NetworkNotGranted(String),
}

impl Manifest {
    /// Reads `tool.toml`; a missing file is an empty manifest.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ManifestError::Parse {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Reads a manifest's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ManifestError> {
        toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: origin.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The policy a tool gets: what it declares, narrowed by this manifest, within the host's
    /// limits and the operator's grant.
    pub fn grant(
        &self,
        declared_read_only: bool,
        host: CallLimits,
        grant: &Grant,
    ) -> Result<Policy, ManifestError> {
        let (read_only, limits) = self.narrow(declared_read_only, host)?;
        let mut env = BTreeMap::new();
        for name in &self.env {
            let value = grant
                .env
                .get(name)
                .ok_or_else(|| ManifestError::EnvNotGranted(name.clone()))?;
            env.insert(name.clone(), value.clone());
        }
        if let Some(mounts) = &self.mounts
            && let Some(bad) = mounts.keys().find(|p| !p.starts_with('/'))
        {
            return Err(ManifestError::BadMount(bad.clone()));
        }
        let granted = grant
            .network
            .iter()
            .map(|p| HostPattern::parse(p).map_err(ManifestError::BadHost))
            .collect::<Result<Vec<_>, _>>()?;
        let mut network = Vec::new();
        for asked in &self.network {
            let pattern = HostPattern::parse(asked).map_err(ManifestError::BadHost)?;
            if !granted.iter().any(|g| g.covers(&pattern)) {
                return Err(ManifestError::NetworkNotGranted(asked.clone()));
            }
            network.push(pattern);
        }
        Ok(Policy {
            read_only,
            limits,
            mounts: self.mounts.clone(),
            env,
            network: std::sync::Arc::new(network),
            network_credentials: grant.network_credentials,
        })
    }

    /// Applies the manifest to what the tool declares and what the host allows.
    /// Returns the effective read-only flag and limits.
    pub fn narrow(
        &self,
        declared_read_only: bool,
        host: CallLimits,
    ) -> Result<(bool, CallLimits), ManifestError> {
        let read_only = match self.read_only {
            Some(false) if declared_read_only => return Err(ManifestError::WidensReadOnly),
            Some(flag) => flag || declared_read_only,
            None => declared_read_only,
        };
        let mut limits = host;
        if let Some(ms) = self.deadline_ms {
            let limit = host.deadline.as_millis() as u64;
            check("deadline_ms", ms, limit)?;
            limits.deadline = Duration::from_millis(ms);
        }
        if let Some(mib) = self.memory_mib {
            let limit = host.memory_bytes / (1024 * 1024);
            check("memory_mib", mib, limit)?;
            limits.memory_bytes = mib * 1024 * 1024;
        }
        Ok((read_only, limits))
    }
}

impl Policy {
    /// How a view area is granted to the tool: `None` when the tool does not see it.
    /// `view_writable` is what the view allows; the tool never gets more.
    pub fn mount(&self, view_path: &str, view_writable: bool) -> Option<MountAccess> {
        let asked = match &self.mounts {
            None => MountAccess::ReadWrite,
            Some(mounts) => *mounts.get(view_path)?,
        };
        let writable = view_writable && !self.read_only && asked == MountAccess::ReadWrite;
        Some(match writable {
            true => MountAccess::ReadWrite,
            false => MountAccess::ReadOnly,
        })
    }
}

fn check(field: &'static str, asked: u64, limit: u64) -> Result<(), ManifestError> {
    if asked == 0 {
        return Err(ManifestError::Zero { field });
    }
    if asked > limit {
        return Err(ManifestError::AboveHostLimit {
            field,
            asked,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn narrows_within_the_host_limits() {
        let (read_only, limits) = manifest("read_only = true\ndeadline_ms = 500\nmemory_mib = 8")
            .narrow(false, CallLimits::default())
            .unwrap();
        assert!(read_only);
        assert_eq!(limits.deadline, Duration::from_millis(500));
        assert_eq!(limits.memory_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn never_widens() {
        let host = CallLimits::default();
        assert_eq!(
            manifest("read_only = false").narrow(true, host),
            Err(ManifestError::WidensReadOnly)
        );
        assert!(matches!(
            manifest("deadline_ms = 60000").narrow(false, host),
            Err(ManifestError::AboveHostLimit {
                field: "deadline_ms",
                ..
            })
        ));
        assert!(matches!(
            manifest("memory_mib = 65").narrow(false, host),
            Err(ManifestError::AboveHostLimit {
                field: "memory_mib",
                ..
            })
        ));
        assert!(matches!(
            manifest("memory_mib = 0").narrow(false, host),
            Err(ManifestError::Zero { .. })
        ));
        assert!(
            toml::from_str::<Manifest>("bogus = true").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn an_empty_manifest_keeps_what_the_tool_declares() {
        let host = CallLimits::default();
        assert_eq!(Manifest::default().narrow(true, host), Ok((true, host)));
        assert_eq!(Manifest::default().narrow(false, host), Ok((false, host)));
    }

    #[test]
    fn environment_only_as_granted() {
        let host = CallLimits::default();
        let asks = manifest(r#"env = ["API_KEY"]"#);
        assert_eq!(
            asks.grant(false, host, &Grant::default()),
            Err(ManifestError::EnvNotGranted("API_KEY".into()))
        );
        let grant = Grant {
            env: [
                ("API_KEY".into(), "s3cret".into()),
                ("OTHER".into(), "x".into()),
            ]
            .into(),
            ..Grant::default()
        };
        let policy = asks.grant(false, host, &grant).unwrap();
        assert_eq!(policy.env, [("API_KEY".into(), "s3cret".into())].into());
        assert!(
            !format!("{policy:?}").contains("s3cret"),
            "values are never printed"
        );
        let none = Manifest::default().grant(false, host, &grant).unwrap();
        assert!(none.env.is_empty(), "a grant alone gives nothing");
    }

    #[test]
    fn network_only_within_the_grant() {
        let host = CallLimits::default();
        let asks = manifest(r#"network = ["api.example.com:443"]"#);
        assert_eq!(
            asks.grant(false, host, &Grant::default()),
            Err(ManifestError::NetworkNotGranted(
                "api.example.com:443".into()
            ))
        );
        let grant = Grant {
            network: vec!["*.example.com:443".into()],
            ..Grant::default()
        };
        let policy = asks.grant(false, host, &grant).unwrap();
        assert_eq!(policy.network.len(), 1);
        assert!(matches!(
            manifest(r#"network = ["example.com"]"#).grant(false, host, &grant),
            Err(ManifestError::BadHost(_))
        ));
        let none = Manifest::default().grant(false, host, &grant).unwrap();
        assert!(none.network.is_empty(), "a grant alone lets nothing out");
    }

    #[test]
    fn mounts_only_narrow() {
        let host = CallLimits::default();
        let policy =
            manifest("[mounts]\n\"/workspace\" = \"read-only\"\n\"/tmp\" = \"read-write\"")
                .grant(false, host, &Grant::default())
                .unwrap();
        assert_eq!(
            policy.mount("/workspace", true),
            Some(MountAccess::ReadOnly)
        );
        assert_eq!(policy.mount("/tmp", true), Some(MountAccess::ReadWrite));
        assert_eq!(policy.mount("/tmp", false), Some(MountAccess::ReadOnly));
        assert_eq!(policy.mount("/workspace/skills", false), None);
        let whole = Manifest::default()
            .grant(true, host, &Grant::default())
            .unwrap();
        assert_eq!(whole.mount("/workspace", true), Some(MountAccess::ReadOnly));
        assert!(matches!(
            manifest("[mounts]\n\"tmp\" = \"read-only\"").grant(false, host, &Grant::default()),
            Err(ManifestError::BadMount(_))
        ));
    }
}
