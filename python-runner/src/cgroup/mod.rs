//! A cgroup per run: the memory limit that catches a memory bomb, the process limit that catches
//! a fork bomb (uid 0 in the jail is not bound by `RLIMIT_NPROC`), a way to kill every process
//! of the run, and OOM detection.
//!
//! Two kernel interfaces give these, and a host has one of them where it matters: cgroup v1
//! (separate `memory` and `pids` hierarchies, as these machines mount them; see [`v1`]) and
//! cgroup v2 (one unified hierarchy, as Kubernetes nodes and current distributions have; see
//! [`v2`]). Which one is found once per process ([`host`]), so every run of a worker uses the
//! same kind of group and a host without either says why once, the same way, on every run.
//! [`RunCgroup`] hides the difference from the runner and the jail: both only create a group,
//! limit it, hand its `cgroup.procs` files to the helper, read OOM kills and kill what is left.

mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the cgroup filesystem (v2) or the v1 hierarchies are mounted.
const MOUNT: &str = "/sys/fs/cgroup";
/// Where a process reads its own cgroups.
const SELF_CGROUP: &str = "/proc/self/cgroup";
/// Hearth's parent group: in each v1 hierarchy, and under the worker's own group on v2.
const PARENT: &str = "hearth";

/// Where to look for cgroups: the mount point, and the file that says which group this process
/// is in (v2 puts Hearth's groups beneath it). Both are paths so that tests can point them at a
/// fake tree instead of the host's.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    mount: PathBuf,
    self_cgroup: PathBuf,
}

impl CgroupRoot {
    pub fn new(mount: impl Into<PathBuf>, self_cgroup: impl Into<PathBuf>) -> Self {
        Self {
            mount: mount.into(),
            self_cgroup: self_cgroup.into(),
        }
    }

    /// The host's: `/sys/fs/cgroup` and `/proc/self/cgroup`.
    pub fn host() -> Self {
        Self::new(MOUNT, SELF_CGROUP)
    }

    /// Finds which hierarchy to use and makes it ready for runs (on v2 that means delegating
    /// the controllers to Hearth's parent group, see [`v2`]). v2 is chosen when the mount is a
    /// cgroup2 filesystem, else v1 when its memory and pids hierarchies exist. `Err` says why
    /// runs get no cgroups here.
    pub fn detect(&self) -> Result<Hierarchy, String> {
        if v2::is_cgroup2(&self.mount) {
            return v2::V2::open(&self.mount, &self.self_cgroup)
                .map(Hierarchy::V2)
                .map_err(|why| format!("cgroup v2: {why}"));
        }
        v1::V1::open(&self.mount).map(Hierarchy::V1).map_err(|why| {
            format!(
                "{} is not a cgroup2 mount, and cgroup v1: {why}",
                self.mount.display()
            )
        })
    }
}

/// The hierarchy runs' groups are made in.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    V1(v1::V1),
    V2(v2::V2),
}

impl Hierarchy {
    /// A new, empty group for one run (see [`RunCgroup::create`]).
    pub fn create(&self) -> Result<RunCgroup, String> {
        match self {
            Self::V1(h) => h.create().map(RunCgroup::V1),
            Self::V2(h) => h.create().map(RunCgroup::V2),
        }
    }

    /// Removes the groups of processes that are gone (see [`sweep_orphans`]).
    pub fn sweep_orphans(&self) {
        match self {
            Self::V1(h) => h.parents().iter().for_each(|p| sweep(p)),
            Self::V2(h) => sweep(h.parent()),
        }
    }
}

/// This host's hierarchy, found on first use and kept for the life of the process: detection
/// on v2 moves the worker into a leaf group (see [`v2`]), which must happen once, before any
/// run, and not race a second attempt.
pub fn host() -> Result<&'static Hierarchy, &'static str> {
    static HOST: OnceLock<Result<Hierarchy, String>> = OnceLock::new();
    HOST.get_or_init(|| CgroupRoot::host().detect())
        .as_ref()
        .map_err(String::as_str)
}

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
const ORPHAN_AGE: Duration = Duration::from_secs(60);

/// Removes the groups of processes that are gone: a helper waiting for a run exits when its
/// worker does, but nobody is left to remove its (empty) groups. Named `run-<pid>-…`, they are
/// recognisable; a group of a live pid, or with processes in it, is left alone.
pub fn sweep_orphans() {
    if let Ok(hierarchy) = host() {
        hierarchy.sweep_orphans();
    }
}

/// [`sweep_orphans`] in one parent group.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
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

/// Writes one control file, with an error that names it.
fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    fs::write(dir.join(file), value).map_err(|e| format!("writing {}/{file}: {e}", dir.display()))
}

/// The value of `key` in a flat-keyed file such as v2's `memory.events` or v1's
/// `memory.oom_control` (`key N` lines).
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        if name != key {
            return None;
        }
        value.trim().parse().ok()
    })
}

/// SIGKILLs every process a `cgroup.procs` file lists, until it lists none (a process may fork
/// between the read and the kill, so one pass is not enough), for at most ten passes.
fn kill_listed(procs: &Path) {
    for _ in 0..10 {
        let Ok(text) = fs::read_to_string(procs) else {
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
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The run's cgroup (one per v1 controller, or the one v2 group); killed and removed on drop.
#[derive(Debug)]
pub enum RunCgroup {
    V1(v1::Group),
    V2(v2::Group),
}

impl RunCgroup {
    /// Creates the run's group in this host's hierarchy, without limits yet: a warm jail
    /// joins it long before its run's limits are known (see [`RunCgroup::limit`]).
    /// `Err` says why cgroups are unavailable on this machine.
    pub fn create() -> Result<Self, String> {
        host().map_err(str::to_owned)?.create()
    }

    /// Sets the run's limits. Cheap (a few writes), so it happens when the run starts.
    pub fn limit(&self, memory_bytes: u64, max_processes: u64) -> Result<(), String> {
        match self {
            Self::V1(g) => g.limit(memory_bytes, max_processes),
            Self::V2(g) => g.limit(memory_bytes, max_processes),
        }
    }

    /// The `cgroup.procs` files the jail helper joins.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            Self::V1(g) => g.procs_files(),
            Self::V2(g) => g.procs_files(),
        }
    }

    /// Whether the kernel's OOM killer acted in this group.
    pub fn oom_killed(&self) -> bool {
        match self {
            Self::V1(g) => g.oom_killed(),
            Self::V2(g) => g.oom_killed(),
        }
    }

    /// SIGKILLs every process still in the group.
    pub fn kill_all(&self) {
        match self {
            Self::V1(g) => g.kill_all(),
            Self::V2(g) => g.kill_all(),
        }
    }

    /// The group's directories, removed once it is empty.
    fn dirs(&self) -> Vec<&Path> {
        match self {
            Self::V1(g) => g.dirs(),
            Self::V2(g) => g.dirs(),
        }
    }

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
        for dir in self.dirs() {
            // A group can be removed once empty; the processes were just killed.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
