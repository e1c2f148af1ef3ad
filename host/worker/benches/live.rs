//! A session that lives, measured on one release worker, each figure beside its floor in the
//! same run:
//!
//! - starting a background process (`exec` with `background`, answered 202) beside running
//!   `true` in the foreground;
//! - reading a background process's output through its cursors beside fetching the same bytes
//!   from a loopback HTTP server;
//! - a request to a server in the session through the worker's port route beside the same
//!   request straight to the same server program on the host's loopback;
//! - a program's request through the session's egress proxy beside the same request to a server
//!   in its own network (no proxy), from inside the jail.
//!
//! Run: `cargo bench -p hearth --bench live`.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use std::time::{Duration, Instant};

use common::{BenchDir, Conn, report, start_worker};
use serde_json::{Value, json};

const STARTS: usize = 100;
const REQUESTS: usize = 500;
const OUTPUT_MIB: usize = 32;

fn main() {
    let base = BenchDir::new();
    let site = base.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("small.txt"), "x".repeat(1024)).unwrap();
    std::fs::write(site.join("big.txt"), "x".repeat(OUTPUT_MIB << 20)).unwrap();
    let host_port = free_port();
    let mut host_server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &host_port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&site)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let config = format!(
        "[http]\nrate_per_s = 0\n[exec]\nbackground_output_bytes = {}\nmax_background = 200\n[egress]\nallow = [\"127.0.0.1:{host_port}\"]\n",
        (OUTPUT_MIB + 1) << 20
    );
    let data = base.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (mut worker, addr) = start_worker(&data, &config);
    let mut api = Conn::open(&addr);
    let session = api.create_session().unwrap();
    let write = json!({ "file_path": "/workspace/site/small.txt", "content": "x".repeat(1024) });
    assert!(api.tool(&session, "write_file", &write).0);
    wait_for(host_port);

    println!(
        "\n| background processes ({STARTS} each, alternating) | p50 | p99 | runs | errors | |\n|---|---|---|---|---|---|"
    );
    let exec = format!("/v1/sessions/{session}/exec");
    let (mut background, mut foreground) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let started = Instant::now();
        let (status, _) = api.post(&exec, br#"{"command": "true", "background": true}"#);
        background.push(started.elapsed());
        assert_eq!(status, 202);
        let started = Instant::now();
        let (status, _) = api.post(&exec, br#"{"command": "true"}"#);
        foreground.push(started.elapsed());
        assert_eq!(status, 200);
    }
    report(
        "start in the background (answered at once)",
        background,
        0,
        None,
    );
    report(
        "run `true` in the foreground (the floor: one jail)",
        foreground,
        0,
        None,
    );

    // Output: 32 MiB written, then read from the cursors, 1 MiB a read.
    let (status, body) = api.post(
        &exec,
        format!(
            r#"{{"command": "head -c {} /dev/zero | tr '\\0' x", "background": true}}"#,
            OUTPUT_MIB << 20
        )
        .as_bytes(),
    );
    assert_eq!(status, 202);
    let id = json_of(&body)["id"].as_str().unwrap().to_owned();
    let process = format!("/v1/sessions/{session}/processes/{id}");
    let (status, _) = api.request("GET", &format!("{process}?wait_s=30"), b"");
    assert_eq!(status, 200);
    let started = Instant::now();
    let (mut cursor, mut read) = (0u64, 0u64);
    loop {
        let (status, body) = api.request(
            "GET",
            &format!("{process}/output?stdout={cursor}&stderr=0"),
            b"",
        );
        assert_eq!(status, 200);
        let answer = json_of(&body);
        read += answer["stdout"]["data"].as_str().unwrap().len() as u64;
        cursor = answer["stdout"]["next"].as_u64().unwrap();
        if answer["stdout"]["eof"] == true {
            break;
        }
    }
    let through_api = started.elapsed();
    assert_eq!(read, (OUTPUT_MIB << 20) as u64);
    let started = Instant::now();
    let (status, big) =
        Conn::open(&format!("127.0.0.1:{host_port}")).request("GET", "/big.txt", b"");
    let direct = started.elapsed();
    assert_eq!((status, big.len()), (200, OUTPUT_MIB << 20));
    let rate = |d: Duration| {
        format!(
            "{:.0} MB/s",
            (OUTPUT_MIB << 20) as f64 / d.as_secs_f64() / 1e6
        )
    };
    println!("\n| reading {OUTPUT_MIB} MiB of output | time | throughput |\n|---|---|---|");
    println!(
        "| from a background process's cursors, 1 MiB a read | {:.0} ms | {} |",
        through_api.as_secs_f64() * 1e3,
        rate(through_api)
    );
    println!(
        "| the same bytes from a loopback HTTP server (floor) | {:.0} ms | {} |",
        direct.as_secs_f64() * 1e3,
        rate(direct)
    );

    // Ports: the same server program, in the session and on the host.
    let session_port = 18_080;
    let (status, _) = api.post(
        &exec,
        format!(r#"{{"command": "cd site && exec python3 -m http.server {session_port} --bind 127.0.0.1", "background": true}}"#).as_bytes(),
    );
    assert_eq!(status, 202);
    let forwarded_path = format!("/v1/sessions/{session}/ports/{session_port}/small.txt");
    for _ in 0..100 {
        if api.request("GET", &forwarded_path, b"").0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut forwarded, mut straight) = (Vec::new(), Vec::new());
    let mut errors = (0, 0);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let (status, body) = api.request("GET", &forwarded_path, b"");
        forwarded.push(started.elapsed());
        errors.0 += usize::from(status != 200 || body.len() != 1024);
        let started = Instant::now();
        // The server speaks HTTP/1.0: a connection per request, as the worker's hop is.
        let (status, body) =
            Conn::open(&format!("127.0.0.1:{host_port}")).request("GET", "/small.txt", b"");
        straight.push(started.elapsed());
        errors.1 += usize::from(status != 200 || body.len() != 1024);
    }
    println!(
        "\n| GET 1 KiB from `python3 -m http.server` ({REQUESTS} each, alternating) | p50 | p99 | requests | errors | |\n|---|---|---|---|---|---|"
    );
    report(
        "through the worker's port route, into the session",
        forwarded,
        errors.0,
        None,
    );
    report(
        "straight to the same server on the host's loopback (floor)",
        straight,
        errors.1,
        None,
    );

    // Egress: from inside the jail, through the proxy to the host's server, beside straight to
    // the session's own server (no proxy), alternating.
    let probe = format!(
        r#"import json, time, urllib.request
proxied = urllib.request.build_opener(urllib.request.ProxyHandler({{'http': 'http://127.0.0.1:3128'}}))
direct = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
times = {{'proxied': [], 'direct': []}}
errors = {{'proxied': 0, 'direct': 0}}
for _ in range({REQUESTS}):
    for name, opener, url in (('proxied', proxied, 'http://127.0.0.1:{host_port}/small.txt'),
                              ('direct', direct, 'http://127.0.0.1:{session_port}/small.txt')):
        started = time.perf_counter()
        try:
            ok = len(opener.open(url, timeout=10).read()) == 1024
        except Exception:
            ok = False
        times[name].append(time.perf_counter() - started)
        errors[name] += not ok
print(json.dumps({{'times': times, 'errors': errors}}))
"#
    );
    let request = json!({ "argv": ["python3", "-c", probe], "timeout_s": 600 });
    let (status, body) = api.post(&exec, request.to_string().as_bytes());
    assert_eq!(status, 200);
    let answer = json_of(&body);
    let measured = json_of(answer["stdout"].as_str().unwrap().as_bytes());
    let durations = |name: &str| -> Vec<Duration> {
        measured["times"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Duration::from_secs_f64(s.as_f64().unwrap()))
            .collect()
    };
    let errors = |name: &str| measured["errors"][name].as_u64().unwrap() as usize;
    println!(
        "\n| a program's GET of 1 KiB, from inside the jail ({REQUESTS} each, alternating) | p50 | p99 | requests | errors | |\n|---|---|---|---|---|---|"
    );
    report(
        "through the session's egress proxy to a server on the host's loopback",
        durations("proxied"),
        errors("proxied"),
        None,
    );
    report(
        "straight to the same server program in the session (floor)",
        durations("direct"),
        errors("direct"),
        None,
    );

    let _ = worker.kill();
    let _ = worker.wait();
    let _ = host_server.kill();
    let _ = host_server.wait();
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
