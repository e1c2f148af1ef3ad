//! Nothing a jailed program does leaves setuid, setgid or world-write bits on the host: the
//! session's files are root's on disk, so such a file would be root's setuid binary, or root's
//! file anyone may change.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::{Sandbox, text};

/// Every attempt, each printing `refused NAME [ERRNO]` or `ESCAPED NAME`.
const ATTEMPTS: &str = r#"
import ctypes, errno, os, socket, stat, struct, subprocess

libc = ctypes.CDLL(None, use_errno=True)

def attempt(name, action):
    try:
        action()
        print('ESCAPED', name)
    except OSError as e:
        print('refused', name, errno.errorcode.get(e.errno, e.errno))

def sh(command):
    def run():
        done = subprocess.run(['/bin/sh', '-c', command], capture_output=True)
        if done.returncode != 0:
            raise OSError(errno.EPERM, done.stderr.decode())
    return run

def raw(number, *args):
    def run():
        if libc.syscall(number, *args) < 0:
            raise OSError(ctypes.get_errno(), 'syscall')
    return run

def fchmod(path, mode):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)

subprocess.run(['cp', '/usr/bin/id', '/workspace/x'], check=True)
attempt('chmod 4755', sh('chmod 4755 /workspace/x'))
attempt('chmod 2755', sh('chmod 2755 /workspace/x'))
attempt('chmod u+s', sh('chmod u+s /workspace/x'))
attempt('chmod 777 dir', sh('chmod 777 /workspace'))
attempt('chmod 1777 tmp', sh('chmod 1777 /tmp'))
attempt('chmod o+w', sh('chmod o+w /workspace/x'))
attempt('os.chmod', lambda: os.chmod('/workspace/x', 0o4755))
attempt('os.fchmod', lambda: fchmod('/workspace/x', 0o2755))
attempt('fchmodat2', raw(452, -100, b'/workspace/x', 0o4755, 0))
attempt('x32 chmod', raw(0x40000000 | 90, b'/workspace/x', 0o4755))
attempt('os.open setuid', lambda: os.close(os.open('/workspace/suid', os.O_CREAT | os.O_WRONLY, 0o4755)))
attempt('creat setgid', raw(85, b'/workspace/sgid-file', 0o2755))
attempt('os.mkdir setgid', lambda: os.mkdir('/workspace/sgid', 0o2777))
attempt('mknod setuid', lambda: os.mknod('/workspace/fifo-s', stat.S_IFIFO | 0o4644))
how = struct.pack('QQQ', os.O_CREAT | os.O_WRONLY, 0o4755, 0)
attempt('openat2', raw(437, -100, b'/workspace/o2', how, len(how)))
acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, 7, 0xFFFFFFFF) for tag in (1, 4, 0x20))
attempt('posix acl', lambda: os.setxattr('/workspace/x', 'system.posix_acl_access', acl))
attempt('setxattr', lambda: os.setxattr('/workspace/x', 'user.note', b'x'))
attempt('cp -p setuid', sh('cp -p /usr/bin/su /workspace/su'))

# The umask starts at 022 and reads true the way pip and shells read it.
old = os.umask(0)
os.umask(old)
print('umask reads', oct(old))
os.close(os.open('/workspace/after-umask', os.O_CREAT | os.O_WRONLY, 0o666))

# What everyone does still works.
subprocess.run(['/bin/sh', '-c', '''set -e
touch /workspace/a /workspace/b
chmod 755 /workspace/x
chmod 644 /workspace/a
chmod +x /workspace/a
chmod 700 /workspace/b
chmod u+w,g-w /workspace/b
mkdir -m 750 /workspace/m
mkdir -p /workspace/d/e
echo hi > /workspace/f
mkfifo /workspace/fifo
touch /tmp/t
ln -s /workspace/f /workspace/link
'''], check=True)
os.chmod('/workspace/f', 0o600)
socket.socket(socket.AF_UNIX).bind('/tmp/sock')
print('ordinary work done')
"#;

#[test]
fn no_setuid_setgid_or_world_write_reaches_the_host() {
    let s = Sandbox::new();
    s.put("attack.py", ATTEMPTS);
    let out = s.run(&["python3", "/workspace/attack.py"]);
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    let stdout = text(&out.stdout);
    let refused = [
        "chmod 4755 EPERM",
        "chmod 2755 EPERM",
        "chmod u+s EPERM",
        "chmod 777 dir EPERM",
        "chmod 1777 tmp EPERM",
        "chmod o+w EPERM",
        "os.chmod EPERM",
        "os.fchmod EPERM",
        "fchmodat2 EPERM",
        "x32 chmod ENOSYS",
        "os.open setuid EPERM",
        "creat setgid EPERM",
        "os.mkdir setgid EPERM",
        "mknod setuid EPERM",
        "openat2 ENOSYS",
        "posix acl ENOTSUP",
        "setxattr ENOTSUP",
        "cp -p setuid EPERM",
    ];
    let expected: String = refused
        .iter()
        .map(|line| format!("refused {line}\n"))
        .chain([
            "umask reads 0o22\n".to_owned(),
            "ordinary work done\n".to_owned(),
        ])
        .collect();
    assert_eq!(stdout, expected, "{out:?}");

    for (name, mode) in [
        ("x", 0o755),
        ("a", 0o755),
        ("b", 0o700),
        ("m", 0o750),
        ("d/e", 0o755),
        ("f", 0o600),
        ("fifo", 0o644),
        ("after-umask", 0o644),
    ] {
        let meta = std::fs::metadata(s.workspace.join(name)).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{name}");
    }
    assert_eq!(
        std::fs::metadata(s.tmp.join("sock")).unwrap().mode() & 0o7777,
        0o755
    );
    for dir in [&s.workspace, &s.tmp] {
        assert_no_dangerous_mode(dir);
    }
}

/// Neither `dir` nor anything below it has setuid, setgid or others' write (symlinks aside:
/// their mode means nothing).
fn assert_no_dangerous_mode(dir: &Path) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    assert_eq!(
        meta.permissions().mode() & 0o6002,
        0,
        "{} has mode {:o}",
        dir.display(),
        meta.permissions().mode()
    );
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            assert_no_dangerous_mode(&entry.unwrap().path());
        }
    }
}
