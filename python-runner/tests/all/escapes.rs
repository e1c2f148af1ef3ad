//! The escape suite: each attempt must fail, and the host must be untouched.

use crate::support::{SECRET, Sandbox, runner, text};

/// Runs Python that prints `ESCAPED` only if its attempt worked.
fn attempt(s: &Sandbox, code: &str) -> String {
    let out = s.python(code);
    assert_eq!(out.jail_error, None, "{out:?}");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !all.contains("ESCAPED"),
        "the attempt succeeded:\n{code}\n{all}"
    );
    assert!(!all.contains(SECRET), "the secret leaked:\n{code}\n{all}");
    all
}

#[test]
fn host_files_beside_and_above_are_out_of_reach() {
    let s = Sandbox::new();
    let secret = s.secret.display().to_string();
    for path in [
        "/workspace/../secret.txt",
        secret.as_str(),
        "/etc/shadow",
        "/etc/passwd",
        "/root/.bashrc",
        "/proc/1/root/secret.txt",
    ] {
        attempt(
            &s,
            &format!(
                "try:\n    print('ESCAPED', open({path:?}).read())\nexcept OSError as e:\n    print('refused', e)"
            ),
        );
    }
    // Nothing of the host's tree is listed at the root; the jail's own /etc has only `hosts`.
    let out = s.python("import os; print(sorted(os.listdir('/')), os.listdir('/etc'))");
    let listed = text(&out.stdout);
    assert!(
        !listed.contains("'home'") && listed.ends_with("] ['hosts']\n"),
        "{listed}"
    );
    // Where the interpreter lives under the host's /root, only its own prefix is there.
    let out = s.python("import os; print(os.listdir('/root') if os.path.isdir('/root') else [])");
    let root = text(&out.stdout);
    assert!(root.trim() == "[]" || root.trim() == "['.pyenv']", "{root}");
}

#[test]
fn no_environment_reaches_the_jail() {
    let s = Sandbox::new();
    // Cargo sets CARGO_* in this test's environment: none of it may appear inside.
    let out = attempt(
        &s,
        "import os\nfor pid in ['self', str(os.getppid())]:\n    try:\n        data = open(f'/proc/{pid}/environ','rb').read()\n        print('ESCAPED' if b'CARGO' in data else 'clean', pid)\n    except OSError:\n        print('unreadable', pid)\nprint(os.getppid())",
    );
    // The jail's init (the program's parent, pid 1) is not the program's to read.
    assert!(
        out.contains("clean self") && out.contains("unreadable 1"),
        "{out}"
    );
}

#[test]
fn writes_outside_the_writable_directories_fail() {
    let s = Sandbox::new();
    let prefix = runner().interpreter().prefix.display().to_string();
    for path in [
        "/workspace/../planted",
        "/etc/planted",
        "/usr/planted",
        &format!("{prefix}/planted"),
        "/planted",
        "/proc/sys/kernel/hostname",
        "/workspace/skills/planted",
    ] {
        attempt(
            &s,
            &format!(
                "try:\n    open({path:?}, 'w').write('x')\n    print('ESCAPED')\nexcept OSError as e:\n    print('refused', e)"
            ),
        );
    }
    assert!(!std::path::Path::new(&prefix).join("planted").exists());
    assert!(!s.skills.join("planted").exists());
    assert!(!s.root.path().join("planted").exists());
    assert_eq!(
        std::fs::read_to_string(s.skills.join("SKILL.md")).unwrap(),
        "# skill\n"
    );
}

#[test]
fn planted_and_runtime_links_lead_nowhere() {
    let s = Sandbox::new();
    std::os::unix::fs::symlink(&s.secret, s.workspace.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", s.workspace.join("rel-link")).unwrap();
    std::os::unix::fs::symlink(s.root.path(), s.workspace.join("dir-link")).unwrap();
    for path in ["abs-link", "rel-link", "dir-link/secret.txt"] {
        attempt(
            &s,
            &format!(
                "try:\n    print('ESCAPED', open({path:?}).read())\nexcept OSError as e:\n    print('refused', e)"
            ),
        );
    }
    attempt(
        &s,
        "import os\nfor src in ['/proc/1/root', '/']:\n    try:\n        os.symlink(src, 'l')\n        print(os.listdir('l/..'))\n    except OSError as e: print('refused', e)\n    finally:\n        try: os.unlink('l')\n        except OSError: pass\n\
try:\n    os.link('/usr/bin/env', '/workspace/hl')\n    print('ESCAPED hardlink into the workspace')\nexcept OSError as e:\n    print('refused', e)",
    );
    assert!(!s.workspace.join("hl").exists());
}

#[test]
fn no_network_of_any_kind() {
    let s = Sandbox::new();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let name = format!("hearth-test-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap();
    let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    abstract_listener.set_nonblocking(true).unwrap();
    attempt(
        &s,
        &format!(
            "import socket\n\
try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('ESCAPED tcp')\nexcept OSError as e: print('tcp refused', e)\n\
try:\n    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'x', ('127.0.0.1', {udp_port})); print('ESCAPED udp')\nexcept OSError as e: print('udp refused', e)\n\
try:\n    a = socket.socket(socket.AF_UNIX); a.connect('\\0{name}'); print('ESCAPED abstract')\nexcept OSError as e: print('abstract refused', e)\n\
a, b = socket.socketpair(); a.send(b'ok'); print('socketpair', b.recv(2))"
        ),
    );
    assert!(tcp.accept().is_err(), "nothing reached the TCP listener");
    assert!(
        udp.recv(&mut [0u8; 8]).is_err(),
        "nothing reached the UDP socket"
    );
    assert!(
        abstract_listener.accept().is_err(),
        "nothing reached the abstract socket"
    );
}

#[test]
fn host_processes_are_invisible_and_unreachable() {
    let s = Sandbox::new();
    let me = std::process::id();
    let out = attempt(
        &s,
        &format!(
            "import os, signal\n\
pids = [p for p in os.listdir('/proc') if p.isdigit()]\nprint('pids', pids)\n\
try:\n    os.kill({me}, 0); print('ESCAPED signal')\nexcept OSError as e: print('refused', e)\n\
print('ESCAPED' if str({me}) in pids else 'hidden')"
        ),
    );
    assert!(
        out.contains("pids ['2']"),
        "only the program is visible (not even the jail's init): {out}"
    );
}

#[test]
fn namespaces_mounts_and_tracing_are_denied() {
    let s = Sandbox::new();
    attempt(
        &s,
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
for name, flag in [('user', 0x10000000), ('mount', 0x00020000), ('net', 0x40000000)]:\n    r = libc.unshare(flag)\n    print('ESCAPED unshare' if r == 0 else 'unshare refused', name, ctypes.get_errno())\n\
r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nprint('ESCAPED mount' if r == 0 else 'mount refused', ctypes.get_errno())\n\
r = libc.ptrace(0, 0, None, None)\nprint('ESCAPED ptrace' if r == 0 else 'ptrace refused', ctypes.get_errno())\n\
r = libc.syscall(321, 0, 0, 0)\nprint('ESCAPED bpf' if r >= 0 else 'bpf refused')\n\
r = libc.syscall(425, 8, 0)\nprint('ESCAPED io_uring' if r >= 0 else 'io_uring refused')",
    );
}

#[test]
fn a_double_forked_daemon_does_not_outlive_the_run() {
    let s = Sandbox::new();
    let out = s.python(
        "import os, time\n\
if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1.5)\n        open('/workspace/daemon-was-here', 'w').write('x')\n        os._exit(0)\n    os._exit(0)\nprint('parent done')",
    );
    assert_eq!(out.exit_code, Some(0));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        !s.workspace.join("daemon-was-here").exists(),
        "the daemon survived the run"
    );
}

#[test]
fn the_program_runs_unprivileged_and_owns_only_its_session() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let s = Sandbox::new();
    // A file the host (root) wrote, private to its owner, as a tool's could be.
    s.put("private.txt", "host wrote this\n");
    std::fs::set_permissions(
        s.workspace.join("private.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let out = s.run(&[
        "/bin/sh",
        "-c",
        "id -u; id -g; grep -E '^Cap(Prm|Eff|Bnd):' /proc/self/status; \
         echo edited >> /workspace/private.txt && echo new > /workspace/new.txt && \
         mkdir -p /workspace/dir/sub && echo scratch > /tmp/s.txt && \
         echo discarded > /dev/null && head -c 4 /dev/urandom | wc -c && echo wrote",
    ]);
    assert_eq!(
        out.layers.get("uid").map(String::as_str),
        Some("enforced: 2147483646"),
        "{:?}",
        out.layers
    );
    assert_eq!(
        text(&out.stdout),
        "2147483646\n2147483646\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
         CapBnd:\t0000000000000000\n4\nwrote\n",
        "{out:?}"
    );
    // What the program wrote is root's on the host, where tools, git and snapshots use it.
    for path in [
        s.workspace.join("private.txt"),
        s.workspace.join("new.txt"),
        s.workspace.join("dir/sub"),
        s.tmp.join("s.txt"),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
    }
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("private.txt")).unwrap(),
        "host wrote this\nedited\n"
    );

    // It still dies with its jail's relay: changing uid disarms the parent-death signal, and
    // the helper arms it again.
    let pdeathsig = s.python(
        "import ctypes; sig = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(sig)); print(sig.value)",
    );
    assert_eq!(text(&pdeathsig.stdout), "9\n", "{pdeathsig:?}");

    // Nothing of the helper or the worker is open in it but stdin, stdout and stderr.
    let descriptors = s.python(
        "import os\ndef is_open(fd):\n    try:\n        os.fstat(fd)\n        return True\n    except OSError:\n        return False\nprint([fd for fd in range(1024) if is_open(fd)])",
    );
    assert_eq!(text(&descriptors.stdout), "[0, 1, 2]\n", "{descriptors:?}");

    // Outside its session it is no one: root's own places in the jail refuse it, even those
    // (like /dev) that are writable mounts.
    for attempt_code in [
        "open('/dev/planted', 'w').write('x'); print('ESCAPED')",
        "import os; os.chown('/workspace/new.txt', 0, 0); print('ESCAPED chown')",
        "import os; os.setuid(0); print('ESCAPED setuid')",
    ] {
        attempt(
            &s,
            &format!("try:\n    {attempt_code}\nexcept OSError as e:\n    print('refused', e)"),
        );
    }
}
