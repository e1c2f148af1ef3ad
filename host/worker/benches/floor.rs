//! Hearth against its floor (issue 19): `write_file` of 1 KiB through the same HTTP route, once
//! run by the `write_file` component and once done natively in the worker's process
//! (`src/floor.rs`), on the same disk in the same run.
//!
//! Two workers from one binary (built with the `bench-floor` feature); the second is started
//! with `HEARTH_BENCH_FLOOR=1`. Rounds alternate between them. Rows:
//! - c=1: one session, one connection, `CALLS` writes; p50 and calls/s.
//! - c=64: 64 clients, each with its own connection and session, `PER_CLIENT` writes each over
//!   four files; calls/s over the whole round.
//! - c=1 and c=64, the worker's CPU per call: its user and system time over those rounds (from
//!   `/proc`) divided by their calls. Throughput on this VM swings with its neighbours (the
//!   same binary has measured 0.57× and 0.73× in successive runs); the CPU a call costs the
//!   worker is the steadier view of Hearth's own cost.
//!
//! Run (as root): `cargo bench -p hearth --features bench-floor --bench floor` (sessions on their
//! ext4 volumes, whose images live in the system temp dir), and with `HEARTH_BENCH_DIR=/dev/shm`
//! (the images on tmpfs).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{BenchDir, Conn, micros, start_worker_with_env};
use serde_json::json;

const ROUNDS: usize = 9;
const CALLS: usize = 1_000;
const CLIENTS: usize = 64;
const PER_CLIENT: usize = 100;
const CALLS_IN_ALL_ROUNDS: u32 = (ROUNDS * CALLS) as u32;
const C64_CALLS_IN_ALL_ROUNDS: u32 = (ROUNDS * CLIENTS * PER_CLIENT) as u32;
const CONFIG: &str = "[http]\nrate_per_s = 0\n";

fn main() {
    let base = BenchDir::new();
    let mut sides = [
        Side::start(base.path(), "Hearth", &[]),
        Side::start(base.path(), "floor", &[("HEARTH_BENCH_FLOOR", "1")]),
    ];
    println!("data dirs under {}\n", base.path().display());
    for side in &mut sides {
        side.prepare();
    }
    for _ in 0..ROUNDS {
        for side in &mut sides {
            side.round();
        }
    }
    let [hearth, floor] = &mut sides;
    println!("| write_file 1 KiB | Hearth | floor | Hearth / floor |");
    println!("|---|---|---|---|");
    let (h, f) = (median(&mut hearth.c1_p50), median(&mut floor.c1_p50));
    println!(
        "| c=1, p50 | {} | {} | {:.2}× the time |",
        micros(h),
        micros(f),
        h.as_secs_f64() / f.as_secs_f64()
    );
    for (name, h, f) in [
        ("c=1, throughput", &mut hearth.c1_rate, &mut floor.c1_rate),
        (
            "c=64 over 64 sessions, throughput",
            &mut hearth.c64_rate,
            &mut floor.c64_rate,
        ),
    ] {
        let (h, f) = (median_f(h), median_f(f));
        println!(
            "| {name} | {h:.0} calls/s | {f:.0} calls/s | **{:.2}×** |",
            h / f
        );
    }
    for (name, h, f) in [
        (
            "c=1",
            hearth.c1_cpu / CALLS_IN_ALL_ROUNDS,
            floor.c1_cpu / CALLS_IN_ALL_ROUNDS,
        ),
        (
            "c=64",
            hearth.c64_cpu / C64_CALLS_IN_ALL_ROUNDS,
            floor.c64_cpu / C64_CALLS_IN_ALL_ROUNDS,
        ),
    ] {
        println!(
            "| {name}, worker CPU per call | {} | {} | {:.2}× the CPU |",
            micros(h),
            micros(f),
            h.as_secs_f64() / f.as_secs_f64()
        );
    }
    println!(
        "\n(medians of {ROUNDS} alternating rounds; errors: Hearth {}, floor {})",
        hearth.errors, floor.errors
    );
}

/// One worker and what was measured on it.
struct Side {
    server: Child,
    addr: String,
    /// One session for c=1, and one per client for c=64.
    single: String,
    many: Vec<String>,
    c1_p50: Vec<Duration>,
    c1_rate: Vec<f64>,
    c64_rate: Vec<f64>,
    /// The worker's CPU time over all c=1 rounds, and over all c=64 rounds.
    c1_cpu: Duration,
    c64_cpu: Duration,
    errors: usize,
}

impl Side {
    fn start(base: &std::path::Path, name: &str, env: &[(&str, &str)]) -> Self {
        let dir = base.join(name);
        std::fs::create_dir(&dir).unwrap();
        let (server, addr) = start_worker_with_env(&dir, CONFIG, env);
        Self {
            server,
            addr,
            single: String::new(),
            many: Vec::new(),
            c1_p50: Vec::new(),
            c1_rate: Vec::new(),
            c64_rate: Vec::new(),
            c1_cpu: Duration::ZERO,
            c64_cpu: Duration::ZERO,
            errors: 0,
        }
    }

    /// Sessions made once, outside the timed rounds.
    fn prepare(&mut self) {
        self.single = Conn::open(&self.addr).create_session().unwrap();
        let mut conn = Conn::open(&self.addr);
        for _ in 0..CLIENTS {
            self.many.push(conn.create_session().unwrap());
        }
    }

    fn round(&mut self) {
        let content = "x".repeat(1023) + "\n";
        let mut conn = Conn::open(&self.addr);
        let mut latencies = Vec::with_capacity(CALLS);
        let cpu_before = self.cpu_time();
        let started = Instant::now();
        for i in 0..CALLS {
            let args =
                json!({ "file_path": format!("/workspace/f{}.txt", i % 4), "content": content });
            let (ok, took) = conn.tool(&self.single, "write_file", &args);
            self.errors += usize::from(!ok);
            latencies.push(took);
        }
        self.c1_rate
            .push(CALLS as f64 / started.elapsed().as_secs_f64());
        self.c1_p50.push(median(&mut latencies));
        self.c1_cpu += self.cpu_time() - cpu_before;

        // Connections are made afresh each round: kept across the other worker's rounds, they
        // would idle past the worker's header timeout on a slow minute and be closed.
        let clients: Vec<_> = (self.many.iter().cloned())
            .map(|session| (Conn::open(&self.addr), session))
            .collect();
        let cpu_before = self.cpu_time();
        let started = Instant::now();
        let handles: Vec<_> = clients
            .into_iter()
            .map(|(mut conn, session)| {
                let content = content.clone();
                std::thread::spawn(move || {
                    let mut errors = 0;
                    for i in 0..PER_CLIENT {
                        let path = format!("/workspace/f{}.txt", i % 4);
                        let args = json!({ "file_path": path, "content": content });
                        errors += usize::from(!conn.tool(&session, "write_file", &args).0);
                    }
                    errors
                })
            })
            .collect();
        for handle in handles {
            self.errors += handle.join().unwrap();
        }
        self.c64_rate
            .push((CLIENTS * PER_CLIENT) as f64 / started.elapsed().as_secs_f64());
        self.c64_cpu += self.cpu_time() - cpu_before;
    }

    /// The worker's user and system time so far, all its threads (`/proc/<pid>/stat`), in the
    /// kernel's `USER_HZ` ticks: 100 a second on x86-64 and arm64, whatever the kernel's own
    /// tick rate.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.server.id())).unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

fn median_f(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values[values.len() / 2]
}
