//! Per-call latency of every built-in tool beside the same operation done natively with `std::fs`,
//! and the cold-start cost of loading the tools with and without the compiled-artifact cache.
//!
//! Run: `cargo bench -p hearth-runtime --bench tools` (prints a Markdown table).
//! `HEARTH_BENCH_ITERS` overrides the iterations per operation (default 2000);
//! `HEARTH_BENCH_DIR` puts the workspace elsewhere (default: the system temp dir), e.g. on a
//! tmpfs to separate Hearth's own cost from the disk's.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_runtime::{Mount, Runtime, RuntimeConfig, SessionView};
use serde_json::{Value, json};

fn main() {
    let iters: usize = std::env::var("HEARTH_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let root = match std::env::var_os("HEARTH_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!("workspace directory: {}\n", root.path().display());
    let (view, workspace) = session(root.path());
    populate(&workspace);

    cold_start();

    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let kib = "x".repeat(1023) + "\n";
    println!("\n## Per-call latency, {iters} calls each (small workspace: 60 files)\n");
    println!("| operation | hearth tool p50 | p99 | native std::fs p50 | p99 |");
    println!("|---|---|---|---|---|");

    let tool = |name: &str, args: Value| {
        let runtime = &runtime;
        let view = &view;
        let name = name.to_owned();
        move || {
            runtime.call(view, &name, &args).unwrap();
        }
    };

    row(
        "write_file 1 KiB",
        iters,
        tool(
            "write_file",
            json!({ "file_path": "/workspace/bench/out.txt", "content": kib }),
        ),
        || native_atomic_write(&workspace.join("bench/out.txt"), kib.as_bytes()),
    );
    row(
        "read_file (100 lines)",
        iters,
        tool(
            "read_file",
            json!({ "file_path": "/workspace/src/module_1.py" }),
        ),
        || {
            std::hint::black_box(fs::read_to_string(workspace.join("src/module_1.py")).unwrap());
        },
    );
    let edit_path = workspace.join("bench/edit.txt");
    fs::write(&edit_path, "some text\n".repeat(50) + "marker-a\n").unwrap();
    let mut flip = false;
    let mut native_flip = false;
    let runtime_ref = &runtime;
    let view_ref = &view;
    row(
        "edit_file (one occurrence)",
        iters,
        || {
            flip = !flip;
            let (old, new) = if flip {
                ("marker-a", "marker-b")
            } else {
                ("marker-b", "marker-a")
            };
            runtime_ref
                .call(view_ref, "edit_file", &json!({ "file_path": "/workspace/bench/edit.txt", "old_string": old, "new_string": new }))
                .unwrap();
        },
        || {
            native_flip = !native_flip;
            let (old, new) = if native_flip {
                ("marker-a", "marker-b")
            } else {
                ("marker-b", "marker-a")
            };
            let text = fs::read_to_string(&edit_path).unwrap();
            assert_eq!(text.matches(old).count(), 1);
            let edited = text.replacen(old, new, 1);
            native_atomic_write(&edit_path, edited.as_bytes());
        },
    );
    row(
        "ls /workspace/src",
        iters,
        tool("ls", json!({ "path": "/workspace/src" })),
        || {
            let entries: Vec<_> = fs::read_dir(workspace.join("src"))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name(), e.metadata().unwrap().len())
                })
                .collect();
            std::hint::black_box(entries);
        },
    );
    row(
        "glob **/*.py",
        iters,
        tool("glob", json!({ "pattern": "**/*.py" })),
        || {
            std::hint::black_box(native_walk(&workspace, &mut |p| {
                p.extension().is_some_and(|e| e == "py")
            }));
        },
    );
    row(
        "grep literal",
        iters,
        tool("grep", json!({ "pattern": "def function_7" })),
        || {
            std::hint::black_box(native_walk(&workspace, &mut |p| {
                fs::read_to_string(p)
                    .map(|t| t.contains("def function_7"))
                    .unwrap_or(false)
            }));
        },
    );
    let doomed = workspace.join("bench/doomed.txt");
    let mut delete_tool = || {
        fs::write(&doomed, "x").unwrap();
        runtime
            .call(
                &view,
                "delete",
                &json!({ "file_path": "/workspace/bench/doomed.txt" }),
            )
            .unwrap();
    };
    let mut delete_native = || {
        fs::write(&doomed, "x").unwrap();
        fs::remove_file(&doomed).unwrap();
    };
    row(
        "delete (incl. re-creating the file)",
        iters,
        &mut delete_tool,
        &mut delete_native,
    );
}

/// Loading all built-in tools: compiling every time, filling an empty cache, and a warm cache.
fn cold_start() {
    let time = |config: RuntimeConfig| {
        let started = Instant::now();
        let runtime = Runtime::new(config).unwrap();
        (started.elapsed(), runtime.load_stats())
    };
    let cache = tempfile::tempdir().unwrap();
    let cached = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let (no_cache, _) = time(RuntimeConfig::default());
    let (filling, fill_stats) = time(cached.clone());
    let mut warm = Vec::new();
    for _ in 0..5 {
        let (elapsed, stats) = time(cached.clone());
        assert_eq!(stats.compiled, 0);
        warm.push(elapsed);
    }
    warm.sort();
    println!(
        "## Cold start: load all {} built-in tools\n",
        hearth_runtime::BUILTIN_TOOLS.len()
    );
    println!("| how | time |");
    println!("|---|---|");
    println!("| no cache (compile every tool) | {} |", ms(no_cache));
    println!(
        "| empty cache (compile + store {} artifacts) | {} |",
        fill_stats.compiled,
        ms(filling)
    );
    println!(
        "| warm cache (deserialize artifacts), median of 5 | {} |",
        ms(warm[2])
    );
}

fn row(name: &str, iters: usize, mut hearth: impl FnMut(), mut native: impl FnMut()) {
    let h = measure(iters, &mut hearth);
    let n = measure(iters, &mut native);
    println!(
        "| {name} | {} | {} | {} | {} |",
        us(h.0),
        us(h.1),
        us(n.0),
        us(n.1)
    );
}

/// (p50, p99) after a warm-up of a tenth of the iterations.
fn measure(iters: usize, f: &mut dyn FnMut()) -> (Duration, Duration) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..iters)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn session(root: &Path) -> (SessionView, PathBuf) {
    let workspace = root.join("workspace");
    let tmp = root.join("tmp");
    fs::create_dir_all(&workspace).unwrap();
    fs::create_dir_all(&tmp).unwrap();
    let view = SessionView::new(vec![
        Mount {
            view_path: "/workspace".into(),
            host_path: workspace.clone(),
            writable: true,
        },
        Mount {
            view_path: "/tmp".into(),
            host_path: tmp,
            writable: true,
        },
    ])
    .unwrap();
    (view, workspace)
}

/// 50 Python modules of 100 lines, 10 data files, in a few directories.
fn populate(workspace: &Path) {
    for dir in ["src", "tests", "data", "bench"] {
        fs::create_dir_all(workspace.join(dir)).unwrap();
    }
    for i in 0..50 {
        let dir = if i % 5 == 0 { "tests" } else { "src" };
        let body: String = (0..100)
            .map(|l| format!("def function_{l}(x):  # module {i}\n"))
            .collect();
        fs::write(workspace.join(format!("{dir}/module_{i}.py")), body).unwrap();
    }
    for i in 0..10 {
        fs::write(
            workspace.join(format!("data/record_{i}.json")),
            "{\"k\": 1}\n".repeat(20),
        )
        .unwrap();
    }
}

fn native_atomic_write(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("tmp");
    fs::write(&temp, bytes).unwrap();
    fs::rename(&temp, path).unwrap();
}

fn native_walk(dir: &Path, keep: &mut dyn FnMut(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && keep(&entry.path()) {
                found.push(entry.path());
            }
        }
    }
    found
}
