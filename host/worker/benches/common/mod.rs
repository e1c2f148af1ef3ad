//! What the worker benchmarks share: a release `hearth serve` process, a minimal blocking
//! HTTP/1.1 client (so the load generator costs the shared cores as little as possible), and a
//! Markdown row of latencies.

#![allow(dead_code, reason = "each benchmark uses its own part of this")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "bench-token";

/// A temporary directory for workers' data dirs, in `HEARTH_BENCH_DIR` when it is set (e.g.
/// `/dev/shm`) and the system's temp dir otherwise. A benchmark ends its workers with SIGKILL,
/// which leaves their sessions' ext4 volumes mounted (and their loop devices attached): this
/// unmounts whatever is mounted beneath it before deleting it, as the tests' `DataDir` does.
/// Without it every run of `floor` leaked 134 mounts, and a day of benchmarking left ~5,900
/// on the machine.
pub struct BenchDir(tempfile::TempDir);

impl BenchDir {
    pub fn new() -> Self {
        Self(match std::env::var_os("HEARTH_BENCH_DIR") {
            Some(dir) => tempfile::tempdir_in(dir).unwrap(),
            None => tempfile::tempdir().unwrap(),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        hearth_volume::unmount_all_under(self.0.path());
    }
}

/// Starts the release `hearth serve` on a free loopback port.
/// `config` is the TOML of a config file, written into the data dir.
pub fn start_worker(data_dir: &std::path::Path, config: &str) -> (Child, String) {
    start_worker_with_env(data_dir, config, &[])
}

/// [`start_worker`] with variables added to its (otherwise empty) environment.
pub fn start_worker_with_env(
    data_dir: &std::path::Path,
    config: &str,
    env: &[(&str, &str)],
) -> (Child, String) {
    let config_file = data_dir.join("bench.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(&config_file)
        .env_clear()
        .env("HEARTH_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
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
pub struct Conn {
    reader: BufReader<TcpStream>,
    /// Bytes of chunked bodies received, kept or not.
    pub received: u64,
    /// The header lines of the last answer, as `(lowercase name, value)`.
    pub last_headers: Vec<(String, String)>,
}

impl Conn {
    pub fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream),
            received: 0,
            last_headers: Vec::new(),
        }
    }

    /// Sends a POST with a JSON body; returns the status and body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.request("POST", path, body)
    }

    /// Sends a request; returns the status and the whole body (chunked or not).
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.request_with(method, path, body, "")
    }

    /// Like `request`, with more header lines (each ending in `\r\n`).
    pub fn request_with(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &str,
    ) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
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
        let mut chunked = false;
        self.last_headers.clear();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                self.last_headers
                    .push((name.to_ascii_lowercase(), value.trim().to_owned()));
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        if chunked {
            return (status, self.read_chunks());
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, body)
    }

    /// A chunked body. Large ones (an export) are counted, not kept: the first MiB is kept
    /// and the rest is read and dropped, so the client's own memory stays flat.
    fn read_chunks(&mut self) -> Vec<u8> {
        let mut kept = Vec::new();
        let mut line = String::new();
        let mut chunk = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            chunk.resize(size + 2, 0);
            self.reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                return kept;
            }
            self.received += size as u64;
            if kept.len() < 1 << 20 {
                kept.extend_from_slice(&chunk[..size]);
            }
        }
    }

    pub fn create_session(&mut self) -> Option<String> {
        let (status, body) = self.post("/v1/sessions", b"{}");
        let value: Value = serde_json::from_slice(&body).ok()?;
        (status == 201)
            .then(|| value["id"].as_str().map(str::to_owned))
            .flatten()
    }

    /// One tool call; (succeeded, latency).
    pub fn tool(&mut self, session: &str, tool: &str, args: &Value) -> (bool, Duration) {
        let body = serde_json::to_vec(args).unwrap();
        let started = Instant::now();
        let (status, _) = self.post(&format!("/v1/sessions/{session}/tools/{tool}"), &body);
        (status == 200, started.elapsed())
    }
}

pub fn report(name: &str, mut latencies: Vec<Duration>, errors: usize, elapsed: Option<Duration>) {
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

pub fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}
