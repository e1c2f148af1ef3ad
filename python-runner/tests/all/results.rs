//! The result channel: a pipe the program inherits on fd 3, read by the host, never a file.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, python_path, runner, text};

/// Which descriptors are open, as Python in the jail sees them.
const OPEN_FDS: &str = "import os\ndef is_open(fd):\n    try:\n        os.fstat(fd)\n        return True\n    except OSError:\n        return False\nprint([fd for fd in range(1024) if is_open(fd)])\n";

#[test]
fn a_result_arrives_through_fd_3() {
    let s = Sandbox::new();
    let python = python_path();
    let code = format!(
        "{OPEN_FDS}import stat\nprint(stat.S_ISFIFO(os.fstat(3).st_mode))\nos.write(3, b'{{\"ok\": 1}}')"
    );
    let mut job = s.job(&[&python, "-c", &code]);
    job.limits.result_bytes = Some(1024);
    let out = runner().run(&job).unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "[0, 1, 2, 3]\nTrue\n", "{out:?}");
    assert_eq!(out.result.as_deref(), Some(&b"{\"ok\": 1}"[..]), "{out:?}");
    assert!(!out.result_truncated);

    // A cold helper hands it over the same way.
    let cold = hearth_python_runner::Runner::new(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_hearth-jail")),
        &python,
    )
    .unwrap()
    .with_warm_jails(0);
    let mut job = s.job(&[&python, "-c", "import os; os.write(3, b'cold')"]);
    job.limits.result_bytes = Some(1024);
    let out = cold.run(&job).unwrap();
    assert_eq!(out.result.as_deref(), Some(&b"cold"[..]), "{out:?}");

    // Nothing written is an empty result, not a missing one.
    let mut job = s.job(&["/bin/true"]);
    job.limits.result_bytes = Some(1024);
    let out = runner().run(&job).unwrap();
    assert_eq!(out.result.as_deref(), Some(&b""[..]), "{out:?}");
}

#[test]
fn without_a_channel_only_stdin_stdout_and_stderr_are_open() {
    let s = Sandbox::new();
    let out = s.python(&format!(
        "{OPEN_FDS}try:\n    os.write(3, b'x')\nexcept OSError as e:\n    print('refused', e.errno)"
    ));
    assert_eq!(
        text(&out.stdout),
        format!("[0, 1, 2]\nrefused {}\n", libc::EBADF),
        "{out:?}"
    );
    assert_eq!(out.result, None);
    assert!(!out.result_truncated);
}

#[test]
fn a_result_over_the_cap_is_cut_and_flagged() {
    let s = Sandbox::new();
    let python = python_path();
    let mut job = s.job(&[
        &python,
        "-c",
        "import os\nchunk = b'x' * (1 << 20)\nfor _ in range(20):\n    os.write(3, chunk)\nprint('wrote')",
    ]);
    job.limits.result_bytes = Some(1000);
    let out = runner().run(&job).unwrap();
    assert_eq!(
        (out.exit_code, text(&out.stdout)),
        (Some(0), "wrote\n".to_owned()),
        "the excess is read and dropped, so the writer never blocks: {out:?}"
    );
    assert_eq!(out.result.as_ref().map(Vec::len), Some(1000));
    assert!(out.result_truncated);
    assert!(!out.truncated, "stdout and stderr were not cut");
}

#[test]
fn a_child_holding_fd_3_does_not_hang_the_run() {
    let s = Sandbox::new();
    let python = python_path();
    // A child and a detached grandchild keep fd 3 (and stdout) open and sleep; the program
    // itself answers and exits.
    let mut job = s.job(&[
        &python,
        "-c",
        "import os, time\n\
if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n    time.sleep(60)\n    os._exit(0)\n\
os.write(3, b'answer')",
    ]);
    job.limits.result_bytes = Some(1024);
    job.limits.wall = Duration::from_secs(20);
    let started = Instant::now();
    let out = runner().run(&job).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the jail's processes go with its pid 1: {:?}",
        started.elapsed()
    );
    assert_eq!(out.result.as_deref(), Some(&b"answer"[..]), "{out:?}");

    // A program that holds it and never ends stops at its wall time, and the channel with it.
    let mut job = s.job(&[
        &python,
        "-c",
        "import os, time\nos.write(3, b'partial')\nif os.fork() == 0:\n    time.sleep(60)\ntime.sleep(60)",
    ]);
    job.limits.result_bytes = Some(1024);
    job.limits.wall = Duration::from_millis(1500);
    let started = Instant::now();
    let out = runner().run(&job).unwrap();
    assert!(out.timed_out, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500) + Duration::from_secs(5),
        "wall time plus the drain grace at most: {:?}",
        started.elapsed()
    );
    assert_eq!(out.result.as_deref(), Some(&b"partial"[..]), "{out:?}");
}
