//! Limits the caller can rely on, each tried for real.

use std::time::Duration;

use crate::support::{Sandbox, runner, text};

#[test]
fn an_infinite_loop_is_killed_at_the_wall_time() {
    let s = Sandbox::new();
    let mut job = s.job(&["/bin/sh", "-c", "while :; do :; done"]);
    job.limits.wall = Duration::from_millis(700);
    let out = runner().run(&job).unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
}

#[test]
fn cpu_burning_threads_hit_the_cpu_limit() {
    let s = Sandbox::new();
    let python = crate::support::python_path();
    let mut job = s.job(&[&python, "-c", "import threading\ndef burn():\n    while True: pass\nfor _ in range(4): threading.Thread(target=burn).start()"]);
    job.limits.cpu_seconds = 1;
    let out = runner().run(&job).unwrap();
    assert!(
        !out.timed_out,
        "stopped by the CPU limit, not the wall time: {out:?}"
    );
    assert!(
        matches!(out.signal, Some(libc::SIGXCPU | libc::SIGKILL)),
        "{out:?}"
    );
}

#[test]
fn a_memory_bomb_is_stopped() {
    let s = Sandbox::new();
    let python = crate::support::python_path();
    let mut job = s.job(&[
        &python,
        "-c",
        "chunks = []\nwhile True: chunks.append(bytearray(16 * 1024 * 1024))",
    ]);
    job.limits.memory_bytes = 256 * 1024 * 1024;
    let out = runner().run(&job).unwrap();
    assert_ne!(out.exit_code, Some(0), "{out:?}");
    let stopped = out.oom_killed || text(&out.stderr).contains("MemoryError");
    assert!(stopped, "the memory limit stopped it: {out:?}");
}

#[test]
fn a_fork_bomb_is_contained() {
    let s = Sandbox::new();
    let mut job = s.job(&[
        "/bin/sh",
        "-c",
        "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived",
    ]);
    job.limits.max_processes = 32;
    job.limits.wall = Duration::from_secs(5);
    let out = runner().run(&job).unwrap();
    assert!(
        out.layers.get("cgroups").is_some_and(|v| v == "enforced"),
        "{:?}",
        out.layers
    );
    // The host is fine: this test process can still start processes.
    assert!(
        std::process::Command::new("/bin/true")
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn floods_of_output_are_capped() {
    let s = Sandbox::new();
    let mut job = s.job(&[
        "/bin/sh",
        "-c",
        "head -c 2147483648 /dev/zero; echo end >&2",
    ]);
    job.limits.output_bytes = 1024 * 1024;
    let out = runner().run(&job).unwrap();
    assert!(out.truncated, "{:?}", out.exit_code);
    assert_eq!(out.stdout.len(), 1024 * 1024);
    assert_eq!(text(&out.stderr), "end\n");
    assert_eq!(out.exit_code, Some(0));
}

#[test]
fn a_giant_file_stops_at_the_size_limit() {
    let s = Sandbox::new();
    let mut job = s.job(&[
        "/bin/sh",
        "-c",
        "head -c 100000000 /dev/zero > /workspace/giant",
    ]);
    job.limits.file_size_bytes = 8 * 1024 * 1024;
    let out = runner().run(&job).unwrap();
    assert_ne!(out.exit_code, Some(0), "{out:?}");
    let size = std::fs::metadata(s.workspace.join("giant"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(size <= 8 * 1024 * 1024, "{size}");
}

#[test]
fn output_up_to_the_cap_comes_back_whole() {
    let s = Sandbox::new();
    let out = s.python("import sys; sys.stdout.write('y' * 600_000)");
    assert!(!out.truncated);
    assert_eq!(out.stdout.len(), 600_000);
}
