//! cgroup v1: the `memory` and `pids` controllers each have a hierarchy of their own
//! (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/pids`), so a run's group is two directories of the
//! same name, and the helper joins both.

use std::fs;
use std::path::{Path, PathBuf};

use super::{PARENT, counter, kill_listed, unique_name, write};

/// Hearth's parent group in the memory and pids hierarchies.
#[derive(Debug, Clone)]
pub struct V1 {
    memory: PathBuf,
    pids: PathBuf,
}

impl V1 {
    /// The hierarchies under `mount`, when both are there. Nothing is created yet: the parent
    /// groups are made with the first run's (as they always were), so a host that forbids it
    /// says so on that run.
    pub fn open(mount: &Path) -> Result<Self, String> {
        let missing: Vec<&str> = ["memory", "pids"]
            .into_iter()
            .filter(|controller| !mount.join(controller).join("cgroup.procs").is_file())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "no {} hierarchy under {}",
                missing.join(" or "),
                mount.display()
            ));
        }
        Ok(Self {
            memory: mount.join("memory").join(PARENT),
            pids: mount.join("pids").join(PARENT),
        })
    }

    /// Hearth's parent groups, where [`super::sweep`] looks for orphans.
    pub fn parents(&self) -> [&Path; 2] {
        [&self.memory, &self.pids]
    }

    /// A group in each hierarchy, without limits.
    pub fn create(&self) -> Result<Group, String> {
        let name = unique_name();
        let group = Group {
            memory: self.memory.join(&name),
            pids: self.pids.join(&name),
        };
        for dir in [&group.memory, &group.pids] {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        Ok(group)
    }
}

/// A run's group: the same name in both hierarchies.
#[derive(Debug)]
pub struct Group {
    memory: PathBuf,
    pids: PathBuf,
}

impl Group {
    pub fn limit(&self, memory_bytes: u64, max_processes: u64) -> Result<(), String> {
        let bytes = memory_bytes.to_string();
        write(&self.memory, "memory.limit_in_bytes", &bytes)?;
        // No swap either, where the kernel accounts it (absent when swap accounting is off):
        // memory and swap together may not exceed the memory limit.
        let _ = write(&self.memory, "memory.memsw.limit_in_bytes", &bytes);
        write(&self.pids, "pids.max", &max_processes.to_string())
    }

    pub fn procs_files(&self) -> Vec<PathBuf> {
        vec![
            self.memory.join("cgroup.procs"),
            self.pids.join("cgroup.procs"),
        ]
    }

    /// `oom_kill N` in `memory.oom_control` (kernels since 4.13).
    pub fn oom_killed(&self) -> bool {
        fs::read_to_string(self.memory.join("memory.oom_control"))
            .ok()
            .and_then(|text| counter(&text, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// v1 has no kill switch: the processes the pids group lists are killed one by one.
    pub fn kill_all(&self) {
        kill_listed(&self.pids.join("cgroup.procs"));
    }

    pub fn dirs(&self) -> Vec<&Path> {
        vec![&self.memory, &self.pids]
    }
}
