//! glob and grep: deepagents 0.7 semantics (DESIGN.md §2).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use hearth_tests::TestSession;
use serde_json::{Value, json};

fn paths(out: &Value) -> Vec<String> {
    out["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().to_owned())
        .collect()
}

fn project() -> TestSession {
    let s = TestSession::new();
    s.put("main.py", "import utils\nprint(utils.answer())\n");
    s.put("utils.py", "def answer():\n    return 42\n");
    s.put("src/app/core.py", "abc\na.c\n");
    s.put("src/app/data.json", "{}");
    s.put("src/readme.md", "a.c here\nand abc there\n");
    s.put(".env", "SECRET=1");
    s.put(".github/workflows/ci.yml", "on: push");
    s.put("docs/ci.yml", "x");
    s
}

#[test]
fn glob_without_slash_matches_names_at_any_depth() {
    let s = project();
    let out = s.ok("glob", json!({ "pattern": "*.py" }));
    assert_eq!(
        paths(&out),
        [
            "/workspace/main.py",
            "/workspace/src/app/core.py",
            "/workspace/utils.py"
        ]
    );
    assert_eq!(out["truncated"], false);
    assert_eq!(out["matches"][0]["is_dir"], false);
    assert!(out["matches"][0]["size"].as_u64().unwrap() > 0);
}

#[test]
fn glob_with_slash_is_relative_and_globstar_spans_directories() {
    let s = project();
    assert_eq!(
        paths(&s.ok("glob", json!({ "pattern": "/*.py" }))),
        ["/workspace/main.py", "/workspace/utils.py"]
    );
    assert_eq!(
        paths(&s.ok("glob", json!({ "pattern": "src/**/*.py" }))),
        ["/workspace/src/app/core.py"]
    );
    assert_eq!(
        paths(&s.ok("glob", json!({ "pattern": "**/*.{json,md}" }))),
        [
            "/workspace/skills/SKILL.md",
            "/workspace/src/app/data.json",
            "/workspace/src/readme.md"
        ]
    );
    assert_eq!(
        paths(&s.ok(
            "glob",
            json!({ "pattern": "*.py", "path": "/workspace/src" })
        )),
        ["/workspace/src/app/core.py"]
    );
}

#[test]
fn glob_dot_names_need_an_explicit_dot() {
    let s = project();
    let star = paths(&s.ok("glob", json!({ "pattern": "*" })));
    assert!(!star.contains(&"/workspace/.env".to_owned()), "{star:?}");
    assert!(star.contains(&"/workspace/main.py".to_owned()), "{star:?}");
    assert_eq!(
        paths(&s.ok("glob", json!({ "pattern": ".env" }))),
        ["/workspace/.env"]
    );
    assert_eq!(
        paths(&s.ok("glob", json!({ "pattern": "**/*.yml" }))),
        ["/workspace/docs/ci.yml"]
    );
    assert_eq!(
        paths(&s.ok("glob", json!({ "pattern": "*.yml" }))),
        [
            "/workspace/.github/workflows/ci.yml",
            "/workspace/docs/ci.yml"
        ]
    );
}

#[test]
fn glob_returns_files_only_and_sees_read_only_areas() {
    let s = project();
    let all = paths(&s.ok("glob", json!({ "pattern": "**" })));
    assert!(
        all.iter()
            .all(|p| !p.ends_with("/src") && !p.ends_with("/app")),
        "{all:?}"
    );
    assert!(
        all.contains(&"/workspace/skills/SKILL.md".to_owned()),
        "{all:?}"
    );
}

#[test]
fn glob_errors() {
    let s = project();
    assert_eq!(
        s.err("glob", json!({ "pattern": "../*" })).0,
        "invalid_input"
    );
    assert_eq!(
        s.err("glob", json!({ "pattern": "" })).0,
        "invalid_arguments"
    );
    assert_eq!(
        s.err("glob", json!({ "pattern": "*", "path": "/etc" })).0,
        "invalid_path"
    );
}

#[test]
fn grep_is_literal() {
    let s = project();
    let out = s.ok("grep", json!({ "pattern": "a.c" }));
    let hits: Vec<(String, u64, String)> = out["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().into(),
                m["line"].as_u64().unwrap(),
                m["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("/workspace/src/app/core.py".into(), 2, "a.c".into()),
            ("/workspace/src/readme.md".into(), 1, "a.c here".into()),
        ],
        "`a.c` must not match `abc`"
    );
    assert_eq!(
        s.ok("grep", json!({ "pattern": "(" }))["matches"][0]["path"],
        "/workspace/main.py"
    );
}

#[test]
fn grep_filters_by_glob_and_path() {
    let s = project();
    let out = s.ok("grep", json!({ "pattern": "a", "glob": "*.md" }));
    assert!(paths(&out).iter().all(|p| p.ends_with(".md")));
    assert!(!paths(&out).is_empty());
    let out = s.ok(
        "grep",
        json!({ "pattern": "return", "path": "/workspace/utils.py" }),
    );
    assert_eq!(out["matches"][0]["line"], 2);
    let out = s.ok(
        "grep",
        json!({ "pattern": "skill", "path": "/workspace/skills" }),
    );
    assert_eq!(out["matches"][0]["path"], "/workspace/skills/SKILL.md");
}

#[test]
fn grep_caps_matches_and_skips_binaries() {
    let s = TestSession::new();
    s.put("many.txt", "hit\n".repeat(50));
    s.put("blob.bin", b"hit\0hit\0");
    let out = s.ok("grep", json!({ "pattern": "hit", "max_count": 10 }));
    assert_eq!(out["matches"].as_array().unwrap().len(), 10);
    assert_eq!(out["truncated"], true);
    let out = s.ok("grep", json!({ "pattern": "hit" }));
    assert_eq!(
        out["matches"].as_array().unwrap().len(),
        50,
        "the binary file is skipped"
    );
    assert_eq!(out["truncated"], false);
    assert_eq!(
        s.err("grep", json!({ "pattern": "hit", "max_count": 0 })).0,
        "invalid_arguments"
    );
}

#[test]
fn searches_default_to_the_sessions_workspace_wherever_it_is_mounted() {
    let s = TestSession::new();
    s.put("src/lib.rs", "fn answer() {}\n");
    let view = hearth_runtime::SessionView::new(vec![
        hearth_runtime::Mount {
            view_path: "/home/agent".into(),
            host_path: s.workspace.clone(),
            writable: true,
        },
        hearth_runtime::Mount {
            view_path: "/scratch".into(),
            host_path: s.tmp.clone(),
            writable: true,
        },
    ])
    .unwrap();
    let runtime = hearth_tests::runtime();
    let glob = runtime
        .call(&view, "glob", &json!({ "pattern": "*.rs" }))
        .unwrap();
    assert_eq!(paths(&glob), ["/home/agent/src/lib.rs"]);
    let grep = runtime
        .call(&view, "grep", &json!({ "pattern": "answer" }))
        .unwrap();
    assert_eq!(grep["matches"][0]["path"], "/home/agent/src/lib.rs");
    let outside = runtime.call(
        &view,
        "read_file",
        &json!({ "file_path": "/workspace/src/lib.rs" }),
    );
    assert_eq!(
        outside.unwrap_err().code(),
        "invalid_path",
        "/workspace is not part of this view"
    );
}

#[test]
fn walks_skip_and_count_names_that_are_not_utf8() {
    let s = TestSession::new();
    s.put("ok.txt", "needle\n");
    s.put("sub/also.txt", "needle\n");
    // Beside and below good names: the walk must go on past them, not stop.
    std::fs::write(s.workspace.join(OsStr::from_bytes(b"\xff.txt")), "needle\n").unwrap();
    std::fs::write(
        s.workspace
            .join("sub")
            .join(OsStr::from_bytes(b"b\xfe.txt")),
        "needle\n",
    )
    .unwrap();
    let glob = s.ok("glob", json!({ "pattern": "*.txt" }));
    assert_eq!(
        paths(&glob),
        ["/workspace/ok.txt", "/workspace/sub/also.txt"]
    );
    assert_eq!(glob["skipped_names"], 2);
    assert_eq!(glob["truncated"], false);
    let grep = s.ok("grep", json!({ "pattern": "needle" }));
    assert_eq!(
        paths(&grep),
        ["/workspace/ok.txt", "/workspace/sub/also.txt"]
    );
    assert_eq!(grep["skipped_names"], 2);
    let top = s.ok("glob", json!({ "pattern": "/*.txt" }));
    assert_eq!(paths(&top), ["/workspace/ok.txt"]);
    let clean = s.ok(
        "grep",
        json!({ "pattern": "needle", "path": "/workspace/sub/also.txt" }),
    );
    assert_eq!(clean["skipped_names"], 0);
}
