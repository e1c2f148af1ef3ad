//! Load benchmark of a real `hearth serve` process over loopback HTTP.
//!
//! Prints, as Markdown: session-create latency; per-call latency at concurrency 1 for
//! `write_file` (1 KiB), `read_file` and `edit_file`; and throughput at concurrency 64 for a
//! mixed read/write/edit workload (each client its own session), with the error count.
//!
//! Run: `cargo bench -p hearth --bench load`.
//! `HEARTH_BENCH_DIR` puts the worker's data dir elsewhere (default: the system temp dir);
//! `HEARTH_BENCH_CALLS` sets the calls per measurement (default 3000 at c=1, 64×300 at c=64).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "bench-token";
const CONCURRENCY: usize = 64;

fn main() {
    let calls: usize = std::env::var("HEARTH_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let data = match std::env::var_os("HEARTH_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let (mut server, addr) = start_worker(data.path());
    println!("worker data dir: {}\n", data.path().display());
    println!("| measurement | p50 | p99 | calls | errors | throughput |");
    println!("|---|---|---|---|---|---|");

    let mut conn = Conn::open(&addr);
    let session = conn.create_session().unwrap();
    for _ in 0..200 {
        conn.tool(
            &session,
            "write_file",
            &json!({ "file_path": "/workspace/warm.txt", "content": "x" }),
        );
    }

    let mut create = Vec::new();
    let mut create_errors = 0;
    for _ in 0..500.min(calls) {
        let started = Instant::now();
        create_errors += usize::from(conn.create_session().is_none());
        create.push(started.elapsed());
    }
    report(
        "POST /v1/sessions (new session ready), c=1",
        create,
        create_errors,
        None,
    );

    let kib = "x".repeat(1023) + "\n";
    let write = json!({ "file_path": "/workspace/one-kib.txt", "content": kib });
    let (lat, errors, elapsed) = sequential(&mut conn, calls, &session, "write_file", &write);
    report("write_file 1 KiB, c=1", lat, errors, Some(elapsed));
    let read = json!({ "file_path": "/workspace/one-kib.txt" });
    let (lat, errors, elapsed) = sequential(&mut conn, calls, &session, "read_file", &read);
    report("read_file 1 KiB, c=1", lat, errors, Some(elapsed));
    conn.tool(
        &session,
        "write_file",
        &json!({ "file_path": "/workspace/edit.txt", "content": "value = 0\n" }),
    );
    let mut edit_lat = Vec::new();
    let mut edit_errors = 0;
    let started = Instant::now();
    for i in 0..calls {
        let args = json!({
            "file_path": "/workspace/edit.txt",
            "old_string": format!("value = {i}"),
            "new_string": format!("value = {}", i + 1),
        });
        let (ok, took) = conn.tool(&session, "edit_file", &args);
        edit_errors += usize::from(!ok);
        edit_lat.push(took);
    }
    report(
        "edit_file, c=1",
        edit_lat,
        edit_errors,
        Some(started.elapsed()),
    );

    let per_client = calls.div_ceil(10).max(100);
    let (lat, errors, elapsed) = mixed(&addr, CONCURRENCY, per_client);
    report(
        &format!("mixed read/write/edit, c={CONCURRENCY}, a session per client"),
        lat,
        errors,
        Some(elapsed),
    );

    let _ = server.kill();
    let _ = server.wait();
}

/// Starts the release `hearth serve` on a free loopback port.
fn start_worker(data_dir: &std::path::Path) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_clear()
        .env("HEARTH_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("hearth listening on http://")
        .to_owned();
    (server, addr)
}

/// A minimal HTTP/1.1 keep-alive client on a blocking socket, so the load generator costs the
/// shared two cores as little as possible (no client-side async runtime, no extra threads).
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Sends a POST with a JSON body; returns the status and body.
    fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, body)
    }

    fn create_session(&mut self) -> Option<String> {
        let (status, body) = self.post("/v1/sessions", b"{}");
        let value: Value = serde_json::from_slice(&body).ok()?;
        (status == 201)
            .then(|| value["id"].as_str().map(str::to_owned))
            .flatten()
    }

    /// One tool call; (succeeded, latency).
    fn tool(&mut self, session: &str, tool: &str, args: &Value) -> (bool, Duration) {
        let body = serde_json::to_vec(args).unwrap();
        let started = Instant::now();
        let (status, _) = self.post(&format!("/v1/sessions/{session}/tools/{tool}"), &body);
        (status == 200, started.elapsed())
    }
}

fn sequential(
    conn: &mut Conn,
    calls: usize,
    session: &str,
    tool: &str,
    args: &Value,
) -> (Vec<Duration>, usize, Duration) {
    let mut latencies = Vec::with_capacity(calls);
    let mut errors = 0;
    let started = Instant::now();
    for _ in 0..calls {
        let (ok, took) = conn.tool(session, tool, args);
        errors += usize::from(!ok);
        latencies.push(took);
    }
    (latencies, errors, started.elapsed())
}

/// `clients` threads, each with its own connection and session, cycling read → edit → write
/// over four files.
fn mixed(addr: &str, clients: usize, per_client: usize) -> (Vec<Duration>, usize, Duration) {
    let mut prepared = Vec::new();
    for _ in 0..clients {
        let mut conn = Conn::open(addr);
        let session = conn.create_session().unwrap();
        for f in 0..4 {
            conn.tool(
                &session,
                "write_file",
                &json!({ "file_path": format!("/workspace/f{f}.txt"), "content": "counter: 0\n" }),
            );
        }
        prepared.push((conn, session));
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = prepared
        .into_iter()
        .map(|(mut conn, session)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(per_client);
                let mut errors = 0;
                let mut counters = [0u64; 4];
                let kib = "y".repeat(1024);
                barrier.wait();
                for i in 0..per_client {
                    let f = i % 4;
                    let path = format!("/workspace/f{f}.txt");
                    let (ok, took) = match i % 3 {
                        0 => conn.tool(&session, "read_file", &json!({ "file_path": path })),
                        1 => {
                            let old = format!("counter: {}", counters[f]);
                            counters[f] += 1;
                            let new = format!("counter: {}", counters[f]);
                            conn.tool(
                                &session,
                                "edit_file",
                                &json!({ "file_path": path, "old_string": old, "new_string": new }),
                            )
                        }
                        _ => {
                            let content = format!("counter: {}\n{kib}\n", counters[f]);
                            conn.tool(
                                &session,
                                "write_file",
                                &json!({ "file_path": path, "content": content }),
                            )
                        }
                    };
                    errors += usize::from(!ok);
                    latencies.push(took);
                }
                (latencies, errors)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for thread in threads {
        let (latencies, e) = thread.join().unwrap();
        all.extend(latencies);
        errors += e;
    }
    (all, errors, started.elapsed())
}

fn report(name: &str, mut latencies: Vec<Duration>, errors: usize, elapsed: Option<Duration>) {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let rate = elapsed
        .map(|e| format!("{:.0} calls/s", latencies.len() as f64 / e.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "| {name} | {} | {} | {} | {errors} | {rate} |",
        micros(pick(0.50)),
        micros(pick(0.99)),
        latencies.len()
    );
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}
