//! What one tool call may consume. A tool's manifest (`manifest`) can only tighten it.

use std::time::Duration;

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
