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

mod common;

use std::time::{Duration, Instant};

use common::{BenchDir, Conn, report, start_worker};
use serde_json::{Value, json};

const CONCURRENCY: usize = 64;

fn main() {
    let calls: usize = std::env::var("HEARTH_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let data = BenchDir::new();
    // The load generator is one noisy controller on purpose: no rate limit.
    let (mut server, addr) = start_worker(data.path(), "[http]\nrate_per_s = 0\n");
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
