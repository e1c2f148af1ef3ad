//! `/exec` over HTTP: the session's files, the same paths as the tools, and the jail's report.

use hearth_client::wire::exec::ExecRequest;
use serde_json::json;

use crate::support::{JsonCalls, TOKEN, Worker, assert_client_error, assert_error};
use reqwest::Method;

#[tokio::test]
async fn a_multi_file_project_runs_by_path() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let c = &w.client;
    for (path, content) in [
        ("/workspace/utils.py", "def answer():\n    return 42\n"),
        ("/workspace/pkg/__init__.py", ""),
        (
            "/workspace/pkg/calc.py",
            "from utils import answer\n\ndef double(x):\n    return {'x': x, 'twice': 2 * x, 'answer': answer()}\n",
        ),
        (
            "/workspace/main.py",
            "import sys, utils\nfrom pkg.calc import double\nprint(utils.answer(), double(2)['twice'], sys.argv[1:])\n",
        ),
    ] {
        c.call_tool(
            &s,
            "write_file",
            json!({ "file_path": path, "content": content }),
        )
        .await
        .unwrap();
    }
    let out = c
        .exec_json(&s, json!({ "script": "main.py", "args": ["a", "b"] }))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "42 4 ['a', 'b']\n", "{out}");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(
        out["jail"]["network_namespace"],
        "enforced: the session's own"
    );
    let call = c
        .exec_json(
            &s,
            json!({ "call": "pkg.calc:double", "kwargs": { "x": 21 } }),
        )
        .await
        .unwrap();
    assert_eq!(
        call["result"],
        json!({ "x": 21, "twice": 42, "answer": 42 }),
        "{call}"
    );
    let shell = c
        .exec_json(
            &s,
            json!({ "command": "python3 -c 'import utils; print(utils.answer())'" }),
        )
        .await
        .unwrap();
    assert_eq!(shell["stdout"], "42\n", "{shell}");
}

#[tokio::test]
async fn tools_and_programs_share_the_view() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let c = &w.client;
    c.call_tool(
        &s,
        "write_file",
        json!({ "file_path": "/tmp/from-tool.txt", "content": "tool" }),
    )
    .await
    .unwrap();
    let out = c
        .exec_json(&s, json!({ "command": "cat /tmp/from-tool.txt; echo program > /workspace/from-program.txt; echo scratch > /tmp/p.txt" }))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "tool", "{out}");
    let read = c
        .call_tool(
            &s,
            "read_file",
            json!({ "file_path": "/workspace/from-program.txt" }),
        )
        .await
        .unwrap();
    assert_eq!(read["content"], "program\n");
    let read = c
        .call_tool(&s, "read_file", json!({ "file_path": "/tmp/p.txt" }))
        .await
        .unwrap();
    assert_eq!(read["content"], "scratch\n");
    let skill = c
        .exec_json(
            &s,
            json!({ "command": "cat /workspace/skills/SKILL.md; echo x > /workspace/skills/new" }),
        )
        .await
        .unwrap();
    assert_eq!(skill["stdout"], "# shared skill\n");
    assert_ne!(
        skill["exit_code"], 0,
        "the read-only area is read-only for programs too: {skill}"
    );
    assert!(!w.skills.path().join("new").exists());
}

#[tokio::test]
async fn one_sessions_tmp_is_not_anothers() {
    let w = Worker::start().await;
    let a = w.client.create_session(None).await.unwrap().session.id;
    let b = w.client.create_session(None).await.unwrap().session.id;
    w.client
        .exec_json(&a, json!({ "command": "echo mine > /tmp/private" }))
        .await
        .unwrap();
    let out = w
        .client
        .exec_json(&b, json!({ "command": "cat /tmp/private" }))
        .await
        .unwrap();
    assert_ne!(out["exit_code"], 0, "{out}");
    assert_eq!(out["stdout"], "");
}

#[tokio::test]
async fn stdin_exit_codes_exceptions_timeouts_and_unicode() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let c = &w.client;
    let out = c
        .exec_json(&s, json!({ "argv": ["cat"], "stdin": "entrée ✓" }))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "entrée ✓");
    let out = c
        .exec_json(&s, json!({ "command": "exit 5" }))
        .await
        .unwrap();
    assert_eq!(out["exit_code"], 5);
    c.call_tool(&s, "write_file", json!({ "file_path": "/workspace/bad.py", "content": "def f():\n    raise KeyError('nope')\n" })).await.unwrap();
    let out = c.exec_json(&s, json!({ "call": "bad:f" })).await.unwrap();
    assert_eq!(out["exit_code"], 1);
    assert!(
        out["stderr"].as_str().unwrap().contains("KeyError: 'nope'"),
        "{out}"
    );
    assert!(out["result_error"].is_string(), "{out}");
    let out = c
        .exec_json(&s, json!({ "command": "sleep 30", "timeout_s": 0.5 }))
        .await
        .unwrap();
    assert_eq!(out["timed_out"], true, "{out}");
    let out = c
        .exec_json(&s, json!({ "command": "env", "env": { "GREETING": "hi" } }))
        .await
        .unwrap();
    assert!(out["stdout"].as_str().unwrap().contains("GREETING=hi"));
    assert!(
        !out["stdout"].as_str().unwrap().contains("HEARTH_TOKEN"),
        "the worker's environment stays out"
    );
}

#[tokio::test]
async fn bad_exec_requests_are_refused() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    for bad in [
        json!({}),
        json!({ "command": "true", "argv": ["true"] }),
        json!({ "argv": [] }),
        json!({ "call": "no_colon" }),
        json!({ "call": "../evil:f" }),
        json!({ "call": "m:f", "stdin": "x" }),
        json!({ "command": "true", "timeout_s": -1 }),
        json!({ "command": "true", "timeout_s": 1e9 }),
        json!({ "command": "true", "env": { "BAD=NAME": "x" } }),
    ] {
        assert_client_error(
            w.client.exec_json(&s, bad.clone()).await,
            400,
            "invalid_exec",
        );
    }
    // A field the request type does not have: the client's types would not send it.
    let unknown = json!({ "command": "true", "bogus": 1 }).to_string();
    let url = format!("/v1/sessions/{s}/exec");
    let answer = w
        .raw(Method::POST, &url, Some(TOKEN), Some(unknown.into_bytes()))
        .await;
    assert_error(&answer, 400, "invalid_request");
    assert_client_error(
        w.client
            .exec_json("nope", json!({ "command": "true" }))
            .await,
        404,
        "session_not_found",
    );
}

#[tokio::test]
async fn health_reports_the_jail_layers() {
    let w = Worker::start().await;
    let health = w.client.health().await.unwrap();
    for layer in [
        "mount_namespace",
        "network_namespace",
        "seccomp",
        "pivot_root",
        "environment",
    ] {
        assert!(
            health
                .jail
                .get(layer)
                .is_some_and(|v| v.starts_with("enforced")),
            "{layer}: {health:?}"
        );
    }
}

#[tokio::test]
async fn output_streams_as_it_comes() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let last = w
        .client
        .exec_stream(
            &s,
            &ExecRequest::command("echo first; echo oops >&2; sleep 1; echo ünïcode second"),
            |line| {
                seen.push((started.elapsed(), serde_json::to_value(line).unwrap()));
            },
        )
        .await
        .unwrap();
    let last = serde_json::to_value(last).unwrap();
    assert_eq!(last["event"], "exit", "{last}");
    assert_eq!(last["exit_code"], 0);
    assert_eq!(last["stdout"], "first\nünïcode second\n");
    let data = |stream: &str| -> String {
        seen.iter()
            .filter(|(_, l)| l["stream"] == stream)
            .map(|(_, l)| l["data"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(data("stdout"), "first\nünïcode second\n");
    assert_eq!(
        data("stderr"),
        "oops\n",
        "the jail's report line is not part of the stream"
    );
    // The property under test is timing: the first line arrives while the program still runs.
    let first = seen.iter().find(|(_, l)| l["data"] == "first\n").unwrap().0;
    let exit = seen.last().unwrap().0;
    assert!(
        exit - first > std::time::Duration::from_millis(500),
        "first at {first:?}, exit at {exit:?}"
    );
}

#[tokio::test]
async fn filling_tmp_stops_at_the_scratch_cap() {
    // The scratch cap alone (with quotas on, /tmp is also within the session's quota).
    let w = Worker::start_with(|c| {
        c.scratch_mib = Some(8);
        c.quota.enabled = false;
    })
    .await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let out = w
        .client
        .exec_json(
            &s,
            json!({ "command": "head -c 50000000 /dev/zero > /tmp/fill" }),
        )
        .await
        .unwrap();
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(
        out["stderr"].as_str().unwrap().contains("No space left"),
        "{out}"
    );
    let tool = w
        .client
        .call_tool(
            &s,
            "write_file",
            json!({ "file_path": "/tmp/more.txt", "content": "x".repeat(100_000) }),
        )
        .await;
    assert_client_error(tool, 413, "too_large");
    // The workspace is not the scratch space: it still takes writes.
    w.client
        .call_tool(
            &s,
            "write_file",
            json!({ "file_path": "/workspace/ok.txt", "content": "fine" }),
        )
        .await
        .unwrap();
    let tmp = w.scratch(&s);
    w.client.delete_session(&s).await.unwrap();
    assert!(!tmp.exists(), "the scratch mount went with the session");
}

#[tokio::test]
async fn a_symlink_where_a_read_only_area_mounts_is_repaired_never_followed() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    std::os::unix::fs::symlink("/etc", w.workspace(&s).join("skills")).unwrap();
    let out = w
        .client
        .exec_json(&s, json!({ "command": "cat /workspace/skills/SKILL.md" }))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "# shared skill\n");
    // The link was replaced by a directory; /etc was never mounted or touched.
    let meta = std::fs::symlink_metadata(w.workspace(&s).join("skills")).unwrap();
    assert!(meta.is_dir());
    let missing = w
        .client
        .exec_json(&s, json!({ "argv": ["no-such-program"] }))
        .await
        .unwrap();
    assert_eq!(missing["exit_code"], 127, "{missing}");
}

#[tokio::test]
async fn a_timeout_of_zero_is_the_longest_run_allowed() {
    let w = Worker::start_with(|c| c.exec.max_timeout_s = 1.0).await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let started = std::time::Instant::now();
    let out = w
        .client
        .exec_json(&s, json!({ "command": "sleep 5", "timeout_s": 0 }))
        .await
        .unwrap();
    assert_eq!(out["timed_out"], true, "{out}");
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(4),
        "{took:?}"
    );
}

/// Host path of a session's scratch directory (its `/tmp`).
fn scratch_dir(w: &Worker, session: &str) -> std::path::PathBuf {
    w.scratch(session)
}

#[tokio::test]
async fn a_calls_result_travels_through_a_pipe_not_a_file() {
    let w = Worker::start().await;
    let c = &w.client;
    let victim = c.create_session(None).await.unwrap().session.id;
    let secret = "victim-secret-5d1e";
    crate::support::write(c, &victim, "/workspace/secret.txt", secret).await;
    let secret_path = w.workspace(&victim).join("secret.txt");

    let s = c.create_session(None).await.unwrap().session.id;
    crate::support::write(
        c,
        &s,
        "/workspace/attack.py",
        r#"import os, sys

def plant(target):
    # Whatever the worker could read back by name, in /tmp or the workspace, now leads
    # elsewhere: another session's file, an endless device, a FIFO nobody writes.
    for d in ['/tmp', '/workspace']:
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if name == 'attack.py' or os.path.isdir(path):
                continue
            os.unlink(path)
            os.symlink(target, path)
    for i, t in enumerate([target, '/dev/zero']):
        os.symlink(t, '/tmp/.hearth-result-%d.json' % i)
    os.mkfifo('/tmp/.hearth-result-fifo.json')
    os.mkfifo('/tmp/result.json')
    return {'ok': True, 'argv': sys.argv[1:]}

def old(target):
    os.symlink(target, sys.argv[2])
    os._exit(0)

def leave():
    os._exit(0)
"#,
    )
    .await;
    c.call_tool(
        &s,
        "write_file",
        json!({ "file_path": "/tmp/planted.txt", "content": "x" }),
    )
    .await
    .unwrap();
    let target = secret_path.to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    let out = c
        .exec_json(
            &s,
            json!({ "call": "attack:plant", "kwargs": { "target": target }, "timeout_s": 20 }),
        )
        .await
        .unwrap();
    assert_eq!(
        out["result"],
        json!({ "ok": true, "argv": ["attack:plant"] }),
        "{out}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!out.to_string().contains(secret), "{out}");

    // The review's attack has nothing left to aim at.
    let out = c
        .exec_json(
            &s,
            json!({ "call": "attack:old", "kwargs": { "target": target } }),
        )
        .await
        .unwrap();
    assert_eq!(
        out["result_error"], "the call failed before returning (see stderr)",
        "{out}"
    );
    assert!(!out.to_string().contains(secret), "{out}");
    let out = c
        .exec_json(&s, json!({ "call": "attack:leave" }))
        .await
        .unwrap();
    assert_eq!(out["result_error"], "the call wrote no result", "{out}");

    // An ordinary call still answers its JSON, with the planted links still there.
    crate::support::write(
        c,
        &s,
        "/workspace/calc.py",
        "def add(a, b):\n    return {'sum': a + b, 'text': 'entrée ✓'}\n",
    )
    .await;
    let out = c
        .exec_json(
            &s,
            json!({ "call": "calc:add", "kwargs": { "a": 2, "b": 3 } }),
        )
        .await
        .unwrap();
    assert_eq!(
        out["result"],
        json!({ "sum": 5, "text": "entrée ✓" }),
        "{out}"
    );
    assert_eq!(out["exit_code"], 0);
    assert_eq!(
        std::fs::read_to_string(&secret_path).unwrap(),
        secret,
        "the victim's file is untouched"
    );
}

#[tokio::test]
async fn a_flood_on_the_result_channel_is_a_clear_error() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    crate::support::write(
        c,
        &s,
        "/workspace/flood.py",
        "import os\ndef go():\n    chunk = b'x' * (1 << 20)\n    for _ in range(100):\n        os.write(3, chunk)\n    return 1\n",
    )
    .await;
    let started = std::time::Instant::now();
    let out = c
        .exec_json(&s, json!({ "call": "flood:go", "timeout_s": 60 }))
        .await
        .unwrap();
    assert_eq!(
        out["result_error"],
        format!(
            "the result is larger than {} bytes",
            hearth::Config::default().exec.output_bytes
        ),
        "{out}"
    );
    assert_eq!(out["exit_code"], 0, "the writer was never blocked: {out}");
    assert!(out.get("result").is_none(), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let again = c
        .exec_json(&s, json!({ "command": "echo ok" }))
        .await
        .unwrap();
    assert_eq!(again["stdout"], "ok\n");
}

#[tokio::test]
async fn a_child_holding_the_result_channel_does_not_hold_the_answer() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    crate::support::write(
        c,
        &s,
        "/workspace/linger.py",
        r#"import os, subprocess, time

def go():
    # A program the call starts does not inherit the channel...
    seen = subprocess.run(['/bin/sh', '-c', '[ -e /proc/self/fd/3 ] && echo yes || echo no'],
                          close_fds=False, capture_output=True, text=True).stdout.strip()
    # ...but a fork does: it holds fd 3 and outlives the call.
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    return {'child_saw_fd_3': seen}

def hang():
    if os.fork() == 0:
        time.sleep(60)
    time.sleep(60)
"#,
    )
    .await;
    let started = std::time::Instant::now();
    let out = c
        .exec_json(&s, json!({ "call": "linger:go", "timeout_s": 30 }))
        .await
        .unwrap();
    assert_eq!(out["result"], json!({ "child_saw_fd_3": "no" }), "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    let out = c
        .exec_json(&s, json!({ "call": "linger:hang", "timeout_s": 1 }))
        .await
        .unwrap();
    assert_eq!(out["timed_out"], true, "{out}");
    assert!(out["result_error"].is_string(), "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1 + 5 + 3),
        "wall time plus the drain grace: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn setuid_and_world_write_never_reach_the_host() {
    use std::os::unix::fs::PermissionsExt;

    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    for command in [
        "cp /usr/bin/id /workspace/x && chmod 4755 /workspace/x",
        "chmod 2755 /workspace/x",
        "chmod 777 /workspace",
        "chmod 777 /tmp",
        "chmod o+w /workspace/x",
        "python3 -c \"import os; os.close(os.open('/workspace/y', os.O_CREAT | os.O_WRONLY, 0o4755))\"",
    ] {
        let out = c
            .exec_json(&s, json!({ "command": command }))
            .await
            .unwrap();
        assert_ne!(out["exit_code"], 0, "{command}: {out}");
        assert!(
            out["stderr"]
                .as_str()
                .unwrap()
                .contains("Operation not permitted"),
            "{command}: {out}"
        );
    }
    let mode = |path: std::path::PathBuf| {
        std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
    };
    for path in [
        w.workspace(&s).join("x"),
        w.workspace(&s),
        scratch_dir(&w, &s),
    ] {
        let mode = mode(path.clone());
        assert_eq!(mode & 0o6002, 0, "{} has mode {mode:o}", path.display());
    }
    assert_eq!(mode(w.workspace(&s).join("x")) & 0o777, 0o755);
    assert!(!w.workspace(&s).join("y").exists());
    let out = c
        .exec_json(
            &s,
            json!({ "command": "chmod +x /workspace/x && chmod 700 /workspace/x && /workspace/x -u" }),
        )
        .await
        .unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(mode(w.workspace(&s).join("x")) & 0o7777, 0o700);
}
