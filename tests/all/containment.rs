//! Deny tests: every way out of the session's view, tried through the built-in tools (which check
//! paths themselves) and through the `hostile` guest (which does not, so only the host stands in
//! its way).

use hearth_tests::{HOSTILE_WASM, SECRET, TestSession, runtime_with, snapshot_tree};
use serde_json::{Value, json};

/// The hostile guest's raw attempt; `ok: true` means the host let it through.
fn raw(s: &TestSession, args: Value) -> Value {
    s.ok("hostile", args)
}

fn assert_refused(out: &Value, what: &str) {
    assert_eq!(out["ok"], false, "{what} was allowed: {out}");
    assert!(
        !out.to_string().contains(SECRET),
        "{what} leaked the secret: {out}"
    );
}

#[test]
fn dot_dot_cannot_climb_out() {
    let s = TestSession::new();
    for path in [
        "/workspace/../secret.txt",
        "/workspace/a/../../secret.txt",
        "/tmp/../secret.txt",
    ] {
        assert_eq!(
            s.err("read_file", json!({ "file_path": path })).0,
            "invalid_path",
            "{path}"
        );
        assert_refused(&raw(&s, json!({ "action": "read", "path": path })), path);
        assert_refused(
            &raw(
                &s,
                json!({ "action": "write", "path": path, "content": "x" }),
            ),
            path,
        );
    }
    assert_eq!(std::fs::read_to_string(&s.secret).unwrap(), SECRET);
}

#[test]
fn relative_paths_are_invalid() {
    let s = TestSession::new();
    s.put("a.txt", "x");
    for tool_args in [
        ("read_file", json!({ "file_path": "a.txt" })),
        ("read_file", json!({ "file_path": "./a.txt" })),
        (
            "write_file",
            json!({ "file_path": "b.txt", "content": "x" }),
        ),
        ("ls", json!({ "path": "." })),
        ("grep", json!({ "pattern": "x", "path": "workspace" })),
    ] {
        assert_eq!(
            s.err(tool_args.0, tool_args.1.clone()).0,
            "invalid_path",
            "{tool_args:?}"
        );
    }
}

#[test]
fn host_paths_are_not_in_the_view() {
    let s = TestSession::new();
    let secret = s.secret.display().to_string();
    for path in [
        "/etc/passwd",
        "/proc/self/environ",
        secret.as_str(),
        "/",
        "/root",
    ] {
        // The secret's host path may start with `/tmp/`, which in the view is the session's own
        // scratch directory: there it is simply not found. Either way nothing leaks.
        let (code, message) = s.err("read_file", json!({ "file_path": path }));
        assert!(
            ["invalid_path", "is_directory", "file_not_found"].contains(&code.as_str()),
            "{path}: {code}"
        );
        assert!(!message.contains(SECRET));
        assert_refused(&raw(&s, json!({ "action": "read", "path": path })), path);
    }
    // Nothing is re-rooted: an absolute host path does not quietly land inside the workspace.
    assert_refused(
        &raw(
            &s,
            json!({ "action": "write", "path": "/etc/hearth-escape", "content": "x" }),
        ),
        "write /etc",
    );
    assert!(!std::path::Path::new("/etc/hearth-escape").exists());
    assert!(!s.workspace.join("etc").exists());
    assert_refused(&raw(&s, json!({ "action": "list", "path": "/" })), "list /");
}

#[test]
fn symlinks_out_of_the_view_are_not_followed() {
    let s = TestSession::new();
    std::os::unix::fs::symlink(&s.secret, s.workspace.join("file-link")).unwrap();
    std::os::unix::fs::symlink(s.root.path(), s.workspace.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", s.workspace.join("rel-link")).unwrap();
    let before = snapshot_tree(s.root.path());

    for path in [
        "/workspace/file-link",
        "/workspace/dir-link/secret.txt",
        "/workspace/rel-link",
    ] {
        let (code, message) = s.err("read_file", json!({ "file_path": path }));
        assert!(!message.contains(SECRET), "{path}: {message}");
        assert_ne!(code, "tool_crashed", "{path}");
        assert_refused(&raw(&s, json!({ "action": "read", "path": path })), path);
    }
    for path in [
        "/workspace/file-link",
        "/workspace/dir-link/new.txt",
        "/workspace/dir-link/secret.txt",
    ] {
        assert!(
            s.call(
                "edit_file",
                json!({ "file_path": path, "old_string": "host", "new_string": "x" })
            )
            .is_err()
        );
        assert_refused(
            &raw(
                &s,
                json!({ "action": "write", "path": path, "content": "pwned" }),
            ),
            path,
        );
    }
    assert_refused(
        &raw(
            &s,
            json!({ "action": "list", "path": "/workspace/dir-link" }),
        ),
        "list dir-link",
    );
    // The host's one-call listing: the same directories as WASI, no further.
    let listed = raw(&s, json!({ "action": "host_list", "path": "/workspace" }));
    assert_eq!(listed["ok"], true, "{listed}");
    assert!(
        listed["value"]
            .as_array()
            .unwrap()
            .contains(&json!("dir-link"))
    );
    let root = s.root.path().to_str().unwrap().to_owned();
    for path in [
        "/workspace/dir-link",
        "/workspace/dir-link/",
        "/workspace/../",
        "/workspace/..",
        "/",
        "/etc",
        root.as_str(),
        "workspace",
        "",
    ] {
        assert_refused(
            &raw(&s, json!({ "action": "host_list", "path": path })),
            &format!("host_list {path}"),
        );
    }
    let grep = s.ok("grep", json!({ "pattern": "secret" }));
    assert_eq!(grep["matches"], json!([]), "walks do not follow links out");

    // write_file replaces the link itself (rename over it); the target is untouched.
    s.ok(
        "write_file",
        json!({ "file_path": "/workspace/file-link", "content": "replaced" }),
    );
    assert_eq!(std::fs::read_to_string(&s.secret).unwrap(), SECRET);
    let after: Vec<_> = snapshot_tree(s.root.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&s.workspace))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&s.workspace))
        .collect();
    assert_eq!(before, after, "nothing outside the workspace changed");
}

#[test]
fn read_only_areas_cannot_change_under_any_spelling() {
    let s = TestSession::new();
    s.put("a/placeholder", "x");
    std::os::unix::fs::symlink("skills", s.workspace.join("alias")).unwrap();
    std::os::unix::fs::symlink(&s.skills, s.workspace.join("abs-alias")).unwrap();
    let before = snapshot_tree(&s.skills);
    let spellings = [
        "/workspace/skills/SKILL.md",
        "/workspace/skills/new.md",
        "/workspace/./skills/SKILL.md",
        "/workspace/a/../skills/SKILL.md",
        "//workspace//skills/SKILL.md",
        "/workspace/alias/SKILL.md",
        "/workspace/abs-alias/SKILL.md",
    ];
    for path in spellings {
        assert!(
            s.call(
                "write_file",
                json!({ "file_path": path, "content": "pwned" })
            )
            .is_err(),
            "{path}"
        );
        assert!(
            s.call(
                "edit_file",
                json!({ "file_path": path, "old_string": "skill", "new_string": "x" })
            )
            .is_err(),
            "{path}"
        );
        assert!(
            s.call("delete", json!({ "file_path": path })).is_err(),
            "{path}"
        );
        let raw_write = raw(
            &s,
            json!({ "action": "write", "path": path, "content": "pwned" }),
        );
        // The raw guest may create a file in the *workspace* under a name the area shadows, but
        // never in the area itself; the snapshot below is what matters.
        let _ = raw_write;
    }
    assert_eq!(
        s.err(
            "write_file",
            json!({ "file_path": "/workspace/skills/x", "content": "x" })
        )
        .0,
        "permission_denied"
    );
    assert_eq!(
        s.err("delete", json!({ "file_path": "/workspace/skills" }))
            .0,
        "permission_denied"
    );
    assert_refused(
        &raw(
            &s,
            json!({ "action": "write", "path": "/workspace/skills/SKILL.md", "content": "x" }),
        ),
        "raw write",
    );
    assert_eq!(
        before,
        snapshot_tree(&s.skills),
        "the read-only area is unchanged"
    );
    // Reading it is fine.
    assert_eq!(
        s.ok(
            "read_file",
            json!({ "file_path": "/workspace/./skills/SKILL.md" })
        )["total_lines"],
        2
    );
}

#[test]
fn a_read_only_tool_cannot_write() {
    let runtime = runtime_with(&[("hostile", HOSTILE_WASM, Some("read_only = true\n"))]);
    assert!(runtime.tool("hostile").unwrap().read_only);
    let s = TestSession::new();
    s.put("existing.txt", "original");
    for path in [
        "/workspace/new.txt",
        "/workspace/existing.txt",
        "/tmp/new.txt",
    ] {
        let out = runtime
            .call(
                &s.view,
                "hostile",
                &json!({ "action": "write", "path": path, "content": "x" }),
            )
            .unwrap();
        assert_eq!(out["ok"], false, "{path}: {out}");
    }
    assert_eq!(s.get("existing.txt"), "original");
    assert!(!s.workspace.join("new.txt").exists() && !s.tmp.join("new.txt").exists());
    // ...while reading still works.
    let out = runtime
        .call(
            &s.view,
            "hostile",
            &json!({ "action": "read", "path": "/workspace/existing.txt" }),
        )
        .unwrap();
    assert_eq!(out["value"], "original");
}

#[test]
fn one_session_cannot_see_another() {
    let a = TestSession::new();
    let b = TestSession::new();
    a.put("private.txt", "a's data");
    let a_file = a.workspace.join("private.txt").display().to_string();
    let climb = format!(
        "/workspace/../../{}/workspace/private.txt",
        a.root.path().file_name().unwrap().to_string_lossy()
    );
    for path in [a_file.as_str(), climb.as_str()] {
        assert!(
            b.call("read_file", json!({ "file_path": path })).is_err(),
            "{path}"
        );
        assert_refused(&raw(&b, json!({ "action": "read", "path": path })), path);
    }
    let a_workspace = a.workspace.display().to_string();
    let climb_dir = climb.trim_end_matches("/private.txt");
    for path in [a_workspace.as_str(), climb_dir] {
        let listed = raw(&b, json!({ "action": "host_list", "path": path }));
        assert_eq!(listed["ok"], false, "host_list {path}: {listed}");
    }
    std::os::unix::fs::symlink(&a_file, b.workspace.join("peek")).unwrap();
    assert!(
        b.call("read_file", json!({ "file_path": "/workspace/peek" }))
            .is_err()
    );
    assert_refused(
        &raw(&b, json!({ "action": "read", "path": "/workspace/peek" })),
        "peek",
    );
    // Same view paths, different directories: each session sees only its own /tmp.
    a.ok(
        "write_file",
        json!({ "file_path": "/tmp/mine", "content": "a" }),
    );
    assert_eq!(
        b.err("read_file", json!({ "file_path": "/tmp/mine" })).0,
        "file_not_found"
    );
}

#[test]
fn no_environment_arguments_or_network() {
    let s = TestSession::new();
    // SAFETY-free way to prove the worker's own environment does not leak: the guest sees none.
    let out = raw(&s, json!({ "action": "env" }));
    assert_eq!(out["vars"], json!([]));
    assert_eq!(out["args"], json!([]));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    assert_refused(
        &raw(&s, json!({ "action": "connect", "addr": addr })),
        "tcp connect",
    );
    assert!(listener.accept().is_err(), "nothing reached the listener");
}
