//! What running git in the confined helper costs: each operation run in-process (as round 1 did)
//! and through `hearth-git` (a process per operation, Landlock, a deadline), alternating in the
//! same run, on the same repository: status of a clean tree of 1,000 files, a commit of one
//! changed file, and a commit of 1,000 changed files. Every operation starts 50 ms after the
//! last (an agent's pace, `HEARTH_BENCH_PACE_MS`), as for the jail: helpers are started ahead of
//! their jobs, and back-to-back calls faster than a helper starts (~25 ms) would drain them.
//!
//! `cargo build --release -p hearth --bin hearth-git && cargo bench -p hearth-git --bench
//! isolation` (the helper is looked for in `target/release`; `HEARTH_GIT_HELPER` names another;
//! `HEARTH_BENCH_DIR` chooses the disk; `HEARTH_BENCH_ROUNDS`, default 15).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_git::{Author, Isolation, Job, Operation, RemoteAccess};

const FILES: usize = 1_000;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("HEARTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let helper = std::env::var_os("HEARTH_GIT_HELPER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/hearth-git")
        });
    anyhow::ensure!(helper.is_file(), "no helper at {}", helper.display());
    let pace = Duration::from_millis(
        std::env::var("HEARTH_BENCH_PACE_MS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(50),
    );
    let base = std::env::var_os("HEARTH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::tempdir_in(&base)?;
    let work = root.path().join("work");
    for i in 0..FILES {
        let dir = work.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("f{i}.txt")),
            format!("line {i}\n").repeat(40),
        )?;
    }
    let author = Author {
        name: "Bench".into(),
        email: "bench@example.invalid".into(),
    };
    let job = |operation: Operation| Job {
        git_dir: root.path().join("state/git"),
        work_tree: work.clone(),
        default_branch: "main".into(),
        author: author.clone(),
        access: RemoteAccess::default(),
        max_depth: 256,
        operation,
    };
    let commit = || {
        job(Operation::Commit {
            message: "bench".into(),
            author: None,
        })
    };
    std::fs::create_dir_all(root.path().join("state"))?;
    commit().run().map_err(|e| anyhow::anyhow!("{e}"))?;
    let isolation = Isolation::new(helper, Duration::from_secs(60), 2048 * 1024 * 1024);

    let mut counter = 0usize;
    let mut change = |files: usize| -> anyhow::Result<()> {
        counter += 1;
        for i in 0..files {
            let dir = work.join(format!("d{}", i % 20));
            std::fs::write(dir.join(format!("f{i}.txt")), format!("v{counter} {i}\n"))?;
        }
        Ok(())
    };
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "operation (p50)", "in-process", "helper", "ratio"
    );
    for (name, files) in [
        ("status, clean", 0),
        ("commit 1 file", 1),
        ("commit 1,000 files", FILES),
    ] {
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (times, isolated) in [(&mut inside, false), (&mut outside, true)] {
                change(files)?;
                std::thread::sleep(pace);
                let job = if files == 0 {
                    job(Operation::Status)
                } else {
                    commit()
                };
                let started = Instant::now();
                let answer = if isolated {
                    isolation.run(&job)
                } else {
                    job.run()
                };
                times.push(started.elapsed());
                answer.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        let (a, b) = (median(&mut inside), median(&mut outside));
        println!(
            "{name:<28} {:>11.2} ms {:>11.2} ms {:>7.2}x",
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
