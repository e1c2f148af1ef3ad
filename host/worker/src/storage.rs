//! Where a session's writable places live, and the limits that keep one session from taking
//! what the others need.
//!
//! - **Per-session quota.** With quotas on (the default), a session's `workspace/`, `tmp/` and
//!   git directory are on a volume of its own (`hearth-volume`: a loop-mounted ext4 image whose
//!   size and inode count are the quota), mounted at `<session>/volume`. Every writer — tools,
//!   programs, git, restore — meets the same limit in the kernel, as `ENOSPC`; and commits cannot
//!   grow the host's disk behind the quota's back, since the history lives there too.
//! - **Worker-wide floor.** Images are sparse, so quotas may add up to more than the disk. Below
//!   `quota.min_free_mib` free on the data dir's filesystem, nothing that writes session content
//!   starts (507 `storage_full`); reading, snapshotting and deleting still work, so an operator
//!   can get data out and room back.
//!
//! On disk, a session with a volume:
//!
//! ```text
//! <session>/volume.img   the image (sparse)
//! <session>/volume/      its mount point: workspace/, tmp/ and git/ inside (git/ in no view)
//! ```
//!
//! and without (quotas off, or a session made before they were on): `workspace/` and `tmp/`
//! directly in `<session>/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_volume::{Quota, Usage, Volumes};
use serde::{Deserialize, Serialize};

use crate::config::QuotaConfig;

const IMAGE: &str = "volume.img";
const MOUNT: &str = "volume";
/// What every session's volume holds from the start.
pub const LAYOUT: [&str; 2] = ["workspace", "tmp"];

/// A quota as a session's record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRecord {
    pub bytes: u64,
    pub inodes: u64,
}

impl From<QuotaRecord> for Quota {
    fn from(q: QuotaRecord) -> Self {
        Quota {
            bytes: q.bytes,
            inodes: q.inodes,
        }
    }
}

impl From<Quota> for QuotaRecord {
    fn from(q: Quota) -> Self {
        Self {
            bytes: q.bytes,
            inodes: q.inodes,
        }
    }
}

/// What a create may ask for; what it leaves out is the worker's default.
pub use hearth_wire::sessions::QuotaRequest;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid quota: {0}")]
    InvalidQuota(String),
    #[error(
        "the worker's disk is nearly full ({free_mib} MiB free, floor {floor_mib} MiB): nothing \
         that writes starts until room is made"
    )]
    Full { free_mib: u64, floor_mib: u64 },
    #[error("session volume: {0}")]
    Volume(#[from] hearth_volume::VolumeError),
    #[error(
        "cannot make session volumes ({0}); quotas need root, loop devices and mkfs.ext4 \
         (e2fsprogs): run as root, or set `quota.enabled = false` to run without quotas"
    )]
    Unavailable(hearth_volume::VolumeError),
}

/// The worker's storage policy; see the module doc.
pub struct Storage {
    volumes: Option<Arc<Volumes>>,
    max: Quota,
    floor: Floor,
}

impl Storage {
    /// Starts the volume pool (when quotas are on) in `<data-dir>/volumes`.
    pub fn open(config: &QuotaConfig, data_dir: &Path) -> Result<Self, StorageError> {
        let volumes = if config.enabled {
            let made = Volumes::open(
                &data_dir.join("volumes"),
                config.default_quota(),
                &LAYOUT,
                config.warm_volumes,
            );
            Some(made.map_err(StorageError::Unavailable)?)
        } else {
            None
        };
        Ok(Self {
            volumes,
            max: config.max_quota(),
            floor: Floor {
                dir: data_dir.to_path_buf(),
                min_free: config.min_free_mib << 20,
            },
        })
    }

    pub fn floor(&self) -> Floor {
        self.floor.clone()
    }

    /// The quota a create gets: the request over the defaults, within the operator's maximum.
    /// `None` when quotas are off (then asking for one is an error, not silently ignored).
    pub fn quota_for(&self, request: Option<QuotaRequest>) -> Result<Option<Quota>, StorageError> {
        let Some(volumes) = &self.volumes else {
            return match request {
                Some(_) => Err(StorageError::InvalidQuota(
                    "quotas are off on this worker (quota.enabled = false)".into(),
                )),
                None => Ok(None),
            };
        };
        let default = volumes.default_quota();
        let request = request.unwrap_or_default();
        let quota = Quota {
            bytes: request.bytes.unwrap_or(default.bytes),
            inodes: request.inodes.unwrap_or(default.inodes),
        };
        if quota.bytes > self.max.bytes || quota.inodes > self.max.inodes {
            return Err(StorageError::InvalidQuota(format!(
                "at most {} bytes and {} inodes on this worker (quota.max_bytes_mib, \
                 quota.max_inodes)",
                self.max.bytes, self.max.inodes
            )));
        }
        quota.check().map_err(StorageError::InvalidQuota)?;
        Ok(Some(quota))
    }

    /// Makes the writable places of a new session in its directory `dir`: on a volume of
    /// `quota`, or plain directories. Returns the directory that holds them.
    pub fn place(&self, dir: &Path, quota: Option<Quota>) -> Result<PathBuf, StorageError> {
        match (quota, &self.volumes) {
            (Some(quota), Some(volumes)) => {
                volumes.attach(&dir.join(IMAGE), &dir.join(MOUNT), quota)?;
                Ok(dir.join(MOUNT))
            }
            _ => {
                for sub in LAYOUT {
                    std::fs::create_dir(dir.join(sub)).map_err(|error| {
                        hearth_volume::VolumeError::Io {
                            what: "creating",
                            path: dir.join(sub),
                            error,
                        }
                    })?;
                }
                Ok(dir.to_path_buf())
            }
        }
    }

    /// Finds the writable places of a session made earlier (mounting its volume again after
    /// a restart). A volume is mounted even with quotas off now: its files are there.
    pub fn reopen(dir: &Path, has_volume: bool) -> Result<PathBuf, StorageError> {
        if !has_volume {
            return Ok(dir.to_path_buf());
        }
        Volumes::mount_existing(&dir.join(IMAGE), &dir.join(MOUNT))?;
        Ok(dir.join(MOUNT))
    }

    /// Where a session's writable places are, without touching anything.
    pub fn base(dir: &Path, has_volume: bool) -> PathBuf {
        if has_volume {
            dir.join(MOUNT)
        } else {
            dir.to_path_buf()
        }
    }

    /// Takes a session's volume away before its directory is removed (the image is then an
    /// ordinary file). Nothing to do for a session without one.
    pub fn release(dir: &Path) {
        let base = dir.join(MOUNT);
        crate::scratch::release(&base.join("tmp"));
        hearth_volume::release(&base);
    }
}

impl Storage {
    /// Unmounts the volumes made ahead (a stopping worker's; the next start makes new ones).
    pub fn release_pool(&self) {
        if let Some(volumes) = &self.volumes {
            volumes.release_all();
        }
    }
}

/// The worker-wide floor of free space on the data dir's filesystem.
#[derive(Debug, Clone)]
pub struct Floor {
    dir: PathBuf,
    min_free: u64,
}

impl Floor {
    /// Refuses when the data dir's filesystem has less than the floor free. One `statvfs`.
    pub fn check(&self) -> Result<(), StorageError> {
        if self.min_free == 0 {
            return Ok(());
        }
        let Ok(stat) = nix::sys::statvfs::statvfs(&self.dir) else {
            return Ok(());
        };
        let free = stat.blocks_available() * stat.fragment_size();
        if free < self.min_free {
            return Err(StorageError::Full {
                free_mib: free >> 20,
                floor_mib: self.min_free >> 20,
            });
        }
        Ok(())
    }
}

/// A session's usage as answered (session info, quota errors).
pub fn quota_usage(usage: &Usage) -> hearth_wire::sessions::QuotaUsage {
    hearth_wire::sessions::QuotaUsage {
        bytes_used: usage.bytes_used,
        bytes_limit: usage.bytes_limit,
        inodes_used: usage.inodes_used,
        inodes_limit: usage.inodes_limit,
    }
}
