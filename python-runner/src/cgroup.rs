//! A cgroup (v1 memory and pids controllers, as these machines have) per run: the memory limit
//! that catches a memory bomb, the process limit that catches a fork bomb (uid 0 in the jail is
//! not bound by `RLIMIT_NPROC`), a way to kill every process of the run, and OOM detection.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the v1 hierarchies are mounted.
const V1_ROOT: &str = "/sys/fs/cgroup";
/// Hearth's parent group in each hierarchy.
const PARENT: &str = "hearth";

/// A name no other group on this host has: cgroups are host-wide, and two workers (or two test
/// processes) sharing one would kill each other's runs on clean-up. The pid is unique among
/// live processes, the counter within this one, and the clock guards against a reused pid
/// finding a group a dead process left behind.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "run-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// How old an empty group of a dead process must be before [`sweep_orphans`] removes it.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the groups of processes that are gone: a helper waiting for a run exits when its
/// worker does, but nobody is left to remove its (empty) groups. Named `run-<pid>-…`, they are
/// recognisable; a group of a live pid, or with processes in it, is left alone.
pub fn sweep_orphans() {
    for controller in ["memory", "pids"] {
        let Ok(entries) = fs::read_dir(Path::new(V1_ROOT).join(controller).join(PARENT)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix("run-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            // A young group may belong to a worker in another pid namespace, whose pids mean
            // nothing here, and be about to be joined: only old ones are orphans.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= ORPHAN_AGE));
            if old && owner.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()) {
                // Fails, harmlessly, when the group still has processes.
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// The run's cgroup in each controller; removed on drop.
#[derive(Debug)]
pub struct RunCgroup {
    memory: PathBuf,
    pids: PathBuf,
}

impl RunCgroup {
    /// Creates a group in the memory and pids hierarchies, without limits yet: a warm jail
    /// joins it long before its run's limits are known (see [`RunCgroup::limit`]).
    /// `Err` says why cgroups are unavailable on this machine.
    pub fn create() -> Result<Self, String> {
        let name = unique_name();
        let memory = Path::new(V1_ROOT).join("memory").join(PARENT).join(&name);
        let pids = Path::new(V1_ROOT).join("pids").join(PARENT).join(&name);
        for dir in [&memory, &pids] {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        Ok(Self { memory, pids })
    }

    /// Sets the run's limits. Cheap (three writes), so it happens when the run starts.
    pub fn limit(&self, memory_bytes: u64, max_processes: u64) -> Result<(), String> {
        let write = |dir: &Path, file: &str, value: String| {
            fs::write(dir.join(file), value)
                .map_err(|e| format!("writing {}/{file}: {e}", dir.display()))
        };
        write(
            &self.memory,
            "memory.limit_in_bytes",
            memory_bytes.to_string(),
        )?;
        // No swap either, where the kernel accounts it (absent when swap accounting is off).
        let _ = write(
            &self.memory,
            "memory.memsw.limit_in_bytes",
            memory_bytes.to_string(),
        );
        write(&self.pids, "pids.max", max_processes.to_string())
    }

    /// The `cgroup.procs` files the jail helper joins.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        vec![
            self.memory.join("cgroup.procs"),
            self.pids.join("cgroup.procs"),
        ]
    }

    /// Whether the kernel's OOM killer acted in this group.
    pub fn oom_killed(&self) -> bool {
        fs::read_to_string(self.memory.join("memory.oom_control"))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
            })
            .is_some_and(|n| n > 0)
    }

    /// SIGKILLs every process still in the group.
    pub fn kill_all(&self) {
        for _ in 0..10 {
            let Ok(text) = fs::read_to_string(self.pids.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

impl RunCgroup {
    /// Kills what is left and removes the groups on a background thread: the kernel takes a
    /// moment to empty a group after its processes die, and the caller need not wait for it.
    pub fn release_in_background(self) {
        // If no thread can be started, the closure (and with it the group) is dropped right
        // here, which cleans up synchronously instead.
        let _ = std::thread::Builder::new()
            .name("hearth-cgroup-gc".into())
            .spawn(move || drop(self));
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in [&self.memory, &self.pids] {
            // A group can be removed once empty; the processes were just killed.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
