//! Size-capped scratch directories: each session's `/tmp` on a tmpfs of its own, so neither a
//! program nor a tool can fill the worker's disk through it.
//!
//! Opt-in (`scratch_mib`), because the mounts outlive the worker process (a restarted worker
//! finds and reuses them) and must be unmounted before a data dir can be deleted by hand.

use std::path::Path;

use nix::mount::{MsFlags, mount};

/// Mounts a tmpfs of `size_mib` on `dir`, unless one is mounted there already.
pub fn ensure(dir: &Path, size_mib: u64) -> Result<(), String> {
    if hearth_volume::is_mount_point(dir) {
        return Ok(());
    }
    let options = format!("size={size_mib}m,mode=0755");
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mounting a {size_mib} MiB tmpfs on {}: {e}", dir.display()))
}

/// Unmounts the scratch tmpfs of `dir`, if there is one (its content is gone with it).
pub fn release(dir: &Path) {
    hearth_volume::release(dir);
}
