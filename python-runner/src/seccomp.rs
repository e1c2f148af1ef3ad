//! The seccomp filter: a deny list over a default-allow, scoped to what a jailed Python program
//! never needs and an escape always does.
//!
//! The table is built by pure functions so it can be unit-tested; denied calls fail with
//! `EPERM` (`ENOSYS` for `clone3` and `openat2`, so libc falls back to `clone` and `openat`,
//! whose arguments the filter can inspect; `EOPNOTSUPP` for extended attributes).
//!
//! It also keeps the program from leaving setuid, setgid or world-write bits on the host: the
//! session's directories are idmapped, so what the program owns in the jail is root's on disk,
//! and a `chmod 4755` there would be a setuid-root file for anyone on the host. So `chmod` and
//! its relatives are refused a mode with any of those bits, and files and directories cannot be
//! created setuid or setgid. `openat2` hides its mode in memory the filter cannot read (hence
//! `ENOSYS`), and an ACL could grant what a mode cannot (hence no `setxattr`). The umask is 022
//! when the program starts and is left alone: faking `umask` (a call without the others-write
//! bit skipped) made every program that reads it with `old = umask(0); umask(old)` — pip,
//! shells, coreutils — believe it was 0 and `chmod 777` what it meant as 755. A program that
//! clears its own umask can create world-writable files; the data dir's 0700 keeps every other
//! host user away from them, and exports and restores mask the bit.
//!
//! Every filter checks the architecture first (any but x86_64 kills the process); x32 system
//! calls share x86_64's, with bit 30 set in their number, so the filters would not recognise
//! them: they are refused as a whole.

use std::collections::BTreeMap;

use crate::spec::SocketPolicy;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
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

/// Mode bits no file of the program may get from a mode change: setuid, setgid, and write for
/// others.
const MODE_CHANGE_BITS: &[u64] = &[
    libc::S_ISUID as u64,
    libc::S_ISGID as u64,
    libc::S_IWOTH as u64,
];

/// Mode bits no file may be created with: setuid and setgid (others' write at creation is what
/// the umask takes away).
const CREATION_BITS: &[u64] = &[libc::S_ISUID as u64, libc::S_ISGID as u64];

/// Calls that change an existing file's mode, and which argument the mode is.
const MODE_CHANGES: &[(&str, i64, u8)] = &[
    ("chmod", libc::SYS_chmod, 1),
    ("fchmod", libc::SYS_fchmod, 1),
    ("fchmodat", libc::SYS_fchmodat, 2),
    ("fchmodat2", libc::SYS_fchmodat2, 2),
];

/// Calls that create a file or directory with a mode, and which argument the mode is.
const CREATIONS: &[(&str, i64, u8)] = &[
    ("open", libc::SYS_open, 2),
    ("creat", libc::SYS_creat, 1),
    ("openat", libc::SYS_openat, 3),
    ("mkdir", libc::SYS_mkdir, 1),
    ("mkdirat", libc::SYS_mkdirat, 2),
    ("mknod", libc::SYS_mknod, 1),
    ("mknodat", libc::SYS_mknodat, 2),
];

/// `setxattrat` (Linux 6.13), not in the libc crate yet.
const SYS_SETXATTRAT: i64 = 463;

/// Writing extended attributes: `system.posix_acl_access` would let others write without any
/// mode bit saying so. The attribute's name is in memory the filter cannot read, so all are
/// refused, with `EOPNOTSUPP`, as a filesystem without them would (tools that copy attributes
/// expect that answer and carry on).
const XATTR_WRITES: &[(&str, i64)] = &[
    ("setxattr", libc::SYS_setxattr),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("setxattrat", SYS_SETXATTRAT),
];

/// Calls whose arguments the filter cannot inspect (they are in memory), answered `ENOSYS` so
/// libc falls back to an older call that it can: `clone3` to `clone` (the namespace flags),
/// `openat2` to `openat` (the mode).
const UNINSPECTABLE: &[(&str, i64)] =
    &[("clone3", libc::SYS_clone3), ("openat2", libc::SYS_openat2)];

/// `__X32_SYSCALL_BIT`: set in the number of every x32 system call.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// Rules keyed by syscall number: a call matches when any of its rules does, or always when it
/// has none.
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the seccomp filter: {0}")]
pub struct SeccompError(String);

fn err(e: impl std::fmt::Display) -> SeccompError {
    SeccompError(e.to_string())
}

/// The rules, keyed by syscall number: every entry is refused (when any of its rules matches,
/// or always when it has none).
pub fn denied_rules(sockets: SocketPolicy) -> Result<Rules, SeccompError> {
    let mut rules = Rules::new();
    for (_, nr) in DENIED {
        rules.insert(*nr, Vec::new());
    }
    rules.insert(libc::SYS_socket, socket_rules(sockets)?);
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
    for (_, nr, arg) in MODE_CHANGES {
        rules.insert(*nr, mode_rules(*arg, MODE_CHANGE_BITS)?);
    }
    for (_, nr, arg) in CREATIONS {
        rules.insert(*nr, mode_rules(*arg, CREATION_BITS)?);
    }
    Ok(rules)
}

/// One rule per bit of `bits`: the call matches when its mode argument (`arg`) has any of them.
/// (A filter compares for equality under a mask, so "any of" is one rule for each.)
fn mode_rules(arg: u8, bits: &[u64]) -> Result<Vec<SeccompRule>, SeccompError> {
    bits.iter()
        .map(|bit| {
            let has_bit = SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(*bit),
                *bit,
            )
            .map_err(err)?;
            SeccompRule::new(vec![has_bit]).map_err(err)
        })
        .collect()
}

/// When `socket` is refused: any domain but `AF_UNIX`; with [`SocketPolicy::Tcp`], any domain
/// but `AF_UNIX`, `AF_INET` and `AF_INET6`, and in those two any type but `SOCK_STREAM` (UDP,
/// raw and packet sockets stay denied). The type's low four bits are the type; the rest are
/// flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
fn socket_rules(sockets: SocketPolicy) -> Result<Vec<SeccompRule>, SeccompError> {
    let domain_is_not = |domain: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, domain as u64)
            .map_err(err)
    };
    let domain_is = |domain: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, domain as u64)
            .map_err(err)
    };
    match sockets {
        SocketPolicy::UnixOnly => Ok(vec![
            SeccompRule::new(vec![domain_is_not(libc::AF_UNIX)?]).map_err(err)?,
        ]),
        SocketPolicy::Tcp => {
            let mut rules = vec![
                SeccompRule::new(vec![
                    domain_is_not(libc::AF_UNIX)?,
                    domain_is_not(libc::AF_INET)?,
                    domain_is_not(libc::AF_INET6)?,
                ])
                .map_err(err)?,
            ];
            for domain in [libc::AF_INET, libc::AF_INET6] {
                for kind in (0..16u64).filter(|&kind| kind != libc::SOCK_STREAM as u64) {
                    let type_is = SeccompCondition::new(
                        1,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::MaskedEq(0xf),
                        kind,
                    )
                    .map_err(err)?;
                    rules.push(SeccompRule::new(vec![domain_is(domain)?, type_is]).map_err(err)?);
                }
            }
            Ok(rules)
        }
    }
}

/// Every filter but the x32 one: the calls it matches, and what they get instead of running.
pub fn filters(sockets: SocketPolicy) -> Result<Vec<(Rules, SeccompAction)>, SeccompError> {
    let unconditional = |calls: &[(&str, i64)]| -> Rules {
        calls.iter().map(|(_, nr)| (*nr, Vec::new())).collect()
    };
    Ok(vec![
        (
            denied_rules(sockets)?,
            SeccompAction::Errno(libc::EPERM as u32),
        ),
        (
            unconditional(UNINSPECTABLE),
            SeccompAction::Errno(libc::ENOSYS as u32),
        ),
        (
            unconditional(XATTR_WRITES),
            SeccompAction::Errno(libc::EOPNOTSUPP as u32),
        ),
    ])
}

/// Refuses every x32 system call with `ENOSYS` (as a kernel without x32 does), and kills a
/// process calling in any architecture but x86_64, as the other filters do.
fn no_x32() -> BpfProgram {
    let statement = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    // `struct seccomp_data`: the call's number at offset 0, the architecture at offset 4.
    vec![
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            1,
            0,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jump(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            1,
        ),
        statement(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The compiled filters (x86_64), to be installed in order. The kernel runs every installed
/// filter and applies the strictest answer; no call is matched by two of them.
pub fn programs(sockets: SocketPolicy) -> Result<Vec<BpfProgram>, SeccompError> {
    let mut programs = vec![no_x32()];
    for (rules, action) in filters(sockets)? {
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, TargetArch::x86_64)
            .map_err(err)?;
        programs.push(BpfProgram::try_from(filter).map_err(err)?);
    }
    Ok(programs)
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
    fn tcp_admits_stream_sockets_and_nothing_else_of_inet() {
        let rules = denied_rules(SocketPolicy::Tcp).unwrap();
        // One rule for the other domains, then one per (inet domain, non-stream type).
        assert_eq!(rules[&libc::SYS_socket].len(), 1 + 2 * 15);
        let unix_only = denied_rules(SocketPolicy::UnixOnly).unwrap();
        assert_eq!(unix_only[&libc::SYS_socket].len(), 1);
    }

    #[test]
    fn the_table_denies_the_escape_hatches() {
        let rules = denied_rules(SocketPolicy::UnixOnly).unwrap();
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
            libc::SYS_execve,
            libc::SYS_fork,
            libc::SYS_rename,
            libc::SYS_chown,
        ] {
            assert!(
                !rules.contains_key(&allowed),
                "syscall {allowed} stays allowed"
            );
        }
    }

    /// The rule "argument `arg` has `bit`", as the table should hold it.
    fn has_bit(arg: u8, bit: u32) -> SeccompRule {
        let bit = u64::from(bit);
        SeccompRule::new(vec![
            SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            )
            .unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn mode_changes_are_refused_setuid_setgid_and_world_write() {
        let rules = denied_rules(SocketPolicy::UnixOnly).unwrap();
        for (nr, arg) in [
            (libc::SYS_chmod, 1),
            (libc::SYS_fchmod, 1),
            (libc::SYS_fchmodat, 2),
            (libc::SYS_fchmodat2, 2),
        ] {
            assert_eq!(
                rules[&nr],
                vec![
                    has_bit(arg, libc::S_ISUID),
                    has_bit(arg, libc::S_ISGID),
                    has_bit(arg, libc::S_IWOTH),
                ],
                "syscall {nr}: one rule per forbidden bit, on the mode argument"
            );
        }
        assert_eq!(libc::SYS_fchmodat2, 452);
    }

    #[test]
    fn creation_is_refused_setuid_and_setgid_only() {
        let rules = denied_rules(SocketPolicy::UnixOnly).unwrap();
        for (nr, arg) in [
            (libc::SYS_open, 2),
            (libc::SYS_creat, 1),
            (libc::SYS_openat, 3),
            (libc::SYS_mkdir, 1),
            (libc::SYS_mkdirat, 2),
            (libc::SYS_mknod, 1),
            (libc::SYS_mknodat, 2),
        ] {
            assert_eq!(
                rules[&nr],
                vec![has_bit(arg, libc::S_ISUID), has_bit(arg, libc::S_ISGID)],
                "syscall {nr}: world-write at creation is the umask's business"
            );
        }
    }

    #[test]
    fn each_call_has_one_answer() {
        let filters = filters(SocketPolicy::UnixOnly).unwrap();
        let answer = |nr: i64| -> Vec<&SeccompAction> {
            filters
                .iter()
                .filter(|(rules, _)| rules.contains_key(&nr))
                .map(|(_, action)| action)
                .collect()
        };
        let eperm = SeccompAction::Errno(libc::EPERM as u32);
        let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
        let eopnotsupp = SeccompAction::Errno(libc::EOPNOTSUPP as u32);
        for (nr, expected) in [
            (libc::SYS_mount, &eperm),
            (libc::SYS_chmod, &eperm),
            (libc::SYS_openat, &eperm),
            (libc::SYS_clone3, &enosys),
            (libc::SYS_openat2, &enosys),
            (libc::SYS_setxattr, &eopnotsupp),
            (libc::SYS_lsetxattr, &eopnotsupp),
            (libc::SYS_fsetxattr, &eopnotsupp),
            (SYS_SETXATTRAT, &eopnotsupp),
        ] {
            assert_eq!(answer(nr), vec![expected], "syscall {nr}");
        }
        for nr in [
            libc::SYS_removexattr,
            libc::SYS_getxattr,
            libc::SYS_read,
            libc::SYS_umask,
        ] {
            assert!(answer(nr).is_empty(), "syscall {nr} stays allowed");
        }
        for (rules, _) in &filters {
            assert!(
                rules
                    .keys()
                    .all(|nr| (*nr as u64) < u64::from(X32_SYSCALL_BIT)),
                "x32 numbers are the x32 filter's"
            );
        }
    }

    #[test]
    fn x32_calls_are_refused_and_other_architectures_killed() {
        let program = no_x32();
        assert_eq!(program.len(), 7);
        assert_eq!(program[1].k, 0xC000_003E, "AUDIT_ARCH_X86_64");
        assert_eq!(program[2].k, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(program[4].k, 0x4000_0000, "__X32_SYSCALL_BIT");
        assert_eq!(
            (program[4].jt, program[4].jf),
            (0, 1),
            "at or above the bit: refused"
        );
        assert_eq!(program[5].k, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(program[6].k, libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn the_programs_compile() {
        let programs = programs(SocketPolicy::Tcp).unwrap();
        assert_eq!(programs.len(), 4);
        assert!(programs.iter().all(|p| !p.is_empty()));
    }
}
