//! What a tool costs by language: the Python template (`json_query`, componentize-py) beside
//! its Rust twin doing the same work (`examples/tools/json_query_rust`).
//!
//! For each: the component's size; installing it on a release worker over HTTP with an empty
//! compile cache (cold) and again after removing it (the compiled artifact is cached by the
//! component's hash); and a warm call's latency, p50 and p99 — over HTTP on the worker (the two
//! alternate, upgraded into place, so both see the same machine) and in-process on the runtime
//! alone (the host's time, without HTTP).
//!
//! Run (as root): `cargo bench -p hearth --bench tools`. It builds the components first
//! (`scripts/example-tools.sh`: componentize-py from PyPI, cargo for wasm32-wasip2).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{BenchDir, Conn, report, start_worker};
use hearth_runtime::{Manifest, Mount, Runtime, RuntimeConfig, SessionView, ToolSource};
use serde_json::json;

const OPERATOR: &str = "bench-operator-token-0123456789";
const CALLS: usize = 300;
const ROUNDS: usize = 3;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = std::process::Command::new(root.join("scripts/example-tools.sh"))
        .arg(env!("CARGO_BIN_EXE_hearth"))
        .status()
        .unwrap();
    assert!(built.success(), "building the example tools failed");
    let out = root.join("target/example-tools");
    let tools = [
        ("Python (componentize-py)", out.join("json_query.wasm")),
        ("Rust", out.join("json_query_rust.wasm")),
    ];

    println!("\n| component | size |\n|---|---|");
    for (lang, path) in &tools {
        let size = std::fs::metadata(path).unwrap().len();
        println!("| {lang} | {:.1} MB |", size as f64 / 1e6);
    }

    let base = BenchDir::new();
    let config = format!("[http]\nrate_per_s = 0\n[tools]\noperator_token = \"{OPERATOR}\"\n");
    let (mut server, addr) = start_worker(base.path(), &config);
    let url = format!("http://{addr}");
    let async_runtime = tokio::runtime::Runtime::new().unwrap();
    let operator = hearth_client::Client::new(&url, Some(OPERATOR.into()));
    let install = |path: &PathBuf| {
        let wasm = std::fs::read(path).unwrap();
        let started = Instant::now();
        async_runtime
            .block_on(operator.install_tool("json_query", wasm, None))
            .unwrap();
        started.elapsed()
    };
    let remove = || {
        async_runtime
            .block_on(operator.remove_tool("json_query"))
            .unwrap();
    };

    println!("\n| component | install, cold cache | install, cached |\n|---|---|---|");
    for (lang, path) in &tools {
        let cold = install(path);
        remove();
        let cached = install(path);
        remove();
        println!("| {lang} | {} | {} |", millis(cold), millis(cached));
    }

    let mut conn = Conn::open(&addr);
    let session = conn.create_session().unwrap();
    let document = json!({ "items": (0..100).map(|i| json!({ "name": format!("n{i}") })).collect::<Vec<_>>() });
    let (status, _) = conn.request(
        "PUT",
        &format!("/v1/sessions/{session}/files/workspace/d.json"),
        document.to_string().as_bytes(),
    );
    assert!(status == 200 || status == 201, "{status}");
    let args = json!({ "file_path": "/workspace/d.json", "query": "items.42.name" });
    let mut over_http: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    let mut errors = vec![0; tools.len()];
    for _ in 0..ROUNDS {
        for (i, (_, path)) in tools.iter().enumerate() {
            install(path);
            for _ in 0..10 {
                conn.tool(&session, "json_query", &args);
            }
            for _ in 0..CALLS {
                let (ok, latency) = conn.tool(&session, "json_query", &args);
                over_http[i].push(latency);
                errors[i] += usize::from(!ok);
            }
        }
    }
    println!(
        "\n| json_query over HTTP ({ROUNDS}×{CALLS} warm calls) | p50 | p99 | calls | errors | |\n|---|---|---|---|---|---|"
    );
    for (i, (lang, _)) in tools.iter().enumerate() {
        report(lang, std::mem::take(&mut over_http[i]), errors[i], None);
    }
    let _ = server.kill();
    let _ = server.wait();

    // The host's time alone: the runtime, in this process, no HTTP.
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("d.json"), document.to_string()).unwrap();
    let view = SessionView::new(vec![Mount {
        view_path: "/workspace".into(),
        host_path: workspace.path().to_path_buf(),
        writable: true,
    }])
    .unwrap();
    let cache = base.path().join("runtime-cache");
    println!(
        "\n| json_query in-process, host time ({CALLS} warm calls) | p50 | p99 | calls | errors | |\n|---|---|---|---|---|---|"
    );
    for (lang, path) in &tools {
        let runtime = Runtime::new(RuntimeConfig {
            builtins: false,
            cache_dir: Some(cache.clone()),
            max_concurrent_calls: 4,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let wasm = std::fs::read(path).unwrap();
        runtime
            .add(
                &wasm,
                &Manifest::default(),
                ToolSource::Directory(path.clone()),
            )
            .unwrap();
        let mut latencies = Vec::with_capacity(CALLS);
        let mut failed = 0;
        for i in 0..CALLS + 20 {
            let started = Instant::now();
            let answer = runtime.call(&view, "json_query", &args);
            if i >= 20 {
                latencies.push(started.elapsed());
                failed += usize::from(answer.is_err());
            }
        }
        report(lang, latencies, failed, None);
    }
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}
