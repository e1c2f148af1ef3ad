//! Loading tools: metadata from the components, manifests that only narrow, failures that are
//! loud but never fatal, and the compiled-artifact cache.

use hearth_runtime::{Runtime, RuntimeConfig};
use hearth_tests::{HOSTILE_WASM, TestSession, runtime, tools_dir};
use serde_json::json;

/// Loads `tools` beside the built-ins; returns why the one that failed was skipped (the others
/// load, and so does the runtime).
fn load_failure(tools: &[(&str, &str, Option<&str>)]) -> Option<String> {
    let dir = tools_dir(tools);
    let runtime = Runtime::new(RuntimeConfig {
        tools_dir: Some(dir.path().to_path_buf()),
        cache_dir: Some(hearth_tests::shared_cache_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert!(
        runtime.tool("read_file").is_some(),
        "one bad tool does not stop the others"
    );
    let failed = runtime.failed();
    assert!(failed.len() <= 1, "{failed:?}");
    failed.first().map(|f| f.error.clone())
}

#[test]
fn builtins_describe_themselves() {
    let tools = runtime().tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "delete",
            "edit_file",
            "glob",
            "grep",
            "hostile",
            "ls",
            "read_file",
            "write_file"
        ]
    );
    for tool in runtime().tools() {
        assert!(
            tool.description.len() > 40,
            "{} needs a real description",
            tool.name
        );
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
        assert_eq!(
            tool.input_schema["additionalProperties"], false,
            "{}",
            tool.name
        );
        let expect_read_only = matches!(tool.name.as_str(), "ls" | "read_file" | "glob" | "grep");
        assert_eq!(tool.read_only, expect_read_only, "{}", tool.name);
    }
    let read = runtime().tool("read_file").unwrap();
    assert_eq!(read.input_schema["required"], json!(["file_path"]));
    assert_eq!(read.input_schema["properties"]["offset"]["type"], "integer");
}

#[test]
fn arguments_are_validated_before_the_guest_runs() {
    let s = TestSession::new();
    let cases = [
        json!({}),
        json!({ "file_path": 7 }),
        json!({ "file_path": "/workspace/x", "offset": -1 }),
        json!({ "file_path": "/workspace/x", "bogus": true }),
        json!(["/workspace/x"]),
    ];
    for args in cases {
        let (code, message) = s.err("read_file", args.clone());
        assert_eq!(code, "invalid_arguments", "{args}: {message}");
    }
    assert_eq!(s.err("no_such_tool", json!({})).0, "unknown_tool");
}

#[test]
fn a_manifest_cannot_widen() {
    let refused = |manifest: &str| load_failure(&[("hostile", HOSTILE_WASM, Some(manifest))]);
    let too_long = refused("deadline_ms = 60000").unwrap_or_default();
    assert!(too_long.contains("deadline_ms"), "{too_long}");
    let too_big = refused("memory_mib = 1024").unwrap_or_default();
    assert!(too_big.contains("memory_mib"), "{too_big}");
    let unknown = refused("bogus = true").unwrap_or_default();
    assert!(unknown.contains("unknown field"), "{unknown}");
    let ungranted = refused("env = [\"API_KEY\"]").unwrap_or_default();
    assert!(ungranted.contains("does not grant"), "{ungranted}");
    assert_eq!(refused("deadline_ms = 100"), None);
}

#[test]
fn bad_tools_are_skipped_and_said() {
    let mismatch = load_failure(&[("renamed", HOSTILE_WASM, None)]).unwrap_or_default();
    assert!(mismatch.contains("installed as `renamed`"), "{mismatch}");

    let ls = hearth_runtime::BUILTIN_TOOLS
        .iter()
        .find(|(n, _)| *n == "ls")
        .unwrap()
        .1;
    let dir = tempfile::tempdir().unwrap();
    let ls_path = dir.path().join("ls.wasm");
    std::fs::write(&ls_path, ls).unwrap();
    let duplicate = load_failure(&[("ls", ls_path.to_str().unwrap(), None)]).unwrap_or_default();
    assert!(duplicate.contains("defined twice"), "{duplicate}");

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let compile = load_failure(&[("junk", junk.to_str().unwrap(), None)]).unwrap_or_default();
    assert!(
        compile.contains("compiling the component failed"),
        "{compile}"
    );
}

#[test]
fn the_compile_cache_serves_a_restart_and_survives_corruption() {
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let first = Runtime::new(config.clone()).unwrap();
    assert_eq!(first.load_stats().from_cache, 0);
    let builtins = first.load_stats().compiled;
    assert_eq!(builtins, hearth_runtime::BUILTIN_TOOLS.len());
    drop(first);

    let second = Runtime::new(config.clone()).unwrap();
    assert_eq!(
        (second.load_stats().compiled, second.load_stats().from_cache),
        (0, builtins)
    );
    let s = TestSession::new();
    second
        .call(
            &s.view,
            "write_file",
            &json!({ "file_path": "/workspace/a", "content": "x" }),
        )
        .unwrap();
    drop(second);

    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Runtime::new(config).unwrap();
    assert_eq!(
        third.load_stats().compiled,
        builtins,
        "corrupt artifacts are recompiled"
    );
    third
        .call(
            &s.view,
            "read_file",
            &json!({ "file_path": "/workspace/a" }),
        )
        .unwrap();
}
