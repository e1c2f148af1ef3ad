//! What a jailed program can do: the session's files at the paths tools use.

use crate::support::{Sandbox, text};

#[test]
fn true_runs_and_every_layer_reports() {
    let s = Sandbox::new();
    let out = s.run(&["/bin/true"]);
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(out.jail_error, None);
    for layer in [
        "mount_namespace",
        "pid_namespace",
        "network_namespace",
        "pivot_root",
        "seccomp",
        "no_new_privs",
        "capabilities",
        "rlimits",
        "environment",
    ] {
        assert!(
            out.layers
                .get(layer)
                .is_some_and(|v| v.starts_with("enforced")),
            "{layer}: {:?}",
            out.layers
        );
    }
    assert!(
        out.layers.contains_key("landlock") && out.layers.contains_key("cgroups"),
        "{:?}",
        out.layers
    );
    // Every layer a run reports is one `exec.required_layers` can name, and the other way round.
    let names: Vec<&str> = hearth_python_runner::Layer::ALL
        .iter()
        .map(|l| l.name())
        .collect();
    let reported: Vec<&str> = out.layers.keys().map(String::as_str).collect();
    assert_eq!(reported.len(), names.len(), "{reported:?} vs {names:?}");
    assert!(
        reported.iter().all(|r| names.contains(r)),
        "{reported:?} vs {names:?}"
    );
}

#[test]
fn python_imports_from_the_workspace() {
    let s = Sandbox::new();
    s.put("utils.py", "def answer():\n    return 42\n");
    s.put("pkg/__init__.py", "");
    s.put(
        "pkg/mod.py",
        "from utils import answer\nVALUE = answer() + 1\n",
    );
    s.put(
        "main.py",
        "import utils\nfrom pkg.mod import VALUE\nprint(utils.answer(), VALUE)\n",
    );
    let python = crate::support::python_path();
    let out = s.run(&[&python, "-E", "-s", "-B", "main.py"]);
    assert_eq!(text(&out.stdout), "42 43\n", "{}", text(&out.stderr));
    assert_eq!(out.exit_code, Some(0));
}

#[test]
fn files_cross_between_host_and_jail_at_the_same_paths() {
    let s = Sandbox::new();
    s.put("in.txt", "from the host");
    std::fs::write(s.tmp.join("scratch.txt"), "scratch").unwrap();
    let out = s.python(
        "print(open('/workspace/in.txt').read(), open('/tmp/scratch.txt').read())\n\
         open('/workspace/out.txt', 'w').write('from the jail')\n\
         open('/tmp/made.txt', 'w').write('tmp too')",
    );
    assert_eq!(
        text(&out.stdout),
        "from the host scratch\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("out.txt")).unwrap(),
        "from the jail"
    );
    assert_eq!(
        std::fs::read_to_string(s.tmp.join("made.txt")).unwrap(),
        "tmp too"
    );
}

#[test]
fn exit_codes_exceptions_stdin_and_unicode_pass_through() {
    let s = Sandbox::new();
    let out = s.python("import sys; sys.exit(7)");
    assert_eq!(out.exit_code, Some(7));
    let out = s.python("raise ValueError('boom')");
    assert_eq!(out.exit_code, Some(1));
    assert!(
        text(&out.stderr).contains("ValueError: boom"),
        "{}",
        text(&out.stderr)
    );
    let mut job = s.job(&["/bin/cat"]);
    job.stdin = "héllo ✓ 世界".as_bytes().to_vec();
    let out = crate::support::runner().run(&job).unwrap();
    assert_eq!(text(&out.stdout), "héllo ✓ 世界");
    let out = s.python("print('ünïcødé ✓')");
    assert_eq!(text(&out.stdout), "ünïcødé ✓\n");
}

#[test]
fn shell_commands_run() {
    let s = Sandbox::new();
    s.put("a.txt", "x");
    let out = s.run(&["/bin/sh", "-c", "ls /workspace && echo done >&2 && exit 3"]);
    assert_eq!(out.exit_code, Some(3));
    assert!(text(&out.stdout).contains("a.txt"));
    assert_eq!(text(&out.stderr), "done\n");
}

#[test]
fn the_environment_is_only_what_was_asked() {
    let s = Sandbox::new();
    let mut job = s.job(&["/usr/bin/env"]);
    job.env.insert("MY_VAR".into(), "1".into());
    let out = crate::support::runner().run(&job).unwrap();
    let vars: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.split('=').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        vars,
        [
            "HOME",
            "LANG",
            "MY_VAR",
            "PATH",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONIOENCODING",
            "TMPDIR"
        ]
    );
}

#[test]
fn python_in_a_command_is_the_configured_interpreter() {
    let s = Sandbox::new();
    let out = s.run(&[
        "/bin/sh",
        "-c",
        "python3 -c 'import sys; print(sys.base_prefix)'",
    ]);
    let prefix = crate::support::runner()
        .interpreter()
        .prefix
        .display()
        .to_string();
    assert_eq!(text(&out.stdout).trim(), prefix, "{}", text(&out.stderr));
}

#[test]
fn a_warm_jail_hands_the_program_all_of_its_stdin() {
    // The spec travels on the helper's stdin ahead of the program's input: the helper must read
    // the spec and not one byte more, however large the input.
    let s = Sandbox::new();
    let mut job = s.job(&[
        "python3",
        "-c",
        "import sys; d = sys.stdin.buffer.read(); print(len(d), sum(i * b for i, b in enumerate(d)))",
    ]);
    job.stdin = (0..300_000u64).map(|i| (i % 251) as u8).collect();
    let weighted: u64 = job
        .stdin
        .iter()
        .enumerate()
        .map(|(i, &b)| i as u64 * u64::from(b))
        .sum();
    let out = crate::support::runner().run(&job).unwrap();
    assert_eq!(
        text(&out.stdout),
        format!("{} {weighted}\n", job.stdin.len()),
        "{out:?}"
    );
}

#[test]
fn a_cold_start_runs_the_same_jail() {
    // With no warm jails, each run starts its helper itself: the same layers, the same limits.
    let s = Sandbox::new();
    let cold = hearth_python_runner::Runner::new(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_hearth-jail")),
        &crate::support::python_path(),
    )
    .unwrap()
    .with_warm_jails(0);
    let mut job = s.job(&["/bin/sh", "-c", "read line; echo \"got $line\"; exit 3"]);
    job.stdin = b"hello\n".to_vec();
    let out = cold.run(&job).unwrap();
    assert_eq!(
        (out.exit_code, text(&out.stdout)),
        (Some(3), "got hello\n".to_owned()),
        "{out:?}"
    );
    for layer in ["cgroups", "mount_namespace", "seccomp", "landlock"] {
        assert_eq!(
            out.layers.get(layer).map(String::as_str),
            Some("enforced"),
            "{layer}: {:?}",
            out.layers
        );
    }
}

#[test]
fn private_session_directories_are_the_programs_inside_the_jail() {
    use std::os::unix::fs::PermissionsExt;

    // The worker's data dir, the read-only area and its files may all be private to root on the
    // host; inside the jail they are the jail user's (read-only where they are read-only).
    let s = Sandbox::new();
    let private = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    private(s.root.path(), 0o700);
    private(&s.skills, 0o700);
    private(&s.skills.join("SKILL.md"), 0o600);
    s.put("mine.txt", "mine\n");
    private(&s.workspace.join("mine.txt"), 0o600);

    let out = s.run(&[
        "/bin/sh",
        "-c",
        "cat /workspace/skills/SKILL.md /workspace/mine.txt; echo x > /workspace/skills/SKILL.md",
    ]);
    assert_eq!(text(&out.stdout), "# skill\nmine\n", "{out:?}");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(s.skills.join("SKILL.md")).unwrap(),
        "# skill\n"
    );
}

#[test]
fn relative_paths_mean_what_they_mean_to_the_caller() {
    // A worker started with a relative data dir hands relative paths to the runner.
    let s = Sandbox::new();
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = |path: &std::path::Path| {
        std::path::PathBuf::from(format!(
            "{up}{}",
            path.display().to_string().trim_start_matches('/')
        ))
    };
    let mut job = s.job(&["/bin/sh", "-c", "cat /workspace/in.txt > /tmp/out.txt"]);
    s.put("in.txt", "relative\n");
    job.root_dir = relative(&job.root_dir);
    for bind in &mut job.mounts {
        bind.source = relative(&bind.source);
    }
    assert!(job.root_dir.is_relative());
    let out = crate::support::runner().run(&job).unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(s.tmp.join("out.txt")).unwrap(),
        "relative\n"
    );
}

#[test]
fn without_idmapped_mounts_the_program_keeps_uid_0_and_can_require_it() {
    // ramfs has no idmapped mounts: a session directory on it leaves all of the session's
    // directories plain (all or none), the program as uid 0, and the layer saying why.
    let s = Sandbox::new();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "ramfs", "none"])
        .arg(&s.tmp)
        .status()
        .unwrap();
    assert!(mounted.success());
    let job = s.job(&[
        "/bin/sh",
        "-c",
        "id -u; echo a > /tmp/a && echo w > /workspace/w && echo ok",
    ]);
    let out = crate::support::runner().run(&job);
    let helper = std::path::PathBuf::from(env!("CARGO_BIN_EXE_hearth-jail"));
    let strict = hearth_python_runner::Runner::new(helper, &crate::support::python_path())
        .unwrap()
        .with_required_layers(vec![hearth_python_runner::Layer::Uid])
        .run(&job);
    let _ = std::process::Command::new("umount").arg(&s.tmp).status();

    let out = out.unwrap();
    assert_eq!(text(&out.stdout), "0\nok\n", "{out:?}");
    let uid = out.layers.get("uid").cloned().unwrap_or_default();
    assert!(
        uid.starts_with("unavailable: ") && uid.contains("idmapped"),
        "{uid}"
    );

    let strict = strict.unwrap();
    assert_eq!(strict.exit_code, Some(125), "{strict:?}");
    assert!(
        strict
            .jail_error
            .as_deref()
            .is_some_and(|e| e.contains("required layer `uid`")),
        "{strict:?}"
    );
    assert!(strict.stdout.is_empty());
}
