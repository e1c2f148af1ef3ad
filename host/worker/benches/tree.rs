//! Native speed (issue 19): the directory tools and a commit on a generated Python project,
//! Hearth beside the same work done natively in the same run.
//!
//! The project is packages of `FILES_PER_DIR` modules (~0.9 KB each; one module in ten
//! holds the literal grepped for), written into a session through the files route. The native
//! side runs on *the same files*: the session's workspace as it is mounted on the worker's disk,
//! so both read one filesystem through one page cache. Each figure alternates Hearth and native
//! and reports the median of the rounds.
//!
//! | row | Hearth | native |
//! |---|---|---|
//! | ls | `ls` of the workspace root | `ls -la` there |
//! | glob | `glob **/mod3.py` | `find . -name mod3.py` |
//! | grep | `grep` for the literal | `grep -rnF` for it |
//! | commit | `git/commit` after 1,000 files changed | `git add -A && git commit` on a copy |
//!
//! Run (as root): `cargo bench -p hearth --bench tree` (5,000 files), or with
//! `-- 50000` for the 50,000-file tree (the commit row then changes 1,000 files as well).

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BenchDir, Conn, start_worker};
use serde_json::{Value, json};

const FILES_PER_DIR: usize = 50;
const ROUNDS: usize = 11;
const COMMIT_ROUNDS: usize = 5;
const CHANGED: usize = 1_000;
const NEEDLE: &str = "hearth_needle_literal";

fn main() {
    let files: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000);
    let dirs = files.div_ceil(FILES_PER_DIR);
    let base = BenchDir::new();
    let (server, addr) = start_worker(base.path(), "[http]\nrate_per_s = 0\n");
    let _server = KillOnDrop(server);
    let mut conn = Conn::open(&addr);
    // Room for the tree and its history as loose objects (50,000 files take 100,000 inodes
    // with their blobs, past the default quota).
    let (status, created) = conn.post(
        "/v1/sessions",
        br#"{"quota": {"bytes": 4294967296, "inodes": 400000}}"#,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
    let created: Value = serde_json::from_slice(&created).unwrap();
    let session = created["id"].as_str().unwrap().to_owned();

    // The project, through the files route.
    let started = Instant::now();
    let mut bytes = 0;
    for d in 0..dirs {
        for f in 0..FILES_PER_DIR.min(files - d * FILES_PER_DIR) {
            let body = module(d, f, 0);
            bytes += body.len();
            put(&mut conn, &session, &format!("pkg{d}/mod{f}.py"), &body);
        }
    }
    println!(
        "\n{files} files in {dirs} directories ({:.1} MB) written through the API in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let workspace = find_workspace(base.path());

    let tool = |conn: &mut Conn, name: &str, args: Value| -> Duration {
        let (ok, took) = conn.tool(&session, name, &args);
        assert!(ok, "{name} {args}");
        took
    };
    let native = |program: &str, args: &[&str]| -> Duration {
        let started = Instant::now();
        let out = Command::new(program)
            .args(args)
            .current_dir(&workspace)
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success() || program == "grep",
            "{program} {args:?}"
        );
        took
    };
    // Both sides find the same things: the counts are printed beside the figures.
    let found_by_grep = Command::new("grep")
        .args(["-rlF", NEEDLE, "."])
        .current_dir(&workspace)
        .output()
        .unwrap()
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();

    println!("\n| {files} files | Hearth p50 | native p50 | Hearth / native |");
    println!("|---|---|---|---|");
    let mut rows: Vec<(&str, Vec<Duration>, Vec<Duration>)> = vec![
        ("ls of the workspace root", vec![], vec![]),
        ("glob `**/mod3.py`", vec![], vec![]),
        ("grep a literal (`grep -rnF`)", vec![], vec![]),
    ];
    for _ in 0..ROUNDS {
        rows[0]
            .1
            .push(tool(&mut conn, "ls", json!({ "path": "/workspace" })));
        rows[0].2.push(native("ls", &["-la", "."]));
        rows[1].1.push(tool(
            &mut conn,
            "glob",
            json!({ "pattern": "**/mod3.py", "path": "/workspace" }),
        ));
        rows[1].2.push(native("find", &[".", "-name", "mod3.py"]));
        rows[2].1.push(tool(
            &mut conn,
            "grep",
            // Every match, as `grep -rn` prints them (the tool's default stops at 1,000).
            json!({ "pattern": NEEDLE, "path": "/workspace", "max_count": 10_000 }),
        ));
        rows[2].2.push(native("grep", &["-rnF", NEEDLE, "."]));
    }
    for (name, hearth, native) in rows {
        row(name, hearth, native);
    }

    // Commits: the session's history through the API; the git CLI on a copy of the tree on the
    // worker's own disk.
    let copy = base.path().join("native-copy");
    copy_tree(&workspace, &copy);
    git(&copy, &["init", "-q"]);
    git(&copy, &["add", "-A"]);
    git(&copy, &["commit", "-q", "-m", "initial"]);
    commit(&mut conn, &session, "initial");
    let mut hearth = Vec::new();
    let mut cli = Vec::new();
    for round in 1..=COMMIT_ROUNDS {
        for i in 0..CHANGED.min(files) {
            let (d, f) = (i % dirs, i / dirs);
            let body = module(d, f, round);
            put(&mut conn, &session, &format!("pkg{d}/mod{f}.py"), &body);
            std::fs::write(copy.join(format!("pkg{d}/mod{f}.py")), &body).unwrap();
        }
        hearth.push(commit(&mut conn, &session, &format!("round {round}")));
        let started = Instant::now();
        git(&copy, &["add", "-A"]);
        git(&copy, &["commit", "-q", "-m", &format!("round {round}")]);
        cli.push(started.elapsed());
    }
    row(
        &format!("commit of {} changed files", CHANGED.min(files)),
        hearth,
        cli,
    );
    println!("\n(grep finds {found_by_grep} files; glob finds {dirs} modules)");
}

/// The worker, stopped however the benchmark ends (a panic included: a worker left running
/// would hold the build lock's pipe and the port).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A module of about 0.9 KB; one in ten holds the needle. `round` changes its text.
fn module(d: usize, f: usize, round: usize) -> String {
    let mut text =
        format!("\"\"\"Module {f} of package {d} (round {round}).\"\"\"\n\nimport os\n\n");
    for n in 0..6 {
        text.push_str(&format!(
            "def function_{n}(value):\n    \"\"\"Returns the value scaled by {n}.\"\"\"\n    \
             total = value * {n} + {d}\n    return os.path.join(str(total), \"{f}\")\n\n\n"
        ));
    }
    if f % 10 == 7 {
        text.push_str(&format!("MARK = \"{NEEDLE}\"\n"));
    }
    text
}

fn put(conn: &mut Conn, session: &str, relative: &str, body: &str) {
    let (status, answer) = conn.request(
        "PUT",
        &format!("/v1/sessions/{session}/files/workspace/{relative}"),
        body.as_bytes(),
    );
    assert!(
        status == 200 || status == 201,
        "{status} {}",
        String::from_utf8_lossy(&answer)
    );
}

fn commit(conn: &mut Conn, session: &str, message: &str) -> Duration {
    let body = serde_json::to_vec(&json!({ "message": message })).unwrap();
    let started = Instant::now();
    let (status, answer) = conn.post(&format!("/v1/sessions/{session}/git/commit"), &body);
    let took = started.elapsed();
    assert!(
        status == 200 || status == 201,
        "{status} {}",
        String::from_utf8_lossy(&answer)
    );
    took
}

/// The session's workspace as the worker's disk has it: the directory holding `pkg0/mod0.py`.
fn find_workspace(data_dir: &Path) -> PathBuf {
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("pkg0/mod0.py").is_file() {
            return dir;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() && !kind.is_symlink() {
                stack.push(entry.path());
            }
        }
    }
    panic!(
        "the session's workspace is not under {}",
        data_dir.display()
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    // The copy is a plain tree: no history of the session's comes with it.
    let _ = std::fs::remove_dir_all(to.join(".git"));
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn row(name: &str, hearth: Vec<Duration>, native: Vec<Duration>) {
    let (h, n) = (median(hearth), median(native));
    println!(
        "| {name} | {:.1} ms | {:.1} ms | {:.1}× |",
        h.as_secs_f64() * 1e3,
        n.as_secs_f64() * 1e3,
        h.as_secs_f64() / n.as_secs_f64()
    );
}
