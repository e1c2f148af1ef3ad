//! What the jail costs: `/bin/true` and `python -c pass` bare, jailed by Hearth (each run
//! starting its helper, and with warm jails), and (when installed) under bubblewrap with a
//! comparable layout, in one run.
//!
//! Run: `cargo bench -p hearth-python-runner --bench jail` (as root, like the worker).
//! `HEARTH_BENCH_ITERS` sets the runs per row (default 200).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_python_runner::{Bind, ExecLimits, Job, Runner};

fn main() {
    let iters: usize = std::env::var("HEARTH_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let cold = Runner::new(PathBuf::from(env!("CARGO_BIN_EXE_hearth-jail")), "python3").unwrap();
    let warm = cold.clone().with_warm_jails(2);
    let python = cold.interpreter().executable.clone();
    let prefix = cold.interpreter().prefix.clone();
    let dir = tempfile::tempdir().unwrap();
    for sub in ["workspace", "tmp", "state"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let py = python.to_str().unwrap().to_owned();
    let bwrap = Path::new("/usr/bin/bwrap").is_file();

    println!("interpreter: {}\n", python.display());
    println!(
        "| program | bare p50 | cold jail p50 / p99 | warm jail p50 / p99 | warm overhead (p50) | warm ratio | bwrap p50 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, argv) in [
        ("/bin/true", vec!["/bin/true".to_owned()]),
        (
            "python -c pass",
            vec![py.clone(), "-c".into(), "pass".into()],
        ),
        (
            "python -E -s -S -c pass",
            vec![
                py.clone(),
                "-E".into(),
                "-s".into(),
                "-S".into(),
                "-c".into(),
                "pass".into(),
            ],
        ),
    ] {
        let bare = measure(iters, || {
            let status = Command::new(&argv[0])
                .args(&argv[1..])
                .env_clear()
                .stdin(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        });
        let job = || Job {
            root_dir: dir.path().join("state").join("root"),
            mounts: vec![
                Bind {
                    source: dir.path().join("workspace"),
                    target: "/workspace".into(),
                    writable: true,
                },
                Bind {
                    source: dir.path().join("tmp"),
                    target: "/tmp".into(),
                    writable: true,
                },
            ],
            cwd: "/workspace".into(),
            argv: argv.clone(),
            env: BTreeMap::new(),
            stdin: Vec::new(),
            keep_stdin_open: false,
            network: None,
            sockets: hearth_python_runner::SocketPolicy::UnixOnly,
            limits: ExecLimits {
                wall: Duration::from_secs(30),
                ..ExecLimits::default()
            },
        };
        let jailed = |runner: &Runner, pause: Duration| {
            samples(iters, pause, || {
                let outcome = runner.run(&job()).unwrap();
                assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
            })
        };
        let cold_samples = jailed(&cold, AGENT_PACE);
        // A warm jail is taken per run and replaced in the background, which takes a cgroup
        // join (5–25 ms here): runs at an agent's pace, not back to back, find one waiting.
        // Every row is measured at that pace.
        let warm_samples = jailed(&warm, AGENT_PACE);
        let bwrapped = bwrap.then(|| {
            measure(iters, || {
                let status = Command::new("/usr/bin/bwrap")
                    .args([
                        "--unshare-all",
                        "--die-with-parent",
                        "--new-session",
                        "--ro-bind",
                        "/usr",
                        "/usr",
                    ])
                    .args([
                        "--symlink",
                        "usr/bin",
                        "/bin",
                        "--symlink",
                        "usr/lib",
                        "/lib",
                        "--symlink",
                        "usr/lib64",
                        "/lib64",
                    ])
                    .arg("--ro-bind")
                    .arg(&prefix)
                    .arg(&prefix)
                    .arg("--bind")
                    .arg(dir.path().join("workspace"))
                    .arg("/workspace")
                    .args([
                        "--dev",
                        "/dev",
                        "--proc",
                        "/proc",
                        "--tmpfs",
                        "/tmp",
                        "--chdir",
                        "/workspace",
                    ])
                    .args(&argv)
                    .env_clear()
                    .stdin(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
            })
        });
        let (cold_p50, cold_p99) = (median(&cold_samples), p99(&cold_samples));
        let (warm_p50, warm_p99) = (median(&warm_samples), p99(&warm_samples));
        println!(
            "| `{name}` | {} | {} / {} | {} / {} | +{} | {:.2}× | {} |",
            ms(bare),
            ms(cold_p50),
            ms(cold_p99),
            ms(warm_p50),
            ms(warm_p99),
            ms(warm_p50.saturating_sub(bare)),
            warm_p50.as_secs_f64() / bare.as_secs_f64(),
            bwrapped.map(ms).unwrap_or_else(|| "not installed".into()),
        );
    }
}

/// The pause before each timed run (not timed): what an agent's turn leaves between runs is
/// many times more.
const AGENT_PACE: Duration = Duration::from_millis(50);

/// Sorted timings of `iters` calls of `f`, after a tenth as many untimed, each after `pause`.
fn samples(iters: usize, pause: Duration, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..iters / 10 {
        f();
    }
    let mut all: Vec<Duration> = (0..iters)
        .map(|_| {
            std::thread::sleep(pause);
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    all.sort();
    all
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() * 99 / 100]
}

/// Median of `iters` calls at the agent's pace, like the warm runs they are compared with (a
/// pause leaves caches colder: back-to-back bare runs would flatter the bare side).
fn measure(iters: usize, f: impl FnMut()) -> Duration {
    median(&samples(iters, AGENT_PACE, f))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
