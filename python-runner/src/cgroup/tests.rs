//! The cgroup logic against fake trees laid out like the kernel's, and (where the host mounts
//! a cgroup2 hierarchy beside its v1 ones) the v2 group's join, kill and removal on the real
//! kernel. The v1 path on the real kernel is covered by the runner's tests (`tests/`).
//!
//! A fake tree is plain files: nothing moves a process, enforces a limit or fills a new
//! group's directory. Each test lays out what the kernel would show at that point.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use super::v2::{self, LEAF};
use super::{CgroupRoot, Hierarchy, PARENT, RunCgroup, counter, unique_name};

/// A pid no process can have (above the kernel's largest `pid_max`): a fake `cgroup.procs`
/// lists it, so that a kill the code under test sends cannot reach a real process.
const NO_PID: &str = "2147480000";

fn put(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A group's interface files, as the kernel shows them in a new v2 group (the root has no
/// `cgroup.type`, so it is laid out by hand).
fn v2_group(dir: &Path, controllers: &str, procs: &str) {
    put(&dir.join("cgroup.controllers"), controllers);
    put(&dir.join("cgroup.subtree_control"), "");
    put(&dir.join("cgroup.procs"), procs);
    put(&dir.join("cgroup.type"), "domain\n");
}

/// A cgroup2 mount in a tempdir: the root offering `cpu io memory pids`, the worker in
/// `own` (relative; empty for the root) with `procs` in it, and `/proc/self/cgroup` saying so.
fn v2_tree(own: &str, own_controllers: &str, procs: &str) -> (tempfile::TempDir, CgroupRoot) {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("cgroup");
    put(
        &mount.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    put(&mount.join("cgroup.subtree_control"), "");
    put(&mount.join("cgroup.procs"), "");
    if own.is_empty() {
        put(&mount.join("cgroup.procs"), procs);
    } else {
        v2_group(&mount.join(own), own_controllers, procs);
    }
    // Hearth's parent as the kernel fills it once made: a fake mkdir makes no files.
    v2_group(&mount.join(own).join(PARENT), "memory pids\n", "");
    let self_cgroup = tmp.path().join("self-cgroup");
    put(&self_cgroup, &format!("0::/{own}\n"));
    let root = CgroupRoot::new(mount, self_cgroup);
    (tmp, root)
}

fn v2_parent(hierarchy: &Hierarchy) -> PathBuf {
    match hierarchy {
        Hierarchy::V2(h) => h.parent().to_owned(),
        Hierarchy::V1(_) => panic!("v1 detected on a cgroup2 tree"),
    }
}

#[test]
fn the_workers_group_is_read_from_proc_self_cgroup() {
    // This machine's kind: v1 hierarchies and the v2 line of a hybrid mount.
    let hybrid = "4:memory:/process_api/x\n8:pids:/\n0::/\n";
    assert_eq!(v2::own_group(hybrid).unwrap(), PathBuf::new());
    let kubernetes = "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-2f.scope\n";
    assert_eq!(
        v2::own_group(kubernetes).unwrap(),
        Path::new("kubepods.slice/kubepods-pod1.slice/cri-containerd-2f.scope")
    );
    let outside = v2::own_group("0::/../sibling\n").unwrap_err();
    assert!(
        outside.contains("outside its cgroup namespace"),
        "{outside}"
    );
    let v1_only = v2::own_group("4:memory:/a\n").unwrap_err();
    assert!(v1_only.contains("no v2 line"), "{v1_only}");
}

#[test]
fn v2_delegates_beneath_the_workers_group_and_moves_the_worker_into_a_leaf() {
    let own = "kubepods/pod1/ctr";
    let (_tmp, root) = v2_tree(own, "cpu memory pids\n", &format!("{NO_PID}\n"));
    let base = root.mount.join(own);
    let hierarchy = root.detect().unwrap();
    assert_eq!(v2_parent(&hierarchy), base.join("hearth"));
    // The worker's group had a process: it was moved to the leaf before enabling controllers.
    assert_eq!(read(&base.join(LEAF).join("cgroup.procs")), NO_PID);
    assert_eq!(read(&base.join("cgroup.subtree_control")), "+memory +pids");
    assert_eq!(
        read(&base.join("hearth").join("cgroup.subtree_control")),
        "+memory +pids"
    );
}

#[test]
fn in_the_root_group_nothing_is_moved() {
    // The root may both hold processes and hand controllers down.
    let (_tmp, root) = v2_tree("", "", &format!("{NO_PID}\n"));
    let hierarchy = root.detect().unwrap();
    assert_eq!(v2_parent(&hierarchy), root.mount.join("hearth"));
    assert!(!root.mount.join(LEAF).exists());
    assert_eq!(
        read(&root.mount.join("cgroup.subtree_control")),
        "+memory +pids"
    );
}

#[test]
fn a_group_already_delegated_is_not_written() {
    let own = "system.slice/hearth.service";
    let (_tmp, root) = v2_tree(own, "memory pids\n", "");
    let base = root.mount.join(own);
    put(&base.join("cgroup.subtree_control"), "memory pids\n");
    put(
        &base.join(PARENT).join("cgroup.subtree_control"),
        "pids memory\n",
    );
    root.detect().unwrap();
    assert_eq!(read(&base.join("cgroup.subtree_control")), "memory pids\n");
    assert!(!base.join(LEAF).exists());
}

#[test]
fn a_worker_already_in_the_leaf_delegates_from_the_group_above() {
    let (_tmp, root) = v2_tree("ctr", "memory pids\n", "");
    v2_group(
        &root.mount.join("ctr").join(LEAF),
        "",
        &format!("{NO_PID}\n"),
    );
    put(&root.self_cgroup, &format!("0::/ctr/{LEAF}\n"));
    let hierarchy = root.detect().unwrap();
    assert_eq!(v2_parent(&hierarchy), root.mount.join("ctr/hearth"));
    assert!(!root.mount.join("ctr").join(LEAF).join(LEAF).exists());
}

#[test]
fn v2_without_memory_or_pids_is_unavailable_with_the_reason() {
    let (_tmp, root) = v2_tree("ctr", "cpu io\n", "");
    let why = root.detect().unwrap_err();
    assert!(
        why.starts_with("cgroup v2: ") && why.contains("memory, pids") && why.contains("cpu io"),
        "{why}"
    );
    // Nothing was changed on the way.
    assert_eq!(read(&root.mount.join("ctr/cgroup.subtree_control")), "");
}

#[test]
fn processes_in_hearths_parent_group_are_not_moved() {
    let (_tmp, root) = v2_tree("ctr", "memory pids\n", "");
    let parent = root.mount.join("ctr").join(PARENT);
    put(&parent.join("cgroup.procs"), &format!("{NO_PID}\n"));
    // The fake cannot refuse the write with EBUSY as the kernel would; it can show that the
    // processes were left where they were.
    root.detect().unwrap();
    assert!(!parent.join(LEAF).exists());
}

#[test]
fn v1_is_used_when_its_hierarchies_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path();
    put(&mount.join("memory/cgroup.procs"), "");
    put(&mount.join("pids/cgroup.procs"), "");
    let root = CgroupRoot::new(mount, mount.join("no-such-file"));
    let Hierarchy::V1(v1) = root.detect().unwrap() else {
        panic!("v2 detected on a v1 tree");
    };
    let group = v1.create().unwrap();
    let run = RunCgroup::V1(group);
    let files = run.procs_files();
    assert_eq!(files.len(), 2);
    assert!(
        files[0].starts_with(mount.join("memory/hearth")),
        "{files:?}"
    );
    assert!(files[1].starts_with(mount.join("pids/hearth")), "{files:?}");
    run.limit(64 << 20, 32).unwrap();
    let memory = files[0].parent().unwrap();
    let pids = files[1].parent().unwrap();
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(&pids.join("pids.max")), "32");
    assert!(!run.oom_killed());
    put(
        &memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    assert!(run.oom_killed());
    empty(memory);
    empty(pids);
    drop(run);
    assert!(!memory.exists() && !pids.exists());
}

#[test]
fn neither_hierarchy_is_unavailable_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    put(&tmp.path().join("memory/cgroup.procs"), "");
    let root = CgroupRoot::new(tmp.path(), tmp.path().join("no-such-file"));
    let why = root.detect().unwrap_err();
    assert!(
        why.contains("is not a cgroup2 mount") && why.contains("no pids hierarchy"),
        "{why}"
    );
}

/// A run's group made in a fake v2 tree.
fn v2_run() -> (tempfile::TempDir, RunCgroup, PathBuf) {
    let (tmp, root) = v2_tree("ctr", "memory pids\n", "");
    let run = root.detect().unwrap().create().unwrap();
    let dir = run.procs_files()[0].parent().unwrap().to_owned();
    (tmp, run, dir)
}

/// What the kernel does as a group empties: a fake group's files would keep `rmdir` out.
fn empty(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

#[test]
fn a_v2_run_group_is_one_uniquely_named_directory_under_hearth() {
    let (_tmp, run, dir) = v2_run();
    assert_eq!(run.procs_files(), vec![dir.join("cgroup.procs")]);
    assert_eq!(dir.parent().unwrap().file_name().unwrap(), PARENT);
    let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let parts: Vec<&str> = name.split('-').collect();
    assert_eq!(parts.len(), 4, "{name}");
    assert_eq!(parts[0], "run");
    assert_eq!(parts[1], std::process::id().to_string());
    assert!(parts[2].parse::<u64>().is_ok() && parts[3].parse::<u128>().is_ok());
    assert_ne!(unique_name(), unique_name());
    drop(run);
    assert!(!dir.exists());
}

#[test]
fn v2_limits_are_written_and_swap_is_refused_where_it_is_accounted() {
    let (_tmp, run, dir) = v2_run();
    run.limit(256 << 20, 64).unwrap();
    assert_eq!(read(&dir.join("memory.max")), "268435456");
    assert_eq!(read(&dir.join("pids.max")), "64");
    assert!(!dir.join("memory.swap.max").exists());
    put(&dir.join("memory.swap.max"), "max\n");
    run.limit(1 << 20, 8).unwrap();
    assert_eq!(read(&dir.join("memory.swap.max")), "0");
    assert_eq!(read(&dir.join("memory.max")), "1048576");
    empty(&dir);
}

#[test]
fn v2_oom_kills_are_read_from_memory_events() {
    let (_tmp, run, dir) = v2_run();
    assert!(!run.oom_killed());
    put(
        &dir.join("memory.events"),
        "low 0\nhigh 0\nmax 14\noom 1\noom_kill 0\noom_group_kill 0\n",
    );
    assert!(!run.oom_killed());
    put(
        &dir.join("memory.events"),
        "low 0\nhigh 0\nmax 31\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    assert!(run.oom_killed());
    assert_eq!(
        counter("oom_kill_disable 0\noom_kill 3\n", "oom_kill"),
        Some(3)
    );
    empty(&dir);
}

#[test]
fn v2_kills_through_cgroup_kill_when_the_kernel_has_it() {
    let (_tmp, run, dir) = v2_run();
    put(&dir.join("cgroup.kill"), "");
    put(&dir.join("cgroup.procs"), &format!("{NO_PID}\n"));
    run.kill_all();
    assert_eq!(read(&dir.join("cgroup.kill")), "1");
    empty(&dir);
}

fn sleeper() -> Child {
    Command::new("sleep").arg("30").spawn().unwrap()
}

fn killed(mut child: Child) -> bool {
    child.wait().unwrap().signal() == Some(libc::SIGKILL)
}

#[test]
fn without_cgroup_kill_every_listed_process_is_killed() {
    let (_tmp, run, dir) = v2_run();
    let child = sleeper();
    put(&dir.join("cgroup.procs"), &format!("{}\n", child.id()));
    run.kill_all();
    assert!(killed(child));
    // The kill switch was not made up where the kernel has none.
    assert!(!dir.join("cgroup.kill").exists());
    empty(&dir);
}

#[test]
fn only_old_groups_of_dead_processes_are_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path();
    let old = SystemTime::now() - Duration::from_secs(3600);
    let make = |name: &str, modified: SystemTime| {
        let dir = parent.join(name);
        fs::create_dir(&dir).unwrap();
        fs::File::open(&dir)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        dir
    };
    let orphan = make(&format!("run-{NO_PID}-0-1"), old);
    let mine = make(&format!("run-{}-0-1", std::process::id()), old);
    let young = make(&format!("run-{NO_PID}-1-2"), SystemTime::now());
    let other = make("someone-elses", old);
    super::sweep(parent);
    assert!(!orphan.exists());
    assert!(mine.exists() && young.exists() && other.exists());
}

/// A cgroup2 hierarchy on this host to make real groups in, when there is one beside the v1
/// hierarchies (a hybrid mount) and this process may write it. A v2-only host is not used:
/// the runner's own tests exercise it there, and this test should not make groups in the
/// middle of the host's tree.
fn hybrid_cgroup2() -> Option<PathBuf> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let is_cgroup2 = nix::sys::statfs::statfs(unified)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let writable = nix::unistd::access(unified, nix::unistd::AccessFlags::W_OK).is_ok();
    (is_cgroup2 && writable).then(|| unified.to_owned())
}

#[test]
fn on_a_real_cgroup2_a_group_is_joined_killed_by_its_switch_and_removed() {
    let Some(unified) = hybrid_cgroup2() else {
        eprintln!("skipped: no writable cgroup2 hierarchy beside v1 here");
        return;
    };
    // The hybrid hierarchy has no memory or pids controller, so Hearth's parent is made by
    // hand (no subtree_control to write) and no limit can be set: what is tested is the rest.
    let parent = unified.join(format!("hearth-test-{}", unique_name()));
    fs::create_dir(&parent).unwrap();
    let hierarchy = v2::V2::for_test(parent.clone());
    let run = RunCgroup::V2(hierarchy.create().unwrap());
    let dir = run.procs_files()[0].parent().unwrap().to_owned();
    let children = [sleeper(), sleeper()];
    for child in &children {
        fs::write(&run.procs_files()[0], child.id().to_string()).unwrap();
    }
    let listed = read(&run.procs_files()[0]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let relative = dir.strip_prefix(&unified).unwrap();
    let seen = read(Path::new(&format!("/proc/{}/cgroup", children[0].id())));
    assert!(
        seen.contains(&format!("0::/{}\n", relative.display())),
        "{seen}"
    );
    let RunCgroup::V2(group) = &run else {
        unreachable!()
    };
    assert!(group.kill_switch(), "this kernel has cgroup.kill");
    for child in children {
        assert!(killed(child));
    }
    drop(run);
    assert!(!dir.exists());
    fs::remove_dir(&parent).unwrap();
}
