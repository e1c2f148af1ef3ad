//! Loading tools: metadata from the components, manifests that only narrow, loud failures, and
//! the compiled-artifact cache.

use hearth_runtime::{LoadError, Runtime, RuntimeConfig};
use hearth_tests::{HOSTILE_WASM, TestSession, runtime, tools_dir};
use serde_json::json;

fn load(tools: &[(&str, &str, Option<&str>)]) -> Result<Runtime, LoadError> {
    let dir = tools_dir(tools);
    Runtime::new(RuntimeConfig {
        tools_dir: Some(dir.path().to_path_buf()),
        cache_dir: Some(hearth_tests::shared_cache_dir()),
        ..RuntimeConfig::default()
    })
}

#[test]
fn builtins_describe_themselves() {
    let names: Vec<&str> = runtime().tools().map(|t| t.name.as_str()).collect();
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
    let too_long = load(&[("hostile", HOSTILE_WASM, Some("deadline_ms = 60000"))]);
    assert!(
        matches!(too_long, Err(LoadError::Manifest { .. })),
        "{too_long:?}",
        too_long = too_long.err()
    );
    let too_big = load(&[("hostile", HOSTILE_WASM, Some("memory_mib = 1024"))]);
    assert!(matches!(too_big, Err(LoadError::Manifest { .. })));
    let unknown = load(&[("hostile", HOSTILE_WASM, Some("network = true"))]);
    assert!(matches!(unknown, Err(LoadError::Manifest { .. })));
}

#[test]
fn bad_tools_fail_the_load_loudly() {
    let mismatch = load(&[("renamed", HOSTILE_WASM, None)]);
    assert!(
        matches!(mismatch, Err(LoadError::NameMismatch { .. })),
        "{:?}",
        mismatch.err()
    );

    let ls = hearth_runtime::BUILTIN_TOOLS
        .iter()
        .find(|(n, _)| *n == "ls")
        .unwrap()
        .1;
    let dir = tempfile::tempdir().unwrap();
    let ls_path = dir.path().join("ls.wasm");
    std::fs::write(&ls_path, ls).unwrap();
    let duplicate = load(&[("ls", ls_path.to_str().unwrap(), None)]);
    assert!(matches!(duplicate, Err(LoadError::Duplicate(name)) if name == "ls"));

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    assert!(matches!(
        load(&[("junk", junk.to_str().unwrap(), None)]),
        Err(LoadError::Compile { .. })
    ));
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
