//! A fleet of release workers on one store (a local directory both share), each figure beside
//! its peer in the same run:
//!
//! - a tool call forwarded by another worker's door beside the same call made directly to the
//!   session's owner (interleaved, same session);
//! - the store requests leases cost per second, at 10 and at 1,000 sessions on the owner (they
//!   should not differ: a lease is per worker);
//! - takeover: from SIGKILL of the owner to the first call another door answers (bounded by
//!   the lease's lifetime), and from SIGTERM (a drain, which releases the lease) to the same.
//!
//! Run: `cargo bench -p hearth --bench fleet`.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use std::time::{Duration, Instant};

use common::{BenchDir, Conn, report, start_worker};
use serde_json::json;

const CALLS: usize = 2_000;
const LEASE_TTL_S: f64 = 2.0;
const LEASE_RENEW_S: f64 = 0.5;
const WINDOW: Duration = Duration::from_secs(10);

fn config(store: &std::path::Path, worker: &str) -> String {
    format!(
        "worker_id = \"{worker}\"\n[http]\nrate_per_s = 0\n[quota]\nenabled = false\n\
         [snapshots]\nstore_url = \"file://{}\"\nauto_delay_s = 0\n\
         [fleet]\nadvertise_url = \"http://127.0.0.1:0\"\nlease_ttl_s = {LEASE_TTL_S}\n\
         lease_renew_s = {LEASE_RENEW_S}\n",
        store.display()
    )
}

/// A counter of the worker's `/metrics`.
fn counter(conn: &mut Conn, name: &str) -> f64 {
    let (_, body) = conn.request("GET", "/metrics", b"");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Lease store requests per second, on both workers together, over `WINDOW`.
fn lease_rate(a: &mut Conn, b: &mut Conn) -> f64 {
    let name = "hearth_fleet_lease_store_requests_total";
    let before = counter(a, name) + counter(b, name);
    std::thread::sleep(WINDOW);
    (counter(a, name) + counter(b, name) - before) / WINDOW.as_secs_f64()
}

/// Time from `since` to the first read of `session` that `door` answers.
fn first_answer(door: &str, session: &str, since: Instant) -> Duration {
    let args = json!({ "file_path": "/workspace/f.txt" });
    loop {
        let mut conn = Conn::open(door);
        if conn.tool(session, "read_file", &args).0 {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(60), "no takeover");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let base = BenchDir::new();
    let store = base.path().join("store");
    let dirs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|w| {
            let dir = base.path().join(w);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        })
        .collect();
    let (mut a, a_addr) = start_worker(&dirs[0], &config(&store, "a"));
    let (mut b, b_addr) = start_worker(&dirs[1], &config(&store, "b"));
    let (mut direct, mut forwarded) = (Conn::open(&a_addr), Conn::open(&b_addr));
    let session = direct.create_session().unwrap();
    let write = json!({ "file_path": "/workspace/f.txt", "content": "x".repeat(1024) });
    assert!(direct.tool(&session, "write_file", &write).0);

    println!("| call | p50 | p99 | calls | errors | rate |\n|---|---|---|---|---|---|");
    let read = json!({ "file_path": "/workspace/f.txt" });
    for _ in 0..200 {
        direct.tool(&session, "read_file", &read);
        forwarded.tool(&session, "read_file", &read);
    }
    let (mut near, mut far, mut errors) = (Vec::new(), Vec::new(), (0, 0));
    for _ in 0..CALLS {
        let (ok, t) = direct.tool(&session, "read_file", &read);
        errors.0 += usize::from(!ok);
        near.push(t);
        let (ok, t) = forwarded.tool(&session, "read_file", &read);
        errors.1 += usize::from(!ok);
        far.push(t);
    }
    report("read_file 1 KiB, direct to the owner", near, errors.0, None);
    report(
        "read_file 1 KiB, forwarded by another worker",
        far,
        errors.1,
        None,
    );

    for _ in 1..10 {
        direct.create_session().unwrap();
    }
    let at_10 = lease_rate(&mut direct, &mut forwarded);
    let started = Instant::now();
    for _ in 10..1_000 {
        direct.create_session().unwrap();
    }
    let created = started.elapsed();
    let at_1000 = lease_rate(&mut direct, &mut forwarded);
    println!(
        "\nlease store requests/s, two workers (renewal every {LEASE_RENEW_S} s): \
         {at_10:.2} at 10 sessions, {at_1000:.2} at 1,000 sessions \
         (990 sessions created in {:.1} s)",
        created.as_secs_f64()
    );

    // SIGKILL the owner: the next call through b waits for the lease to lapse, then b takes
    // the session over from its last snapshot (a crash keeps what a snapshot holds).
    let (status, _) = direct.post(&format!("/v1/sessions/{session}/snapshots"), b"{}");
    assert_eq!(status, 201);
    std::process::Command::new("kill")
        .args(["-KILL", &a.id().to_string()])
        .status()
        .unwrap();
    a.wait().unwrap();
    let killed = Instant::now();
    let after_kill = first_answer(&b_addr, &session, killed);

    // A drain releases the lease: a third worker's session is taken over at once.
    let (mut c, c_addr) = start_worker(&dirs[2], &config(&store, "c"));
    let mut on_c = Conn::open(&c_addr);
    let drained = on_c.create_session().unwrap();
    assert!(on_c.tool(&drained, "write_file", &write).0);
    drop(on_c);
    let sent = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    c.wait().unwrap();
    let exited = sent.elapsed();
    let after_drain = first_answer(&b_addr, &drained, sent);
    println!(
        "takeover: SIGKILL → first answer through another worker {:.0} ms (lease lifetime \
         {LEASE_TTL_S} s); SIGTERM → first answer {:.0} ms (the drain took {:.0} ms)",
        after_kill.as_secs_f64() * 1e3,
        after_drain.as_secs_f64() * 1e3,
        exited.as_secs_f64() * 1e3,
    );
    let _ = b.kill();
}
