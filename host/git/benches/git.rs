//! Commit and push cost of a session repository, beside the `git` CLI doing the same work on a
//! copy, in the same run: 1,000 changed files committed, then pushed to a loopback `git daemon`.
//!
//! `cargo bench -p hearth-git --bench git` (set `HEARTH_BENCH_DIR` to choose the disk, e.g.
//! `/dev/shm` for tmpfs; `HEARTH_BENCH_ROUNDS` for the number of rounds, default 7).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_git::{Author, RemoteAccess, SessionRepo};

const FILES: usize = 1_000;
const FILE_BYTES: usize = 1024;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("HEARTH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let base = std::env::var_os("HEARTH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let root = tempfile::tempdir_in(&base)?;
    let root = root.path();
    let (daemon, port) = git_daemon(root)?;
    let _daemon = KillOnDrop(daemon);
    for bare in ["hearth.git", "cli.git"] {
        cli(root, &["init", "-q", "--bare", "-b", "main", bare])?;
    }
    let author = Author {
        name: "Bench".into(),
        email: "bench@example.invalid".into(),
    };
    let access = RemoteAccess {
        allowed: vec![format!("git://127.0.0.1:{port}/")],
        credentials: Vec::new(),
    };

    // Hearth: git directory apart from the work tree, driven in-process.
    let work = root.join("hearth-work");
    std::fs::create_dir(&work)?;
    let repo = SessionRepo::init(&root.join("hearth-state/git"), &work, "main", &author)?;
    repo.set_remote(
        "origin",
        &format!("git://127.0.0.1:{port}/hearth.git"),
        &access,
    )?;
    // The CLI: an ordinary clone-like repository with the same starting point.
    let cli_work = root.join("cli-work");
    std::fs::create_dir(&cli_work)?;
    cli(&cli_work, &["init", "-q", "-b", "main"])?;
    cli(
        &cli_work,
        &["commit", "-q", "--allow-empty", "-m", "Initial commit"],
    )?;
    cli(
        &cli_work,
        &[
            "remote",
            "add",
            "origin",
            &format!("git://127.0.0.1:{port}/cli.git"),
        ],
    )?;

    // What a new session's repository costs (an empty repository and its initial commit).
    let mut inits = Vec::new();
    for i in 0..50 {
        let work = root.join(format!("init-{i}/workspace"));
        std::fs::create_dir_all(&work)?;
        let started = Instant::now();
        SessionRepo::init(
            &root.join(format!("init-{i}/state/git")),
            &work,
            "main",
            &author,
        )?;
        inits.push(started.elapsed());
    }

    let mut timings: [Vec<Duration>; 4] = Default::default();
    for round in 0..rounds {
        change_all_files(&work, round)?;
        change_all_files(&cli_work, round)?;

        let started = Instant::now();
        repo.commit(&format!("round {round}"), &author)?;
        timings[0].push(started.elapsed());
        let started = Instant::now();
        let pushed = repo.push("origin", None, &author, &access)?;
        timings[1].push(started.elapsed());
        anyhow::ensure!(
            matches!(pushed, hearth_git::PushOutcome::Pushed { .. }),
            "push: {pushed:?}"
        );

        let started = Instant::now();
        cli(&cli_work, &["add", "-A"])?;
        cli(
            &cli_work,
            &["commit", "-q", "-m", &format!("round {round}")],
        )?;
        timings[2].push(started.elapsed());
        let started = Instant::now();
        cli(&cli_work, &["push", "-q", "origin", "main"])?;
        timings[3].push(started.elapsed());
    }
    println!(
        "git: {FILES} changed files of {FILE_BYTES} B each, {rounds} rounds, medians (disk: {})",
        base.display()
    );
    println!(
        "  init    hearth (new session's repository) {:>8.2} ms",
        median_ms(&mut inits)
    );
    println!(
        "  commit  hearth (git2, in-process)   {:>8.1} ms",
        median_ms(&mut timings[0])
    );
    println!(
        "  commit  git CLI (add -A + commit)    {:>8.1} ms",
        median_ms(&mut timings[2])
    );
    println!(
        "  push    hearth (git2, git://)        {:>8.1} ms",
        median_ms(&mut timings[1])
    );
    println!(
        "  push    git CLI (git://)             {:>8.1} ms",
        median_ms(&mut timings[3])
    );
    Ok(())
}

/// Rewrites every file with content unique to `round`.
fn change_all_files(dir: &Path, round: usize) -> std::io::Result<()> {
    for i in 0..FILES {
        let sub = dir.join(format!("src/m{:02}", i % 20));
        std::fs::create_dir_all(&sub)?;
        let line = format!("round {round} file {i}\n");
        let content = line.repeat(FILE_BYTES / line.len() + 1);
        std::fs::write(sub.join(format!("f{i}.txt")), &content[..FILE_BYTES])?;
    }
    Ok(())
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn cli(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(args)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

fn git_daemon(root: &Path) -> anyhow::Result<(Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // `git daemon` would run `git-daemon` as a child and leave it behind when killed.
    let exec_path = Command::new("git").arg("--exec-path").output()?.stdout;
    let daemon = Path::new(String::from_utf8(exec_path)?.trim()).join("git-daemon");
    let child = Command::new(daemon)
        .args(["--reuseaddr", "--export-all", "--enable=receive-pack"])
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.display()))
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "git daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, port))
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
