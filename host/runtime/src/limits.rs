//! What one tool call may consume, and the per-tool manifest that can only tighten it.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A call that runs longer is interrupted and answered "deadline exceeded".
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(10);
/// A call's linear memory may not grow past this; growth beyond fails and the call is answered
/// "memory exceeded".
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// A tool's result (JSON text) larger than this is refused as too large rather than passed on.
pub const DEFAULT_RESULT_BYTES: u64 = 16 * 1024 * 1024;
/// Stdout and stderr are diagnostics: each keeps at most this much, the rest is dropped.
pub const MAX_CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// The limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    pub deadline: Duration,
    pub memory_bytes: u64,
    pub result_bytes: u64,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_CALL_DEADLINE,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            result_bytes: DEFAULT_RESULT_BYTES,
        }
    }
}

/// `tool.toml`, installed beside a tool by the operator. Every field can only narrow what the
/// host would otherwise grant; asking for more is a load error, not a silent clamp, so a manifest
/// never says something that is not true.
///
/// ```toml
/// read_only = true      # grant every mount read-only, whatever the tool declares
/// deadline_ms = 2000    # at most the host's deadline
/// memory_mib = 16       # at most the host's memory cap
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub read_only: Option<bool>,
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
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
}

impl Manifest {
    /// Reads `tool.toml`; a missing file is an empty manifest.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ManifestError::Parse {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
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
            toml::from_str::<Manifest>("network = true").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn an_empty_manifest_keeps_what_the_tool_declares() {
        let host = CallLimits::default();
        assert_eq!(Manifest::default().narrow(true, host), Ok((true, host)));
        assert_eq!(Manifest::default().narrow(false, host), Ok((false, host)));
    }
}
