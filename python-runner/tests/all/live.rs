//! Runs that live: signals forwarded to the program, stdin written while it runs, and a network
//! namespace of the session's own that its runs share, with TCP on loopback and nothing else.

use std::io::{Read, Write};
use std::time::Duration;

use hearth_python_runner::{SocketPolicy, netns};
use nix::sys::signal::Signal;

use crate::support::{Sandbox, python_path, runner, text};

/// A signal the host sends reaches a program that has a handler, though the program is not the
/// jail's pid 1, and one without a handler dies of it (a shell ignores nothing it is sent).
#[test]
fn signals_reach_the_program_and_its_group() {
    let s = Sandbox::new();
    let python = python_path();
    let handled = "import signal, sys, time\n\
def bye(n, f):\n    print('got', n, flush=True); sys.exit(3)\n\
signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(30)";
    let running = runner()
        .start(&s.job(&[&python, "-c", handled]), None)
        .unwrap();
    let control = running.control();
    std::thread::sleep(Duration::from_millis(600));
    assert!(control.signal(Signal::SIGTERM).unwrap());
    let outcome = running.wait();
    assert_eq!(outcome.exit_code, Some(3), "{outcome:?}");
    assert!(text(&outcome.stdout).contains("got 15"), "{outcome:?}");
    assert!(!control.signal(Signal::SIGTERM).unwrap(), "the run is over");

    // A shell with a child: both are in the program's group, and both go.
    let running = runner()
        .start(&s.job(&["/bin/sh", "-c", "sleep 30; echo survived"]), None)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    running.control().signal(Signal::SIGTERM).unwrap();
    let outcome = running.wait();
    assert_eq!(outcome.signal, Some(Signal::SIGTERM as i32), "{outcome:?}");
    assert!(!text(&outcome.stdout).contains("survived"));
    assert!(outcome.duration < Duration::from_secs(10), "{outcome:?}");
}

#[test]
fn stdin_stays_open_for_writes_until_closed() {
    let s = Sandbox::new();
    let mut job = s.job(&["/bin/cat"]);
    job.stdin = b"first ".to_vec();
    job.keep_stdin_open = true;
    let running = runner().start(&job, None).unwrap();
    let stdin = running.stdin();
    stdin.write(b"second ", false).unwrap();
    assert!(stdin.is_open());
    stdin.write(b"third", true).unwrap();
    assert!(!stdin.is_open());
    assert!(stdin.write(b"late", false).is_err(), "closed");
    let outcome = running.wait();
    assert_eq!(text(&outcome.stdout), "first second third");
    assert_eq!(outcome.exit_code, Some(0));
}

/// Two runs in one session namespace reach each other over TCP on loopback; the worker reaches
/// the server from outside without any socket on the host's network; UDP and raw sockets stay
/// denied; and a run outside the namespace sees none of it.
#[test]
fn a_session_network_is_shared_by_its_runs_and_by_nothing_else() {
    let s = Sandbox::new();
    let namespace = s.root.path().join("state").join("netns");
    netns::create(&namespace).unwrap();
    let python = python_path();
    let server = "import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('127.0.0.1', 8765)); s.listen(4)\nprint('listening', flush=True)\n\
for _ in range(2):\n    c, _ = s.accept(); c.sendall(b'hello from the server'); c.close()";
    let mut job = s.job(&[&python, "-c", server]);
    job.network = Some(namespace.clone());
    job.sockets = SocketPolicy::Tcp;
    let server = runner().start(&job, None).unwrap();
    std::thread::sleep(Duration::from_millis(800));

    // Another run of the session.
    let client = "import socket, time\nc = socket.create_connection(('localhost', 8765), timeout=5)\n\
print(c.recv(100).decode())\n\
for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):\n    try:\n        socket.socket(socket.AF_INET, kind); print('ESCAPED', kind)\n    except OSError as e: print('refused', e.errno)";
    let mut job = s.job(&[&python, "-c", client]);
    job.network = Some(namespace.clone());
    job.sockets = SocketPolicy::Tcp;
    let out = runner().run(&job).unwrap();
    let said = text(&out.stdout);
    assert!(said.starts_with("hello from the server\n"), "{out:?}");
    assert!(!said.contains("ESCAPED"), "{said}");
    assert_eq!(
        out.layers.get("network_namespace").map(String::as_str),
        Some("enforced: the session's own")
    );

    // The worker, from outside.
    let mut stream = netns::connect(&namespace, "127.0.0.1:8765".parse().unwrap()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "hello from the server");
    assert!(
        std::net::TcpStream::connect("127.0.0.1:8765").is_err(),
        "nothing listens on the host's own loopback"
    );
    assert!(server.wait().exit_code == Some(0));

    // A run of no session network: its own empty namespace, and no TCP socket at all.
    let lonely = s.python(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 8765), timeout=2); print('ESCAPED')\nexcept OSError as e: print('refused', e.errno)",
    );
    assert!(text(&lonely.stdout).starts_with("refused"), "{lonely:?}");

    // The worker can listen in it too (the egress proxy does), and a run connects.
    let listener = netns::listen(&namespace, "127.0.0.1:3128".parse().unwrap()).unwrap();
    let mut job = s.job(&[
        &python,
        "-c",
        "import socket; c = socket.create_connection(('127.0.0.1', 3128)); c.sendall(b'ping')",
    ]);
    job.network = Some(namespace.clone());
    job.sockets = SocketPolicy::Tcp;
    let pinger = runner().start(&job, None).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let mut ping = [0u8; 4];
    peer.read_exact(&mut ping).unwrap();
    peer.write_all(b"ok").unwrap();
    assert_eq!(&ping, b"ping");
    assert_eq!(pinger.wait().exit_code, Some(0));
    netns::remove(&namespace);
    assert!(!namespace.exists());
}
