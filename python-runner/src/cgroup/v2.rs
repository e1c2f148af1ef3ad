//! cgroup v2: one unified hierarchy, a run's group is one directory with every controller's
//! files in it.
//!
//! Groups go beneath the worker's own cgroup (the `0::` line of `/proc/self/cgroup`): that is
//! the subtree delegated to it (a container's cgroup on Kubernetes, a `Delegate=yes` unit under
//! systemd), and everything a run uses stays charged to the worker's own limits. When the
//! worker sits in the root cgroup, that is `/sys/fs/cgroup/hearth`. Under systemd the unit needs
//! `Delegate=yes`: otherwise systemd owns the unit's group and may rewrite what is set below.
//!
//! v2 hands a controller to a group's children only when the group enables it in its
//! `cgroup.subtree_control`, and (its "no internal processes" rule) only when the group has no
//! processes of its own, the root excepted (not the root of a cgroup namespace, which is what a
//! container sees as `/`). The worker's group has at least one: the worker. So
//! before enabling `memory` and `pids` there, the worker moves the group's processes into a
//! leaf beside Hearth's parent, [`LEAF`], the way container runtimes nested in a container do
//! (e.g. Docker-in-Docker's entrypoint). The leaf is inside the same group, so those processes
//! stay under the same limits and accounting. The tree then is:
//!
//! ```text
//! <worker's group>/              subtree_control: +memory +pids, no processes
//!   hearth-worker/               the worker (and whatever shared its group)
//!   hearth/                      subtree_control: +memory +pids
//!     run-<pid>-<n>-<nanos>/     memory.max, memory.swap.max, pids.max; the run's processes
//! ```

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::{PARENT, counter, kill_listed, unique_name, write};

/// The controllers a run's group needs.
pub const CONTROLLERS: [&str; 2] = ["memory", "pids"];
/// The leaf the worker's group's own processes move into (see the module's documentation).
pub const LEAF: &str = "hearth-worker";
/// How many times processes are moved out of a group before giving up on enabling its
/// controllers: a process the worker starts meanwhile lands in the group again (its parent
/// was still there), and the kernel refuses the write with `EBUSY`.
const EVACUATION_TRIES: usize = 3;

/// Whether `mount` is a cgroup2 filesystem. Its magic number says so on a real host; a fake tree
/// in a test says so with a `cgroup.controllers` file, which every v2 group has and neither a
/// v1 hierarchy nor the tmpfs holding v1 mounts does.
pub fn is_cgroup2(mount: &Path) -> bool {
    nix::sys::statfs::statfs(mount)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        || mount.join("cgroup.controllers").is_file()
}

/// The worker's own v2 group, relative to the mount, from the text of `/proc/self/cgroup`.
pub fn own_group(proc_self_cgroup: &str) -> Result<PathBuf, String> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("the worker's cgroup has no v2 line (`0::…`)")?;
    let mut relative = PathBuf::new();
    for component in Path::new(path.trim()).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => relative.push(name),
            // A group outside the worker's cgroup namespace shows as `/../…`: not reachable
            // through the mount the worker sees.
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "the worker's cgroup {path} lies outside its cgroup namespace"
                ));
            }
        }
    }
    Ok(relative)
}

/// The controllers a space-separated list (`cgroup.controllers`, `cgroup.subtree_control`)
/// names.
fn listed(file: &Path) -> Result<Vec<String>, String> {
    fs::read_to_string(file)
        .map(|text| text.split_whitespace().map(str::to_owned).collect())
        .map_err(|e| format!("reading {}: {e}", file.display()))
}

/// Whether `group` is the hierarchy's root, the one group allowed both processes and enabled
/// controllers. The kernel gives every group but the root a `cgroup.type` file (the root of a
/// cgroup namespace is not the root, and has one).
fn is_root(group: &Path) -> bool {
    !group.join("cgroup.type").exists()
}

/// Moves every process of `group` into its [`LEAF`], so that the group may enable controllers.
fn evacuate(group: &Path) -> Result<(), String> {
    let leaf = group.join(LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("creating {}: {e}", leaf.display())),
    }
    let procs = group.join("cgroup.procs");
    let text =
        fs::read_to_string(&procs).map_err(|e| format!("reading {}: {e}", procs.display()))?;
    for pid in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match fs::write(leaf.join("cgroup.procs"), pid) {
            Ok(()) => {}
            // Gone since the read.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => {
                return Err(format!(
                    "moving process {pid} out of {} into {} (a group that hands controllers \
                     to its children may have no processes of its own): {e}",
                    group.display(),
                    leaf.display()
                ));
            }
        }
    }
    Ok(())
}

/// Enables `controllers` for `group`'s children. With `may_evacuate`, the group's own processes
/// are first moved into its [`LEAF`] (see the module's documentation); without, a group with
/// processes is an error.
fn enable(group: &Path, controllers: &[&str], may_evacuate: bool) -> Result<(), String> {
    let control = group.join("cgroup.subtree_control");
    let enabled = listed(&control)?;
    if controllers.iter().all(|c| enabled.iter().any(|e| e == c)) {
        // Already delegated (by an earlier worker, or by whoever set the host up): nothing to
        // write, which also spares a worker without write access to the file.
        return Ok(());
    }
    let has_processes = fs::read_to_string(group.join("cgroup.procs"))
        .is_ok_and(|text| text.lines().any(|l| !l.trim().is_empty()));
    if may_evacuate && has_processes && !is_root(group) {
        evacuate(group)?;
    }
    let request = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut tries = 0;
    loop {
        let error = match fs::write(&control, &request) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if error.raw_os_error() == Some(libc::EBUSY) {
            if may_evacuate && tries < EVACUATION_TRIES {
                tries += 1;
                evacuate(group)?;
                continue;
            }
            return Err(format!(
                "writing `{request}` to {}: {error}: {} has processes of its own, and cgroup v2 \
                 hands no controller to the children of a group with processes",
                control.display(),
                group.display()
            ));
        }
        return Err(format!(
            "writing `{request}` to {}: {error}",
            control.display()
        ));
    }
}

/// Hearth's parent group, with `memory` and `pids` delegated to its children.
#[derive(Debug, Clone)]
pub struct V2 {
    parent: PathBuf,
}

impl V2 {
    /// Finds the worker's group under `mount` (through `self_cgroup`, i.e. `/proc/self/cgroup`)
    /// and prepares Hearth's parent group beneath it: this moves the worker into [`LEAF`] the
    /// first time (see the module's documentation).
    pub fn open(mount: &Path, self_cgroup: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(self_cgroup)
            .map_err(|e| format!("reading {}: {e}", self_cgroup.display()))?;
        let mut own = own_group(&text)?;
        // A worker started by an earlier one (or a restart in the same group) already sits in
        // the leaf: the group to delegate from is the one above it, not a new level per start.
        if own.file_name().is_some_and(|name| name == LEAF) {
            own.pop();
        }
        Self::open_under(&mount.join(own))
    }

    /// Prepares Hearth's parent group under `base`, the group delegated to the worker.
    pub fn open_under(base: &Path) -> Result<Self, String> {
        let offered = listed(&base.join("cgroup.controllers"))?;
        let missing: Vec<&str> = CONTROLLERS
            .into_iter()
            .filter(|c| !offered.iter().any(|o| o == c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "controllers missing from the worker's cgroup {}: {} (it has: {}); memory and \
                 pids must be delegated to it",
                base.display(),
                missing.join(", "),
                if offered.is_empty() {
                    "no controller".to_owned()
                } else {
                    offered.join(" ")
                }
            ));
        }
        enable(base, &CONTROLLERS, true)?;
        let parent = base.join(PARENT);
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("creating {}: {e}", parent.display())),
        }
        // Nothing but runs' groups belongs in it: processes there are someone else's mistake,
        // not the worker's to move.
        enable(&parent, &CONTROLLERS, false)?;
        Ok(Self { parent })
    }

    /// A parent group made by a test, with nothing delegated: on a hierarchy without memory
    /// and pids (the hybrid one beside v1) the rest of a group's life can still be tested.
    #[cfg(test)]
    pub fn for_test(parent: PathBuf) -> Self {
        Self { parent }
    }

    /// Hearth's parent group, where [`super::sweep`] looks for orphans.
    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// A group for one run, without limits.
    pub fn create(&self) -> Result<Group, String> {
        let dir = self.parent.join(unique_name());
        fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Group { dir })
    }
}

/// A run's group.
#[derive(Debug)]
pub struct Group {
    dir: PathBuf,
}

impl Group {
    pub fn limit(&self, memory_bytes: u64, max_processes: u64) -> Result<(), String> {
        write(&self.dir, "memory.max", &memory_bytes.to_string())?;
        // v2 limits swap on its own (v1 limited memory and swap together): none at all, as on
        // v1. Absent when the kernel does not account swap; there is no swap to limit then.
        if self.dir.join("memory.swap.max").exists() {
            write(&self.dir, "memory.swap.max", "0")?;
        }
        write(&self.dir, "pids.max", &max_processes.to_string())
    }

    pub fn procs_files(&self) -> Vec<PathBuf> {
        vec![self.dir.join("cgroup.procs")]
    }

    /// `oom_kill N` in `memory.events`. A run's group has no children, so the count (which
    /// includes descendants) is the run's own.
    pub fn oom_killed(&self) -> bool {
        fs::read_to_string(self.dir.join("memory.events"))
            .ok()
            .and_then(|text| counter(&text, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// Writes `1` to `cgroup.kill` (kernels since 5.14), which SIGKILLs every process of the
    /// group at once, forks racing with it included. `false` when the kernel has no such file.
    pub fn kill_switch(&self) -> bool {
        let file = self.dir.join("cgroup.kill");
        // Checked first: writing a file that is not there would create it in a test's tree.
        file.is_file() && fs::write(file, "1").is_ok()
    }

    /// The kill switch where there is one; then (or else) the processes still listed one by
    /// one, which also waits until the group is empty, as on v1.
    pub fn kill_all(&self) {
        self.kill_switch();
        kill_listed(&self.dir.join("cgroup.procs"));
    }

    pub fn dirs(&self) -> Vec<&Path> {
        vec![&self.dir]
    }
}
