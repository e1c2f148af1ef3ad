//! What quotas cost, and what memory the worker needs for a large workspace.
//!
//! Two release workers on the same disk, one with quotas on (each session on its own volume)
//! and one with them off (plain directories), measured in alternating rounds so both see the
//! same machine: session creates (paced, so the pool of ready volumes serves them, and in a
//! burst that empties it), `write_file` of 1 KiB and 1 MiB, and `exec` of `true` and of a
//! program that writes 64 MiB. Then, on the quota worker, one session with 1 GiB of
//! incompressible files is snapshotted, exported and restored, and the worker's peak RSS above
//! its resting RSS is printed for each (the kernel's high-water mark, reset before each step).
//!
//! Run (as root): `cargo bench -p hearth --bench storage`. `HEARTH_BENCH_DIR` puts the data dirs
//! elsewhere (default: the system temp dir); `HEARTH_BENCH_MIB` sizes the large workspace
//! (default 1024); `HEARTH_BENCH_SNAPSHOT_MIB` sets `snapshots.memory_mib` (default 32).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{BenchDir, Conn, micros, start_worker};
use serde_json::{Value, json};

const ROUNDS: usize = 3;
const NO_RATE_LIMIT: &str = "[http]\nrate_per_s = 0\n";

fn main() {
    let base = BenchDir::new();
    let large_mib: u64 = std::env::var("HEARTH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let on_dir = base.path().join("quotas-on");
    let off_dir = base.path().join("quotas-off");
    std::fs::create_dir(&on_dir).unwrap();
    std::fs::create_dir(&off_dir).unwrap();
    let mut on_config = format!(
        "{NO_RATE_LIMIT}[quota]\nmax_bytes_mib = {}\n",
        large_mib * 3
    );
    if let Ok(mib) = std::env::var("HEARTH_BENCH_SNAPSHOT_MIB") {
        on_config.push_str(&format!("[snapshots]\nmemory_mib = {mib}\n"));
    }
    let (on_server, on_addr) = start_worker(&on_dir, &on_config);
    let (off_server, off_addr) = start_worker(
        &off_dir,
        &format!("{NO_RATE_LIMIT}[quota]\nenabled = false\n"),
    );
    println!("data dirs under {}\n", base.path().display());

    let mut on = Side::new(&on_addr);
    let mut off = Side::new(&off_addr);
    for _ in 0..ROUNDS {
        for side in [&mut on, &mut off] {
            side.round();
        }
    }
    println!("| measurement | quotas on p50 | p99 | quotas off p50 | p99 | on / off (p50) |");
    println!("|---|---|---|---|---|---|");
    for (name, on_lat) in &mut on.figures {
        let off_lat = &mut off.figures.iter_mut().find(|(n, _)| n == name).unwrap().1;
        let (on50, on99) = percentiles(on_lat);
        let (off50, off99) = percentiles(off_lat);
        println!(
            "| {name} | {} | {} | {} | {} | {:.2}× |",
            micros(on50),
            micros(on99),
            micros(off50),
            micros(off99),
            on50.as_secs_f64() / off50.as_secs_f64()
        );
    }
    println!();
    large_workspace(&on_addr, &on_server, large_mib);
    for mut server in [on_server, off_server] {
        let _ = server.kill();
        let _ = server.wait();
    }
    hearth_volume::unmount_all_under(base.path());
}

/// One worker's measurements, accumulated over the rounds.
struct Side {
    conn: Conn,
    session: String,
    figures: Vec<(String, Vec<Duration>)>,
}

impl Side {
    fn new(addr: &str) -> Self {
        let mut conn = Conn::open(addr);
        let session = conn.create_session().unwrap();
        Self {
            conn,
            session,
            figures: Vec::new(),
        }
    }

    fn record(&mut self, name: &str, latency: Duration) {
        match self.figures.iter_mut().find(|(n, _)| n == name) {
            Some((_, all)) => all.push(latency),
            None => self.figures.push((name.to_owned(), vec![latency])),
        }
    }

    fn round(&mut self) {
        // Creates: paced (a busy controller: one every 100 ms), then a burst.
        let mut made = Vec::new();
        for (name, count, pause) in [
            (
                "POST /v1/sessions, one every 100 ms",
                10,
                Duration::from_millis(100),
            ),
            ("POST /v1/sessions, a burst of 30", 30, Duration::ZERO),
        ] {
            for _ in 0..count {
                std::thread::sleep(pause);
                let started = Instant::now();
                let id = self.conn.create_session().unwrap();
                self.record(name, started.elapsed());
                made.push(id);
            }
        }
        for id in made {
            let (status, _) = self
                .conn
                .request("DELETE", &format!("/v1/sessions/{id}"), b"");
            assert_eq!(status, 200);
        }
        // Let the pool refill before the writes are measured.
        std::thread::sleep(Duration::from_secs(2));
        let session = self.session.clone();
        for (name, size, calls) in [
            ("write_file 1 KiB, c=1", 1024, 1000),
            ("write_file 1 MiB, c=1", 1 << 20, 60),
        ] {
            let args = json!({ "file_path": "/workspace/w.txt", "content": "x".repeat(size) });
            for _ in 0..calls {
                let (ok, took) = self.conn.tool(&session, "write_file", &args);
                assert!(ok, "{name}");
                self.record(name, took);
            }
        }
        for (name, command, runs) in [
            ("exec `true`", "true", 30),
            (
                "exec writing 64 MiB (then removing it)",
                "head -c 67108864 /dev/zero > /tmp/f && rm /tmp/f",
                8,
            ),
        ] {
            for _ in 0..runs {
                let (answer, took) = exec(&mut self.conn, &session, command);
                assert_eq!(answer["exit_code"], 0, "{answer}");
                self.record(name, took);
            }
        }
    }
}

fn exec(conn: &mut Conn, session: &str, command: &str) -> (Value, Duration) {
    let body = serde_json::to_vec(&json!({ "command": command, "timeout_s": 0 })).unwrap();
    let started = Instant::now();
    let (status, answer) = conn.post(&format!("/v1/sessions/{session}/exec"), &body);
    let took = started.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    (serde_json::from_slice(&answer).unwrap(), took)
}

fn percentiles(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (pick(0.5), pick(0.99))
}

/// One measured step: what it does on a connection, returning the bytes it moved.
type Step<'a> = Box<dyn FnOnce(&mut Conn) -> u64 + 'a>;

/// Snapshot, export and restore of a session holding `mib` MiB of incompressible files, with
/// the worker's peak RSS during each.
fn large_workspace(addr: &str, server: &Child, mib: u64) {
    let pid = server.id();
    let mut conn = Conn::open(addr);
    let quota = json!({ "quota": { "bytes": (mib * 2) << 20 } });
    let (status, body) = conn.post("/v1/sessions", &serde_json::to_vec(&quota).unwrap());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let session = serde_json::from_slice::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let files = mib.div_ceil(64);
    let (answer, took) = exec(
        &mut conn,
        &session,
        &format!(
            "for i in $(seq {files}); do head -c 67108864 /dev/urandom > /workspace/noise-$i.bin || exit 1; done"
        ),
    );
    assert_eq!(answer["exit_code"], 0, "{answer}");
    println!(
        "A session with {files} files of 64 MiB of random bytes ({} MiB, written in {:.1} s). \
         The worker rests at {} MiB RSS.\n",
        files * 64,
        took.as_secs_f64(),
        rss_mib(pid, "VmRSS")
    );
    println!("| step | took | bytes moved | worker peak RSS | above resting |");
    println!("|---|---|---|---|---|");
    let steps: [(&str, Step); 3] = [
        (
            "snapshot (to the local store)",
            Box::new(|c: &mut Conn| {
                let (status, body) = c.post(&format!("/v1/sessions/{session}/snapshots"), b"{}");
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                serde_json::from_slice::<Value>(&body).unwrap()["uploaded_bytes"]
                    .as_u64()
                    .unwrap_or(0)
            }),
        ),
        (
            "export (`.tar.zst` streamed to the client)",
            Box::new(|c: &mut Conn| {
                c.received = 0;
                let (status, _) = c.request("GET", &format!("/v1/sessions/{session}/export"), b"");
                assert_eq!(status, 200);
                c.received
            }),
        ),
        (
            "restore (into a new session)",
            Box::new(|c: &mut Conn| {
                let request =
                    json!({ "from_snapshot": session, "quota": { "bytes": (mib * 2) << 20 } });
                let (status, body) = c.post("/v1/sessions", &serde_json::to_vec(&request).unwrap());
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                mib << 20
            }),
        ),
    ];
    for (name, step) in steps {
        let resting = rss_mib(pid, "VmRSS");
        // Writing 5 resets the process's peak RSS (VmHWM) to its current RSS.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let started = Instant::now();
        let moved = step(&mut conn);
        let took = started.elapsed();
        let peak = rss_mib(pid, "VmHWM");
        println!(
            "| {name} | {:.1} s | {} MiB | {peak} MiB | +{} MiB |",
            took.as_secs_f64(),
            moved >> 20,
            peak.saturating_sub(resting)
        );
    }
}

/// A line of `/proc/<pid>/status` in MiB.
fn rss_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        >> 10
}
