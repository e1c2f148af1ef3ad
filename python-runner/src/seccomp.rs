//! The seccomp filter: a deny list over a default-allow, scoped to what a jailed Python program
//! never needs and an escape always does.
//!
//! The table is built by a pure function so it can be unit-tested; denied calls fail with
//! `EPERM` (`ENOSYS` for `clone3`, so libc falls back to `clone`, whose flags the filter can
//! inspect).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Denied outright: namespaces and mounts (escape the jail's view), tracing and cross-process
/// memory (reach other processes), kernel-facing interfaces with a record of privilege
/// escalation (bpf, io_uring, userfaultfd, perf, keyrings, modules), and the machine itself.
const DENIED: &[(&str, i64)] = &[
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("bpf", libc::SYS_bpf),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("syslog", libc::SYS_syslog),
    ("quotactl", libc::SYS_quotactl),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("personality", libc::SYS_personality),
];

/// `clone` flags that would create namespaces: the filter refuses a `clone` with any of them.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the seccomp filter: {0}")]
pub struct SeccompError(String);

fn err(e: impl std::fmt::Display) -> SeccompError {
    SeccompError(e.to_string())
}

/// The rules, keyed by syscall number: every entry is refused (when any of its rules matches,
/// or always when it has none).
pub fn denied_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        rules.insert(*nr, Vec::new());
    }
    // Sockets: only AF_UNIX (Python's multiprocessing uses socketpair); the network namespace
    // already has no interface, this makes the intent explicit and independent of it.
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )
    .map_err(err)?;
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![not_unix]).map_err(err)?],
    );
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let has_flag = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(*flag),
            *flag,
        )
        .map_err(err)?;
        clone_rules.push(SeccompRule::new(vec![has_flag]).map_err(err)?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    Ok(rules)
}

/// The compiled filters (x86_64), to be installed in order. The kernel runs every installed
/// filter and applies the strictest answer.
pub fn programs() -> Result<Vec<BpfProgram>, SeccompError> {
    let deny = SeccompFilter::new(
        denied_rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(err)?;
    // `clone3` passes its flags in memory a filter cannot read: answer ENOSYS, and libc falls
    // back to `clone`, whose flags the filter above checks.
    let no_clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .map_err(err)?;
    Ok(vec![
        BpfProgram::try_from(deny).map_err(err)?,
        BpfProgram::try_from(no_clone3).map_err(err)?,
    ])
}

/// Installs compiled filters (see [`programs`]) on the calling thread and what it executes.
/// Needs `no_new_privs`.
pub fn install(programs: &[BpfProgram]) -> Result<(), SeccompError> {
    for program in programs {
        seccompiler::apply_filter(program).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_denies_the_escape_hatches() {
        let rules = denied_rules().unwrap();
        for nr in [
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_bpf,
            libc::SYS_io_uring_setup,
            libc::SYS_keyctl,
            libc::SYS_userfaultfd,
            libc::SYS_perf_event_open,
        ] {
            assert!(
                rules.get(&nr).is_some_and(Vec::is_empty),
                "syscall {nr} is denied unconditionally"
            );
        }
        assert_eq!(
            rules[&libc::SYS_socket].len(),
            1,
            "socket is denied for non-AF_UNIX domains"
        );
        assert_eq!(
            rules[&libc::SYS_clone].len(),
            NAMESPACE_FLAGS.len(),
            "clone is denied per namespace flag"
        );
        for allowed in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_fork,
        ] {
            assert!(
                !rules.contains_key(&allowed),
                "syscall {allowed} stays allowed"
            );
        }
    }

    #[test]
    fn the_programs_compile() {
        let programs = programs().unwrap();
        assert_eq!(programs.len(), 2);
        assert!(programs.iter().all(|p| !p.is_empty()));
    }
}
