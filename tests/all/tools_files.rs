//! ls, read_file, write_file, edit_file and delete: deepagents 0.7 semantics (DESIGN.md §2).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use base64::Engine as _;
use hearth_tests::TestSession;
use serde_json::json;

/// `\xff.txt`: a name that is not UTF-8, as a jailed program can make one; WASI cannot carry it.
fn not_utf8_name() -> &'static OsStr {
    OsStr::from_bytes(b"\xff.txt")
}

#[test]
fn ls_lists_one_level_sorted_with_directories_marked() {
    let s = TestSession::new();
    s.put("b.txt", "hello");
    s.put("a/inner.txt", "x");
    let out = s.ok("ls", json!({ "path": "/workspace" }));
    let entries = out["entries"].as_array().unwrap();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/workspace/a/", "/workspace/b.txt", "/workspace/skills/"]
    );
    assert_eq!(entries[1]["is_dir"], false);
    assert_eq!(entries[1]["size"], 5);
    assert_eq!(entries[0]["is_dir"], true);
    assert_eq!(
        entries[2]["is_dir"], true,
        "the read-only area shows as a directory"
    );
    let modified = entries[1]["modified_at"].as_str().unwrap();
    assert!(
        modified.len() == 20 && modified.ends_with('Z'),
        "{modified}"
    );
    assert_eq!(out["truncated"], false);
}

#[test]
fn ls_of_the_root_shows_the_view() {
    let s = TestSession::new();
    let out = s.ok("ls", json!({ "path": "/" }));
    let paths: Vec<&str> = out["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/tmp/", "/workspace/"]);
    let skills = s.ok("ls", json!({ "path": "/workspace/skills" }));
    assert_eq!(skills["entries"][0]["path"], "/workspace/skills/SKILL.md");
}

#[test]
fn ls_errors() {
    let s = TestSession::new();
    s.put("f.txt", "x");
    assert_eq!(
        s.err("ls", json!({ "path": "/workspace/nope" })).0,
        "file_not_found"
    );
    assert_eq!(
        s.err("ls", json!({ "path": "/workspace/f.txt" })).0,
        "invalid_input"
    );
    assert_eq!(
        s.err("ls", json!({ "path": "workspace" })).0,
        "invalid_path"
    );
}

#[test]
fn read_pages_by_line() {
    let s = TestSession::new();
    s.put("five.txt", "a\nb\nc\nd\ne\n");
    let out = s.ok(
        "read_file",
        json!({ "file_path": "/workspace/five.txt", "offset": 1, "limit": 2 }),
    );
    assert_eq!(out["content"], "b\nc\n");
    assert_eq!(out["encoding"], "utf-8");
    assert_eq!(
        (out["start_line"].as_u64(), out["end_line"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(out["total_lines"], 5);
    assert_eq!(out["next_offset"], 3);
    let rest = s.ok(
        "read_file",
        json!({ "file_path": "/workspace/five.txt", "offset": 3 }),
    );
    assert_eq!(rest["content"], "d\ne\n");
    assert_eq!(rest["next_offset"], serde_json::Value::Null);
    let whole = s.ok("read_file", json!({ "file_path": "/workspace/five.txt" }));
    assert_eq!(
        whole["content"], "a\nb\nc\nd\ne\n",
        "raw text, no line numbers"
    );
}

#[test]
fn read_counts_a_last_line_without_newline_and_keeps_crlf() {
    let s = TestSession::new();
    s.put("x.txt", "one\r\ntwo");
    let out = s.ok("read_file", json!({ "file_path": "/workspace/x.txt" }));
    assert_eq!(out["total_lines"], 2);
    assert_eq!(out["content"], "one\r\ntwo");
}

#[test]
fn read_past_the_end_says_the_file_length() {
    let s = TestSession::new();
    s.put("five.txt", "a\nb\nc\nd\ne\n");
    let (code, message) = s.err(
        "read_file",
        json!({ "file_path": "/workspace/five.txt", "offset": 5 }),
    );
    assert_eq!(code, "invalid_input");
    assert!(
        message.contains("Line offset 5 exceeds file length (5 lines)"),
        "{message}"
    );
}

#[test]
fn read_an_empty_file() {
    let s = TestSession::new();
    s.put("empty.txt", "");
    let out = s.ok("read_file", json!({ "file_path": "/workspace/empty.txt" }));
    assert_eq!(out["content"], "");
    assert_eq!(out["total_lines"], 0);
    assert_eq!(out["next_offset"], serde_json::Value::Null);
}

#[test]
fn read_binary_comes_back_base64() {
    let s = TestSession::new();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    s.put("blob.bin", &bytes);
    let out = s.ok("read_file", json!({ "file_path": "/workspace/blob.bin" }));
    assert_eq!(out["encoding"], "base64");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(out["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, bytes);
}

#[test]
fn read_refuses_large_binaries_with_deepagents_message() {
    let s = TestSession::new();
    s.put("big.bin", vec![0u8; 512_001]);
    let (code, message) = s.err("read_file", json!({ "file_path": "/workspace/big.bin" }));
    assert_eq!(code, "too_large");
    assert!(
        message.contains("Binary file exceeds maximum preview size of 512000 bytes"),
        "{message}"
    );
    s.put("edge.bin", vec![0u8; 512_000]);
    s.ok("read_file", json!({ "file_path": "/workspace/edge.bin" }));
}

#[test]
fn read_caps_a_huge_page_and_says_so() {
    let s = TestSession::new();
    let line = "x".repeat(1000) + "\n";
    s.put("long.txt", line.repeat(2000)); // ~2 MB of text in 2000 lines
    let out = s.ok("read_file", json!({ "file_path": "/workspace/long.txt" }));
    assert_eq!(out["truncated"], true);
    let end = out["end_line"].as_u64().unwrap();
    assert!(end > 100 && end < 2000, "{end}");
    assert_eq!(out["next_offset"], end);
    assert_eq!(
        out["content"].as_str().unwrap().len() as u64,
        end * 1001,
        "whole lines only"
    );
    // A single line longer than a page still shows its beginning.
    s.put("one-line.txt", "y".repeat(600_000));
    let out = s.ok(
        "read_file",
        json!({ "file_path": "/workspace/one-line.txt" }),
    );
    assert_eq!(out["truncated"], true);
    assert_eq!(out["end_line"], 1);
    assert!(!out["content"].as_str().unwrap().is_empty());
}

#[test]
fn read_errors() {
    let s = TestSession::new();
    std::fs::create_dir(s.workspace.join("dir")).unwrap();
    assert_eq!(
        s.err("read_file", json!({ "file_path": "/workspace/dir" }))
            .0,
        "is_directory"
    );
    assert_eq!(
        s.err("read_file", json!({ "file_path": "/workspace/missing" }))
            .0,
        "file_not_found"
    );
    assert_eq!(
        s.err(
            "read_file",
            json!({ "file_path": "/workspace/x", "limit": 0 })
        )
        .0,
        "invalid_arguments"
    );
}

#[test]
fn write_creates_parents_and_overwrites_atomically() {
    let s = TestSession::new();
    let out = s.ok(
        "write_file",
        json!({ "file_path": "/workspace/src/pkg/mod.py", "content": "v1" }),
    );
    assert_eq!(out["created"], true);
    assert_eq!(out["bytes_written"], 2);
    assert_eq!(s.get("src/pkg/mod.py"), "v1");
    let out = s.ok(
        "write_file",
        json!({ "file_path": "/workspace/src/pkg/mod.py", "content": "v2 ünïcode" }),
    );
    assert_eq!(out["created"], false);
    assert_eq!(s.get("src/pkg/mod.py"), "v2 ünïcode");
    let names: Vec<_> = std::fs::read_dir(s.workspace.join("src/pkg"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["mod.py"], "no temporary file is left behind");
}

#[test]
fn write_to_tmp_and_binary_through_base64() {
    let s = TestSession::new();
    let bytes = [0u8, 159, 146, 150, 255];
    let content = base64::engine::general_purpose::STANDARD.encode(bytes);
    s.ok(
        "write_file",
        json!({ "file_path": "/tmp/out.bin", "content": content, "encoding": "base64" }),
    );
    assert_eq!(std::fs::read(s.tmp.join("out.bin")).unwrap(), bytes);
    assert_eq!(
        s.err(
            "write_file",
            json!({ "file_path": "/tmp/x", "content": "%%%", "encoding": "base64" })
        )
        .0,
        "invalid_input"
    );
}

#[test]
fn write_onto_a_directory_is_refused() {
    let s = TestSession::new();
    std::fs::create_dir(s.workspace.join("dir")).unwrap();
    assert_eq!(
        s.err(
            "write_file",
            json!({ "file_path": "/workspace/dir", "content": "x" })
        )
        .0,
        "is_directory"
    );
    assert_eq!(
        s.err(
            "write_file",
            json!({ "file_path": "/workspace", "content": "x" })
        )
        .0,
        "is_directory"
    );
}

#[test]
fn edit_replaces_exactly_one_occurrence() {
    let s = TestSession::new();
    s.put("m.py", "def f():\n    return 1\n");
    let out = s.ok(
        "edit_file",
        json!({ "file_path": "/workspace/m.py", "old_string": "return 1", "new_string": "return 2" }),
    );
    assert_eq!(out["occurrences"], 1);
    assert_eq!(s.get("m.py"), "def f():\n    return 2\n");
}

#[test]
fn edit_not_found_and_ambiguous_are_conflicts() {
    let s = TestSession::new();
    s.put("m.txt", "x x x");
    let (code, message) = s.err(
        "edit_file",
        json!({ "file_path": "/workspace/m.txt", "old_string": "y", "new_string": "z" }),
    );
    assert_eq!(code, "conflict");
    assert!(
        message.contains("String not found in file: 'y'"),
        "{message}"
    );
    let (code, message) = s.err(
        "edit_file",
        json!({ "file_path": "/workspace/m.txt", "old_string": "x", "new_string": "z" }),
    );
    assert_eq!(code, "conflict");
    assert!(message.contains("appears 3 times"), "{message}");
    assert_eq!(s.get("m.txt"), "x x x", "a refused edit changes nothing");
}

#[test]
fn edit_replace_all_counts_occurrences() {
    let s = TestSession::new();
    s.put("m.txt", "x x x");
    let out = s.ok(
        "edit_file",
        json!({ "file_path": "/workspace/m.txt", "old_string": "x", "new_string": "yy", "replace_all": true }),
    );
    assert_eq!(out["occurrences"], 3);
    assert_eq!(s.get("m.txt"), "yy yy yy");
}

#[test]
fn edit_errors() {
    let s = TestSession::new();
    s.put("bin", [0xffu8, 0xfe, 0x00]);
    s.put("t.txt", "abc");
    let edit = |f: &str, old: &str, new: &str| {
        s.err(
            "edit_file",
            json!({ "file_path": f, "old_string": old, "new_string": new }),
        )
        .0
    };
    assert_eq!(edit("/workspace/bin", "a", "b"), "invalid_input");
    assert_eq!(edit("/workspace/t.txt", "abc", "abc"), "invalid_input");
    assert_eq!(edit("/workspace/t.txt", "", "x"), "invalid_arguments");
    assert_eq!(edit("/workspace/none.txt", "a", "b"), "file_not_found");
}

#[test]
fn delete_files_and_directories() {
    let s = TestSession::new();
    s.put("f.txt", "x");
    s.put("d/e/g.txt", "y");
    assert_eq!(
        s.ok("delete", json!({ "file_path": "/workspace/f.txt" }))["is_dir"],
        false
    );
    assert_eq!(
        s.ok("delete", json!({ "file_path": "/workspace/d" }))["is_dir"],
        true
    );
    assert!(!s.workspace.join("f.txt").exists() && !s.workspace.join("d").exists());
    assert_eq!(
        s.err("delete", json!({ "file_path": "/workspace/f.txt" }))
            .0,
        "file_not_found"
    );
}

#[test]
fn delete_refuses_roots_and_removes_links_not_targets() {
    let s = TestSession::new();
    s.put("target.txt", "keep me");
    std::os::unix::fs::symlink("target.txt", s.workspace.join("link")).unwrap();
    s.ok("delete", json!({ "file_path": "/workspace/link" }));
    assert_eq!(s.get("target.txt"), "keep me");
    assert_eq!(
        s.err("delete", json!({ "file_path": "/workspace" })).0,
        "permission_denied"
    );
    assert_eq!(
        s.err("delete", json!({ "file_path": "/tmp" })).0,
        "permission_denied"
    );
    assert_eq!(
        s.err("delete", json!({ "file_path": "/" })).0,
        "is_directory"
    );
    assert!(s.workspace.exists() && s.tmp.exists());
}

#[test]
fn special_files_are_refused_not_waited_on() {
    let s = TestSession::new();
    let fifo = s.workspace.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a FIFO for reading would block until a writer appears: never, here.
    assert_eq!(
        s.err("read_file", json!({ "file_path": "/workspace/pipe" }))
            .0,
        "invalid_input"
    );
    let edit = json!({ "file_path": "/workspace/pipe", "old_string": "a", "new_string": "b" });
    assert_eq!(s.err("edit_file", edit).0, "invalid_input");
    s.put("a.txt", "needle");
    let grep = s.ok("grep", json!({ "pattern": "needle" }));
    assert_eq!(
        grep["matches"][0]["path"], "/workspace/a.txt",
        "walks skip the FIFO"
    );
}

#[test]
fn names_of_the_maximum_length_can_be_written_and_edited() {
    let s = TestSession::new();
    let path = format!("/workspace/{}", "n".repeat(255));
    s.ok("write_file", json!({ "file_path": path, "content": "one" }));
    s.ok("write_file", json!({ "file_path": path, "content": "two" }));
    s.ok(
        "edit_file",
        json!({ "file_path": path, "old_string": "two", "new_string": "three" }),
    );
    assert_eq!(
        s.ok("read_file", json!({ "file_path": path }))["content"],
        "three"
    );
}

#[test]
fn ls_skips_and_counts_names_that_are_not_utf8() {
    let s = TestSession::new();
    s.put("ok.txt", "fine");
    std::fs::write(s.workspace.join(not_utf8_name()), "bad name").unwrap();
    let out = s.ok("ls", json!({ "path": "/workspace" }));
    let paths: Vec<&str> = out["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/workspace/ok.txt", "/workspace/skills/"]);
    assert_eq!(out["skipped_names"], 1);
    assert_eq!(out["truncated"], false);
    let clean = s.ok("ls", json!({ "path": "/tmp" }));
    assert_eq!(clean["skipped_names"], 0);
    // A second pair, so that on ext4 (hash order) one bad name comes before a good one in
    // directory order: the listing must go on past it.
    s.put("more/also.txt", "x");
    std::fs::write(
        s.workspace
            .join("more")
            .join(OsStr::from_bytes(b"b\xfe.txt")),
        "y",
    )
    .unwrap();
    let more = s.ok("ls", json!({ "path": "/workspace/more" }));
    assert_eq!(more["entries"][0]["path"], "/workspace/more/also.txt");
    assert_eq!(more["entries"].as_array().unwrap().len(), 1);
    assert_eq!(more["skipped_names"], 1);
}

#[test]
fn delete_removes_what_it_can_name_and_says_what_is_left() {
    let s = TestSession::new();
    s.put("d/ok.txt", "x");
    s.put("d/e/deep.txt", "y");
    std::fs::write(s.workspace.join("d/e").join(not_utf8_name()), "z").unwrap();
    let (code, message) = s.err("delete", json!({ "file_path": "/workspace/d" }));
    assert_eq!(code, "conflict", "{message}");
    assert!(message.contains("UTF-8"), "{message}");
    assert!(!s.workspace.join("d/ok.txt").exists());
    assert!(!s.workspace.join("d/e/deep.txt").exists());
    assert!(s.workspace.join("d/e").join(not_utf8_name()).exists());
}

#[test]
fn names_longer_than_255_bytes_are_invalid_paths() {
    let s = TestSession::new();
    let long = format!("/workspace/{}", "n".repeat(256));
    let (code, message) = s.err("write_file", json!({ "file_path": long, "content": "x" }));
    assert_eq!(code, "invalid_path", "{message}");
    assert!(message.contains("255 bytes"), "{message}");
    let nested = format!("/tmp/{}/a.txt", "d".repeat(300));
    assert_eq!(
        s.err("write_file", json!({ "file_path": nested, "content": "x" }))
            .0,
        "invalid_path"
    );
    for (tool, args) in [
        ("read_file", json!({ "file_path": long })),
        ("ls", json!({ "path": long })),
        ("delete", json!({ "file_path": long })),
        ("glob", json!({ "pattern": "*", "path": long })),
    ] {
        assert_eq!(s.err(tool, args).0, "invalid_path", "{tool}");
    }
}
