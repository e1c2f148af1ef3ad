//! A session that lives: background processes, runs beside tools and each other, one network
//! per session, ports reached through the worker, and egress by allow-list.

use std::time::{Duration, Instant};

use hearth_client::Client;
use hearth_client::wire::exec::{ExecRequest, KeepOutput};
use hearth_client::wire::processes::{OutputQuery, ProcessState, SignalName};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{JsonCalls, TOKEN, Worker, assert_client_error, assert_error, write};

/// A GET of `path` with the worker's token is refused with `status` and `code`.
async fn assert_get_refused(w: &Worker, path: &str, status: u16, code: &str) {
    assert_error(
        &w.raw(Method::GET, path, Some(TOKEN), None).await,
        status,
        code,
    );
}

fn background(command: &str) -> ExecRequest {
    ExecRequest::command(command)
}

/// Reads a process's stdout from `cursor` until it ends; all of it.
async fn read_all(c: &Client, s: &str, process: &str) -> String {
    let (mut text, mut cursor) = (String::new(), 0);
    loop {
        let query = OutputQuery {
            stdout: Some(cursor),
            wait_s: Some(10.0),
            ..OutputQuery::default()
        };
        let read = c.process_output(s, process, &query).await.unwrap();
        assert_eq!(read.stdout.missed, 0);
        text.push_str(&read.stdout.data);
        cursor = read.stdout.next;
        if read.stdout.eof {
            return text;
        }
    }
}

#[tokio::test]
async fn a_background_process_outlives_its_request_and_its_reader() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let started = Instant::now();
    let process = w
        .client
        .exec_background(
            &s,
            &background("for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done; echo done >&2"),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    assert_eq!(process.state, ProcessState::Running);
    assert_eq!(process.id, "p1");
    // The client that started it goes away; another, later, reads everything.
    drop(process);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let reader = Client::new(&w.url, Some(TOKEN.into()));
    let done = reader.process(&s, "p1", Some(30.0)).await.unwrap();
    assert_eq!(done.state, ProcessState::Exited);
    assert_eq!(done.exit_code, Some(0));
    assert!(
        done.ended_at.is_some() && done.duration_ms >= 1_000,
        "{done:?}"
    );
    assert_eq!(
        read_all(&reader, &s, "p1").await,
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    let both = reader
        .process_output(&s, "p1", &OutputQuery::default())
        .await
        .unwrap();
    assert_eq!(both.stderr.data, "done\n");
    assert!(both.stderr.eof && both.stdout.eof);
    // From a cursor: the rest only.
    let rest = reader
        .process_output(
            &s,
            "p1",
            &OutputQuery {
                stdout: Some(21),
                ..OutputQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.stdout.data, "line 4\nline 5\n");
    let list = reader.processes(&s).await.unwrap();
    assert_eq!(list.processes.len(), 1);
    assert_eq!(
        list.processes[0].command,
        "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done; echo done >&2"
    );
}

#[tokio::test]
async fn a_ring_keeps_the_last_output_and_says_what_was_missed() {
    let w = Worker::start_with(|c| c.exec.background_output_bytes = 1_000).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let p = w
        .client
        .exec_background(&s, &background("seq 1 1000"))
        .await
        .unwrap();
    w.client.process(&s, &p.id, Some(30.0)).await.unwrap();
    let read = w
        .client
        .process_output(&s, &p.id, &OutputQuery::default())
        .await
        .unwrap();
    // 1..=1000, one per line: 3,893 bytes, of which the last 1,000 are kept.
    assert_eq!(read.stdout.next, 3_893);
    assert_eq!(read.stdout.missed, 2_893);
    assert!(read.stdout.data.ends_with("999\n1000\n"));
    assert_eq!(read.process.stdout_bytes, 3_893);
}

#[tokio::test]
async fn a_process_that_keeps_its_first_output_keeps_it_for_a_late_reader() {
    let w = Worker::start_with(|c| c.exec.background_output_bytes = 1_000).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let request = ExecRequest {
        keep_output: Some(KeepOutput::First),
        ..background("seq 1 1000; echo é >&2")
    };
    let p = w.client.exec_background(&s, &request).await.unwrap();
    // Read only after it ended: the first 1,000 bytes are there, whole.
    w.client.process(&s, &p.id, Some(30.0)).await.unwrap();
    let read = w
        .client
        .process_output(&s, &p.id, &OutputQuery::default())
        .await
        .unwrap();
    let expected: String = (1..=1000).map(|n| format!("{n}\n")).collect();
    assert_eq!(read.stdout.data, expected[..1_000]);
    assert_eq!((read.stdout.cursor, read.stdout.next), (0, 1_000));
    assert_eq!((read.stdout.missed, read.stdout.eof), (0, false));
    assert_eq!((read.stderr.data.as_str(), read.stderr.eof), ("é\n", true));
    // The next read is past the rest, which it says it missed.
    let query = OutputQuery {
        stdout: Some(read.stdout.next),
        stderr: Some(read.stderr.next),
        ..OutputQuery::default()
    };
    let rest = w.client.process_output(&s, &p.id, &query).await.unwrap();
    assert_eq!(rest.stdout.data, "");
    assert_eq!((rest.stdout.next, rest.stdout.missed), (3_893, 2_893));
    assert!(rest.stdout.eof);
}

#[tokio::test]
async fn stdin_signals_waits_and_kills() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;

    // stdin, a line at a time, then closed: the program reads end of file and exits.
    let cat = c.exec_background(&s, &background("cat")).await.unwrap();
    assert!(cat.stdin_open);
    c.write_stdin(&s, &cat.id, "hello\n", false).await.unwrap();
    let query = OutputQuery {
        wait_s: Some(10.0),
        ..OutputQuery::default()
    };
    let read = c.process_output(&s, &cat.id, &query).await.unwrap();
    assert_eq!(read.stdout.data, "hello\n");
    let after = c.write_stdin(&s, &cat.id, "bye\n", true).await.unwrap();
    assert!(!after.stdin_open);
    let ended = c.process(&s, &cat.id, Some(10.0)).await.unwrap();
    assert_eq!(ended.exit_code, Some(0));
    assert_eq!(read_all(c, &s, &cat.id).await, "hello\nbye\n");
    assert_client_error(
        c.write_stdin(&s, &cat.id, "late", false).await,
        409,
        "stdin_closed",
    );

    // A signal reaches the program's handler (the program is not the jail's pid 1). The handler
    // writes with os.write: the signal may come while `print('ready')` is still in its flush,
    // and a print in the handler would then be a reentrant call.
    let handler = "import os, signal, sys, time\n\
def bye(n, f):\n    os.write(1, b'stopping %d\\n' % n); sys.exit(3)\n\
signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(60)";
    let request = ExecRequest {
        argv: Some(vec!["python3".into(), "-c".into(), handler.into()]),
        ..ExecRequest::default()
    };
    let py = c.exec_background(&s, &request).await.unwrap();
    let ready = c.process_output(&s, &py.id, &query).await.unwrap();
    assert_eq!(ready.stdout.data, "ready\n");
    let sent = c
        .signal_process(&s, &py.id, SignalName::Sigterm)
        .await
        .unwrap();
    assert!(sent.delivered);
    let ended = c.process(&s, &py.id, Some(10.0)).await.unwrap();
    let log = c
        .process_output(&s, &py.id, &OutputQuery::default())
        .await
        .unwrap();
    assert_eq!(ended.exit_code, Some(3), "{ended:?} {log:?}");
    assert_eq!(read_all(c, &s, &py.id).await, "ready\nstopping 15\n");
    let again = c
        .signal_process(&s, &py.id, SignalName::Sigterm)
        .await
        .unwrap();
    assert!(!again.delivered, "an ended process gets nothing");

    // A shell without a handler dies of SIGTERM; a wait that runs out says `running`.
    let sleeper = c
        .exec_background(&s, &background("sleep 120"))
        .await
        .unwrap();
    let still = c.process(&s, &sleeper.id, Some(0.5)).await.unwrap();
    assert_eq!(still.state, ProcessState::Running);
    c.signal_process(&s, &sleeper.id, SignalName::Sigterm)
        .await
        .unwrap();
    let ended = c.process(&s, &sleeper.id, Some(10.0)).await.unwrap();
    assert_eq!(ended.signal, Some(15), "{ended:?}");

    // Kill: every process of the run, and the process is forgotten.
    let tree = c
        .exec_background(&s, &background("sleep 300 & sleep 300 & wait"))
        .await
        .unwrap();
    let started = Instant::now();
    let killed = c.kill_process(&s, &tree.id).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (killed.state, killed.signal),
        (ProcessState::Exited, Some(9))
    );
    assert_client_error(
        c.process(&s, &tree.id, None).await,
        404,
        "process_not_found",
    );

    // Refusals.
    let path = format!("/v1/sessions/{s}/processes/{}?wait_s=31", cat.id);
    assert_get_refused(&w, &path, 400, "invalid_query").await;
    let path = format!("/v1/sessions/{s}/processes/p999/output");
    assert_get_refused(&w, &path, 404, "process_not_found").await;
    let path = format!("/v1/sessions/{s}/processes/{}/signal", cat.id);
    let body = json!({ "signal": "SIGSTOP" }).to_string().into_bytes();
    assert_error(
        &w.raw(Method::POST, &path, Some(TOKEN), Some(body)).await,
        400,
        "invalid_request",
    );
    let path = format!("/v1/sessions/{s}/exec");
    let wrong_keep = json!({ "command": "true", "background": true, "keep_output": "middle" });
    assert_error(
        &w.raw(
            Method::POST,
            &path,
            Some(TOKEN),
            Some(wrong_keep.to_string().into_bytes()),
        )
        .await,
        400,
        "invalid_request",
    );
    for bad in [
        json!({ "command": "true", "background": true, "commit": { "message": "x" } }),
        json!({ "call": "m:f", "background": true }),
        // Which bytes a background process keeps: a foreground run's answer keeps the first.
        json!({ "command": "true", "keep_output": "first" }),
    ] {
        assert_client_error(c.exec_json(&s, bad).await, 400, "invalid_exec");
    }
    let path = format!("/v1/sessions/{s}/exec/stream");
    let body = json!({ "command": "true", "background": true })
        .to_string()
        .into_bytes();
    assert_error(
        &w.raw(Method::POST, &path, Some(TOKEN), Some(body)).await,
        400,
        "invalid_exec",
    );
}

#[tokio::test]
async fn a_session_runs_at_most_its_background_processes() {
    let w = Worker::start_with(|c| c.exec.max_background = 2).await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    let other = c.create_session(None).await.unwrap().session.id;
    for _ in 0..2 {
        c.exec_background(&s, &background("sleep 60"))
            .await
            .unwrap();
    }
    assert_client_error(
        c.exec_background(&s, &background("sleep 60")).await,
        429,
        "process_limit",
    );
    // Another session is not held back, nor are foreground runs.
    c.exec_background(&other, &background("true"))
        .await
        .unwrap();
    let out = c
        .exec_json(&s, json!({ "command": "echo still" }))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "still\n");
    // The processes end with their session.
    let listed = c.processes(&s).await.unwrap().processes;
    c.delete_session(&s).await.unwrap();
    assert_eq!(listed.len(), 2);
}

/// Reads and writes, tools and other runs are answered while a 30-second run runs; deleting
/// the session ends the run, whose request then answers at once.
#[tokio::test]
async fn a_long_run_holds_nothing_back() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let (client, session) = (w.client.clone(), s.clone());
    let long = tokio::spawn(async move {
        client
            .exec_json(
                &session,
                json!({ "command": "echo started; sleep 30", "timeout_s": 60 }),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let c = &w.client;
    let within = Duration::from_secs(10);
    let started = Instant::now();
    write(c, &s, "/workspace/a.txt", "beside\n").await;
    let read = c
        .call_tool(&s, "read_file", json!({ "file_path": "/workspace/a.txt" }))
        .await
        .unwrap();
    assert!(read.to_string().contains("beside"), "{read}");
    let other = c
        .exec_json(&s, json!({ "command": "cat a.txt" }))
        .await
        .unwrap();
    assert_eq!(other["stdout"], "beside\n");
    c.git(&s, "commit", json!({ "message": "while it runs" }))
        .await
        .unwrap();
    let info = c.session(&s).await.unwrap();
    assert!(
        info.snapshot.pending,
        "a running program is a pending change"
    );
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    assert!(!long.is_finished(), "the long run still runs");
    // The session goes, and its run with it.
    let deleting = Instant::now();
    c.delete_session(&s).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .unwrap()
        .unwrap();
    // Its answer says it was killed.
    assert_eq!(ended.unwrap()["signal"], 9);
    assert!(deleting.elapsed() < Duration::from_secs(10));
}

/// The session's runs share a network: a server one starts is reached by another, and through
/// the worker's port route (with the token, never on the host's network).
#[tokio::test]
async fn a_server_in_the_session_is_reached_by_its_runs_and_through_the_worker() {
    let w = Worker::start().await;
    let c = &w.client;
    let created = c.create_session(None).await.unwrap();
    let (s, session_token) = (created.session.id.clone(), created.token.clone());
    let other = c.create_session(None).await.unwrap();
    let port = 18_000 + (std::process::id() % 1_000) as u16;
    write(c, &s, "/workspace/site/hello.txt", "hello from the jail\n").await;
    let server = c
        .exec_background(
            &s,
            &background(&format!(
                "cd site && python3 -m http.server {port} --bind 127.0.0.1"
            )),
        )
        .await
        .unwrap();
    // Wait for it to listen.
    let fetch = format!(
        "import urllib.request, time\nfor _ in range(100):\n    try:\n        print(urllib.request.urlopen('http://localhost:{port}/hello.txt').read().decode(), end=''); break\n    except OSError: time.sleep(0.1)"
    );
    let out = c
        .exec_json(&s, json!({ "argv": ["python3", "-c", fetch] }))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "hello from the jail\n", "{out}");

    // Through the worker, with the session's token or the worker's.
    let url = c.port_url(&s, port, "hello.txt?x=1");
    for token in [TOKEN, session_token.as_str()] {
        let answer = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "hello from the jail\n");
    }
    let listing = reqwest::Client::new()
        .get(c.port_url(&s, port, ""))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(listing.text().await.unwrap().contains("hello.txt"));
    // Not without a token, not with another session's, never on the host's own loopback.
    let path = format!("/v1/sessions/{s}/ports/{port}/hello.txt");
    assert_error(
        &w.raw(Method::GET, &path, None, None).await,
        401,
        "unauthorized",
    );
    assert_error(
        &w.raw(Method::GET, &path, Some(&other.token), None).await,
        403,
        "token_scope",
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
    // Another session does not see it.
    let path = format!("/v1/sessions/{}/ports/{port}/hello.txt", other.session.id);
    assert_get_refused(&w, &path, 502, "port_unreachable").await;
    let other_run = c
        .exec_json(
            &other.session.id,
            json!({ "argv": ["python3", "-c", format!("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('ESCAPED')\nexcept OSError: print('refused')")] }),
        )
        .await
        .unwrap();
    assert_eq!(other_run["stdout"], "refused\n");
    // Nothing listens there: a clear error.
    let path = format!("/v1/sessions/{s}/ports/{}/", port + 1);
    assert_get_refused(&w, &path, 502, "port_unreachable").await;
    let path = format!("/v1/sessions/{s}/ports/0/");
    assert_get_refused(&w, &path, 400, "invalid_path").await;
    // The server never saw the token.
    c.signal_process(&s, &server.id, SignalName::Sigint)
        .await
        .unwrap();
    c.process(&s, &server.id, Some(10.0)).await.unwrap();
    let log = c
        .process_output(&s, &server.id, &OutputQuery::default())
        .await
        .unwrap();
    assert!(
        !log.stderr.data.contains(TOKEN) && log.stderr.data.contains("GET /hello.txt?x=1"),
        "{}",
        log.stderr.data
    );
}

/// A WebSocket echo server in the jail (the standard library only), reached through the worker.
#[tokio::test]
async fn a_websocket_is_joined_through_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    write(c, &s, "/workspace/echo.py", WS_ECHO).await;
    let port = 19_000 + (std::process::id() % 1_000) as u16;
    c.exec_background(&s, &background(&format!("python3 echo.py {port}")))
        .await
        .unwrap();
    let address = w.url.trim_start_matches("http://").to_owned();
    let mut stream = None;
    for _ in 0..100 {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let handshake = format!(
            "GET /v1/sessions/{s}/ports/{port}/ws HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(handshake.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            if tcp.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        if head.starts_with("HTTP/1.1 101") {
            assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
            stream = Some(tcp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ws = stream.expect("the echo server answered the upgrade");
    for message in ["hello", "and again, longer: ünïcode"] {
        // A masked text frame, as a client sends.
        let payload = message.as_bytes();
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        ws.write_all(&frame).await.unwrap();
        let mut head = [0u8; 2];
        ws.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x81);
        let mut echoed = vec![0u8; (head[1] & 0x7f) as usize];
        ws.read_exact(&mut echoed).await.unwrap();
        assert_eq!(String::from_utf8(echoed).unwrap(), message);
    }
}

/// A minimal WebSocket echo server: the handshake, then unmasked echoes of text frames.
const WS_ECHO: &str = r#"
import base64, hashlib, socket, sys
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(4)
while True:
    conn, _ = server.accept()
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(1024)
    headers = dict(
        line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line
    )
    key = headers.get("Sec-WebSocket-Key", headers.get("sec-websocket-key", ""))
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    conn.sendall(
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()
    )
    while True:
        head = conn.recv(2)
        if len(head) < 2:
            break
        length = head[1] & 0x7F
        mask = conn.recv(4)
        data = b""
        while len(data) < length:
            data += conn.recv(length - len(data))
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        conn.sendall(bytes([0x81, len(payload)]) + payload)
"#;

/// A loopback HTTP server standing in for a package index: one wheel, `hearthdemo`.
struct PackageIndex {
    port: u16,
    _dir: tempfile::TempDir,
    server: std::process::Child,
}

impl PackageIndex {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let build = r#"
import os, sys, zipfile, hashlib, base64
root = sys.argv[1]
os.makedirs(os.path.join(root, "simple", "hearthdemo"))
wheel = "hearthdemo-1.0-py3-none-any.whl"
files = {
    "hearthdemo/__init__.py": "ANSWER = 42\n",
    "hearthdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hearthdemo\nVersion: 1.0\n",
    "hearthdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(os.path.join(root, "simple", "hearthdemo", wheel), "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text)}")
    record.append("hearthdemo-1.0.dist-info/RECORD,,")
    z.writestr("hearthdemo-1.0.dist-info/RECORD", "\n".join(record) + "\n")
with open(os.path.join(root, "simple", "hearthdemo", "index.html"), "w") as f:
    f.write(f'<a href="{wheel}">{wheel}</a>\n')
with open(os.path.join(root, "simple", "index.html"), "w") as f:
    f.write('<a href="hearthdemo/">hearthdemo</a>\n')
"#;
        let status = std::process::Command::new("python3")
            .args(["-c", build])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let server = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            _dir: dir,
            server,
        }
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// `pip install` from an index the operator allows works through the proxy; from a session
/// that narrowed its list to nothing it fails; and every refused class is refused.
#[tokio::test]
async fn pip_installs_through_the_egress_proxy_only_when_allowed() {
    let index = PackageIndex::start();
    let port = index.port;
    let w = Worker::start_with(|c| {
        c.egress.allow = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    })
    .await;
    let c = &w.client;
    let allowed = c.create_session(None).await.unwrap();
    let s = allowed.session.id.clone();
    assert_eq!(
        allowed.session.network.allow,
        vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")]
    );
    let pip = format!(
        "python3 -m pip install --disable-pip-version-check --no-cache-dir --target /tmp/site \
         --index-url http://127.0.0.1:{port}/simple hearthdemo && \
         PYTHONPATH=/tmp/site python3 -c 'import hearthdemo; print(hearthdemo.ANSWER)'"
    );
    let out = c
        .exec_json(&s, json!({ "command": pip, "timeout_s": 120 }))
        .await
        .unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().ends_with("42\n"), "{out}");
    let info = c.session(&s).await.unwrap();
    assert_eq!(info.network.proxy.as_deref(), Some("http://127.0.0.1:3128"));

    // Refused: a name resolving to loopback (the list names it, but only a literal address
    // may be non-public), and whatever is not on the list: private, link-local (the cloud
    // metadata address), other ports, the public internet.
    // A server on the host's loopback the list does not name: loopback not named is the
    // session's own, where nothing listens on that port (502), and the host's never accepts.
    let host_only = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host_only.set_nonblocking(true).unwrap();
    let other = host_only.local_addr().unwrap().port();
    let probe = format!(
        r#"import os, urllib.request
os.environ.pop('no_proxy', None); os.environ.pop('NO_PROXY', None)
for url in ['http://localhost:{port}/simple/', 'http://10.0.0.1/',
            'http://169.254.169.254/latest/meta-data/', 'http://192.168.1.1/',
            'http://127.0.0.1:{other}/', 'http://example.com/']:
    proxies = urllib.request.ProxyHandler({{'http': 'http://127.0.0.1:3128'}})
    try:
        urllib.request.build_opener(proxies).open(url, timeout=10); print('ESCAPED', url)
    except Exception as e: print('refused', getattr(e, 'code', e))
"#
    );
    let out = c
        .exec_json(&s, json!({ "argv": ["python3", "-c", probe] }))
        .await
        .unwrap();
    let said = out["stdout"].as_str().unwrap();
    assert!(!said.contains("ESCAPED"), "{said}");
    assert_eq!(said.matches("refused 403").count(), 5, "{out}");
    assert!(said.contains("refused 502"), "{said}");
    assert!(
        host_only.accept().is_err(),
        "the host's loopback was not reached"
    );
    // Around the proxy: nothing routes out of the namespace, and no UDP (DNS) or raw socket.
    let direct = format!(
        r#"import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('ESCAPED tcp')
except OSError as e: print('refused', e.errno)
for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
    try:
        socket.socket(socket.AF_INET, kind); print('ESCAPED', kind)
    except OSError as e: print('refused', e.errno)
"#
    );
    let out = c
        .exec_json(&s, json!({ "argv": ["python3", "-c", direct] }))
        .await
        .unwrap();
    let said = out["stdout"].as_str().unwrap();
    assert!(
        !said.contains("ESCAPED") && said.matches("refused").count() == 3,
        "{said}"
    );

    // A session that asked for nothing gets no proxy: pip fails.
    let closed = c
        .create_session_json(json!({ "network": { "allow": [] } }))
        .await
        .unwrap();
    assert!(closed.session.network.allow.is_empty());
    let out = c
        .exec_json(
            &closed.session.id,
            json!({ "command": format!("{pip} || echo FAILED"), "timeout_s": 120 }),
        )
        .await
        .unwrap();
    assert!(out["stdout"].as_str().unwrap().contains("FAILED"), "{out}");
    // A session cannot widen the operator's list.
    assert_client_error(
        c.create_session_json(json!({ "network": { "allow": ["pypi.org"] } }))
            .await,
        400,
        "invalid_network",
    );
    let narrowed = c
        .create_session_json(json!({ "network": { "allow": [format!("127.0.0.1:{port}")] } }))
        .await
        .unwrap();
    assert_eq!(
        narrowed.session.network.allow,
        vec![format!("127.0.0.1:{port}")]
    );
}

/// Without an `[egress]` list (the default) no session has a proxy, and none may ask for one.
#[tokio::test]
async fn no_egress_is_the_default() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap();
    assert!(s.session.network.allow.is_empty() && s.session.network.proxy.is_none());
    let out = c
        .exec_json(
            &s.session.id,
            json!({ "command": "env | grep -i proxy || echo none" }),
        )
        .await
        .unwrap();
    assert_eq!(out["stdout"], "none\n");
    assert_client_error(
        c.create_session_json(json!({ "network": { "allow": ["127.0.0.1:80"] } }))
            .await,
        400,
        "invalid_network",
    );
}

/// A graceful restart ends the background processes (they end with the worker) and says so.
#[tokio::test]
async fn background_processes_end_with_the_worker_and_are_reported_after_a_restart() {
    let w = Worker::start().await;
    let s = w
        .client
        .create_session(Some("keeps"))
        .await
        .unwrap()
        .session
        .id;
    let running = w
        .client
        .exec_background(&s, &background("sleep 600"))
        .await
        .unwrap();
    let done = w
        .client
        .exec_background(&s, &background("echo hi"))
        .await
        .unwrap();
    w.client.process(&s, &done.id, Some(10.0)).await.unwrap();
    let w = w.restart().await;
    let listed: Vec<Value> = w
        .client
        .processes(&s)
        .await
        .unwrap()
        .processes
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let by_id = |id: &str| listed.iter().find(|p| p["id"] == id).unwrap().clone();
    assert_eq!(by_id(&running.id)["state"], "exited", "{listed:?}");
    assert_eq!(by_id(&running.id)["signal"], 9);
    assert_eq!(by_id(&done.id)["exit_code"], 0);
    assert_eq!(by_id(&done.id)["stdout_bytes"], 3);
    // Ids are not reused.
    let next = w
        .client
        .exec_background(&s, &background("true"))
        .await
        .unwrap();
    assert_eq!(next.id, "p3");
}

/// Snapshots taken while a program rewrites a file hold it as it was at some moment, never a
/// mix and never a failure; the one after the run holds exactly what the program left.
#[tokio::test]
async fn snapshots_during_a_run_hold_a_moment_of_it_and_the_last_holds_its_end() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(Some("writer")).await.unwrap().session.id;
    let writer = "import os, time\n\
for i in range(1, 601):\n    with open('counter.txt.new', 'w') as f: f.write('%04d' % i)\n    os.replace('counter.txt.new', 'counter.txt')\n    with open('same.txt', 'w') as f: f.write('%04d' % i)\n    time.sleep(0.005)";
    let request = ExecRequest {
        argv: Some(vec!["python3".into(), "-c".into(), writer.into()]),
        ..ExecRequest::default()
    };
    let p = c.exec_background(&s, &request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let info = c.take_snapshot(&s).await.unwrap();
        assert!(info.files >= 2, "{info:?}");
        assert!(
            c.session(&s).await.unwrap().snapshot.pending,
            "the run goes on"
        );
    }
    let ended = c.process(&s, &p.id, Some(30.0)).await.unwrap();
    assert_eq!(ended.exit_code, Some(0));
    let last = c.take_snapshot(&s).await.unwrap();
    let copy = c
        .create_session_json(json!({ "id": "copy", "from_snapshot": last.id }))
        .await
        .unwrap();
    for file in ["counter.txt", "same.txt"] {
        let read = c
            .call_tool(
                &copy.session.id,
                "read_file",
                json!({ "file_path": format!("/workspace/{file}") }),
            )
            .await
            .unwrap();
        assert!(read.to_string().contains("0600"), "{file}: {read}");
    }
    assert!(!c.session(&s).await.unwrap().snapshot.pending);
}

/// The proxy adds the operator's credential to a plain-HTTP request for its service: the
/// service sees it, the program never does (not in its environment, not in what it sent).
#[tokio::test]
async fn the_proxy_adds_an_operator_credential_the_program_never_sees() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    // Answers 200 "authorized" only with the secret, and says which headers it got.
    let service = format!(
        r#"import http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get('X-Index-Token') == 'sesame-7f3a'
        body = (b'authorized' if ok else b'refused') + b' from:' + (self.headers.get('X-From') or '').encode()
        self.send_response(200 if ok else 401)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer(('127.0.0.1', {port}), Handler).serve_forever()
"#
    );
    let mut server = std::process::Command::new("python3")
        .args(["-c", &service])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let w = Worker::start_with(|c| {
        c.egress.allow = vec![format!("127.0.0.1:{port}")];
        c.egress.credentials = vec![hearth::network::EgressCredential {
            host: "127.0.0.1".into(),
            port: Some(port),
            header: "X-Index-Token".into(),
            value: Some("sesame-7f3a".into()),
            value_env: None,
            tls: false,
        }];
    })
    .await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let program = format!(
        r#"import os, urllib.request
request = urllib.request.Request('http://127.0.0.1:{port}/simple/', headers={{'X-Index-Token': 'forged', 'X-From': 'program'}})
print(urllib.request.urlopen(request, timeout=10).read().decode())
print('secret in env' if any('sesame' in v for v in os.environ.values()) else 'env clean')
"#
    );
    let out = w
        .client
        .exec_json(&s, json!({ "argv": ["python3", "-c", program] }))
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        out["stdout"], "authorized from:program\nenv clean\n",
        "{out}"
    );
}
