//! The live tool registry: tools written from the templates (Python by componentize-py, Rust by
//! cargo), checked and run by the CLI, installed, upgraded under load, refused and removed over
//! HTTP with the operator's token, and held to their policy from inside.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_client::Client;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TOKEN, Worker, assert_client_error, assert_error, write};

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");
const OPERATOR: &str = "operator-token-for-the-tests";

/// The components these tests install, built once per test run.
struct Built {
    /// `hearth tool new json_query --lang python`, componentized.
    json_query_py: PathBuf,
    /// `examples/tools/json_query_rust`: the same tool in Rust.
    json_query_rs: PathBuf,
    /// A Python test guest that reports its grants.
    probe: PathBuf,
    /// The probe with a schema outside the subset the host accepts.
    probe_bad_schema: PathBuf,
    /// `examples/tools/http_get`: a Rust tool with network access.
    http_get: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Built by `scripts/example-tools.sh` with this test's `hearth` (its `tool new` writes the
/// Python template).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo();
        run(Command::new(root.join("scripts/example-tools.sh")).arg(HEARTH));
        let out = root.join("target/example-tools");
        Built {
            json_query_py: out.join("json_query.wasm"),
            json_query_rs: out.join("json_query_rust.wasm"),
            probe: out.join("probe.wasm"),
            probe_bad_schema: out.join("probe_bad_schema.wasm"),
            http_get: out.join("http_get.wasm"),
        }
    })
}

async fn registry_worker() -> (Worker, Client) {
    registry_worker_granting(Vec::new()).await
}

/// A worker with the operator's token, granting `probe` a variable and `http_get` `network`.
async fn registry_worker_granting(network: Vec<String>) -> (Worker, Client) {
    tokio::task::spawn_blocking(built).await.unwrap();
    let w = Worker::start_with(|c| {
        c.tools.operator_token = Some(OPERATOR.into());
        c.tools.grants.insert(
            "probe".into(),
            hearth_runtime::Grant {
                env: [("PROBE_KEY".into(), "granted-value".into())].into(),
                ..Default::default()
            },
        );
        c.tools.grants.insert(
            "http_get".into(),
            hearth_runtime::Grant {
                network,
                ..Default::default()
            },
        );
    })
    .await;
    let operator = Client::new(&w.url, Some(OPERATOR.into()));
    (w, operator)
}

fn wasm(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

async fn query(c: &Client, s: &str, q: &str) -> Result<Value, hearth_client::Error> {
    c.call_tool(
        s,
        "json_query",
        json!({ "file_path": "/workspace/d.json", "query": q }),
    )
    .await
}

#[tokio::test]
async fn a_python_tool_is_installed_upgraded_under_load_to_rust_and_removed() {
    let (w, operator) = registry_worker().await;
    let built = built();
    let s = w
        .client
        .create_session(None)
        .await
        .unwrap()
        .session
        .id
        .clone();
    write(
        &w.client,
        &s,
        "/workspace/d.json",
        r#"{"items": [{"name": "a"}, {"name": "b"}]}"#,
    )
    .await;

    let installed = operator
        .install_tool("json_query", wasm(&built.json_query_py), None)
        .await
        .unwrap();
    assert_eq!(installed.previous_version, None);
    assert_eq!(installed.tool.source, "installed");
    let python_version = installed.tool.version.clone();
    assert_eq!(
        query(&w.client, &s, "items.1.name").await.unwrap(),
        json!({ "value": "b" })
    );
    let names: Vec<String> = w
        .client
        .tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"json_query".to_owned()), "{names:?}");

    // Callers keep calling while the tool is replaced by its Rust twin: not one call fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done, failures) = (
        std::sync::Arc::new(AtomicUsize::new(0)),
        std::sync::Arc::new(AtomicUsize::new(0)),
    );
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (client, s) = (w.client.clone(), s.clone());
        let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match query(&client, &s, "items.0.name").await {
                    Ok(v) if v == json!({ "value": "a" }) => done.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("a call failed during the upgrade: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let upgraded = operator
        .install_tool("json_query", wasm(&built.json_query_rs), None)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no call fails during an upgrade"
    );
    assert!(done.load(Ordering::Relaxed) > 8, "the callers ran");
    assert_eq!(
        upgraded.previous_version.as_deref(),
        Some(python_version.as_str())
    );
    let detail = w.client.tool("json_query").await.unwrap();
    assert_eq!(detail.version, upgraded.tool.version);
    assert_ne!(detail.version, python_version);

    // Kept across a restart, then removed.
    let w = w.restart_keeping_tools(OPERATOR).await;
    assert_eq!(
        query(&w.client, &s, "items.1.name").await.unwrap(),
        json!({ "value": "b" })
    );
    let operator = Client::new(&w.url, Some(OPERATOR.into()));
    let removed = operator.remove_tool("json_query").await.unwrap();
    assert_eq!(removed.version, upgraded.tool.version);
    assert_client_error(query(&w.client, &s, "").await, 404, "unknown_tool");
    assert_client_error(
        operator.remove_tool("json_query").await,
        404,
        "unknown_tool",
    );
}

#[tokio::test]
async fn refused_installs_leave_the_old_version_serving() {
    let (w, operator) = registry_worker().await;
    let built = built();
    let s = w
        .client
        .create_session(None)
        .await
        .unwrap()
        .session
        .id
        .clone();
    write(&w.client, &s, "/workspace/d.json", r#"{"k": 1}"#).await;
    let first = operator
        .install_tool("json_query", wasm(&built.json_query_rs), None)
        .await
        .unwrap();
    let serving = || async { query(&w.client, &s, "k").await.unwrap() };
    assert_eq!(serving().await, json!({ "value": 1 }));

    // (what is wrong, the name installed, the component, its manifest)
    let refusals: [(&str, &str, &Path, Option<&str>); 6] = [
        ("junk", "json_query", Path::new("/dev/null"), None),
        (
            "a name it does not declare",
            "json_query",
            &built.probe,
            None,
        ),
        (
            "a schema outside the subset",
            "probe",
            &built.probe_bad_schema,
            None,
        ),
        (
            "a deadline above the host's",
            "json_query",
            &built.json_query_py,
            Some("deadline_ms = 600000"),
        ),
        (
            "a variable not granted",
            "json_query",
            &built.json_query_py,
            Some("env = [\"PROBE_KEY\"]"),
        ),
        (
            "an unknown manifest key",
            "json_query",
            &built.json_query_py,
            Some("networks = []"),
        ),
    ];
    for (what, name, component, manifest) in refusals {
        let component = match what {
            "junk" => b"\0asm junk".to_vec(),
            _ => wasm(component),
        };
        let refused = operator
            .install_tool(name, component, manifest.map(str::to_owned))
            .await;
        let e = refused.err().unwrap_or_else(|| panic!("{what}: installed"));
        assert_eq!(
            (e.status(), e.code()),
            (Some(400), Some("invalid_tool")),
            "{what}: {e}"
        );
    }
    assert_client_error(
        operator
            .install_tool("ls", wasm(&built.json_query_rs), None)
            .await,
        409,
        "tool_protected",
    );
    assert_client_error(
        operator.remove_tool("read_file").await,
        409,
        "tool_protected",
    );
    // Neither the worker's token nor a session's may install or remove.
    let created = w.client.create_session(None).await.unwrap();
    let session_client = Client::new(&w.url, Some(created.token.clone()));
    for client in [&w.client, &session_client] {
        assert_client_error(
            client
                .install_tool("json_query", wasm(&built.json_query_py), None)
                .await,
            403,
            "operator_only",
        );
        assert_client_error(client.remove_tool("json_query").await, 403, "operator_only");
    }
    assert_eq!(serving().await, json!({ "value": 1 }));
    assert_eq!(
        w.client.tool("json_query").await.unwrap().version,
        first.tool.version
    );
}

#[tokio::test]
async fn a_tool_gets_only_what_its_policy_grants() {
    let (w, operator) = registry_worker().await;
    let built = built();
    let s = w
        .client
        .create_session(None)
        .await
        .unwrap()
        .session
        .id
        .clone();
    write(&w.client, &s, "/workspace/secret.txt", "12345").await;
    let probe = |args: Value| {
        let (client, s) = (w.client.clone(), s.clone());
        async move { client.call_tool(&s, "probe", args).await.unwrap() }
    };

    // No manifest: the whole view, no environment — even with a grant waiting for it.
    operator
        .install_tool("probe", wasm(&built.probe), None)
        .await
        .unwrap();
    let answer = probe(json!({ "open": "/workspace/secret.txt" })).await;
    assert_eq!(answer["env"], json!({}), "{answer}");
    assert_eq!(answer["opened"], 5, "{answer}");
    assert_eq!(answer["mounts"]["/workspace"], true, "{answer}");
    assert_eq!(answer["mounts"]["/workspace/skills"], false, "{answer}");

    // Asked for and granted: the variable, and only /tmp, read-only.
    let manifest = "env = [\"PROBE_KEY\"]\n[mounts]\n\"/tmp\" = \"read-only\"\n";
    operator
        .install_tool("probe", wasm(&built.probe), Some(manifest.into()))
        .await
        .unwrap();
    let answer = probe(json!({ "open": "/workspace/secret.txt" })).await;
    assert_eq!(
        answer["env"],
        json!({ "PROBE_KEY": "granted-value" }),
        "{answer}"
    );
    assert_eq!(answer["mounts"], json!({ "/tmp": false }), "{answer}");
    assert_ne!(answer["opened"], 5, "the workspace is not there: {answer}");
    let detail = w.client.tool("probe").await.unwrap();
    assert_eq!(detail.env, ["PROBE_KEY"]);
    let shown = serde_json::to_string(&detail).unwrap()
        + &w.client.health().await.map(|h| format!("{h:?}")).unwrap();
    assert!(!shown.contains("granted-value"), "a secret is never shown");

    // The Rust json_query limited to /tmp: the workspace is outside its view.
    operator
        .install_tool(
            "json_query",
            wasm(&built.json_query_rs),
            Some("[mounts]\n\"/tmp\" = \"read-write\"\n".into()),
        )
        .await
        .unwrap();
    write(&w.client, &s, "/workspace/d.json", "{}").await;
    assert_client_error(query(&w.client, &s, "").await, 400, "invalid_path");
}

/// The author's loop on the real binary: the template checked and run without a worker, then
/// installed with the CLI. (Multi-threaded: the CLI waits on the worker this test serves.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_checks_runs_and_installs_a_tool() {
    let (w, _) = registry_worker().await;
    let built = built();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.json"), r#"{"a": [1, 2]}"#).unwrap();
    let hearth = |args: &[&str]| {
        let output = Command::new(HEARTH)
            .args(args)
            .env("HEARTH_URL", &w.url)
            .env("HEARTH_OPERATOR_TOKEN", OPERATOR)
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let py = built.json_query_py.to_str().unwrap();
    let (ok, out, err) = hearth(&["tool", "check", py]);
    assert!(ok, "{err}");
    let checked: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(checked["name"], "json_query");
    assert_eq!(checked["input_schema"]["required"], json!(["file_path"]));

    let workspace = dir.path().to_str().unwrap();
    let args = r#"{"file_path": "/workspace/d.json", "query": "a.1"}"#;
    let (ok, out, err) = hearth(&["tool", "run", py, "--workspace", workspace, "--args", args]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({ "value": 2 })
    );
    let missing = r#"{"file_path": "/workspace/nope.json"}"#;
    let (ok, _, err) = hearth(&[
        "tool",
        "run",
        py,
        "--workspace",
        workspace,
        "--args",
        missing,
    ]);
    assert!(!ok && err.starts_with("file_not_found"), "{err}");

    let (ok, out, err) = hearth(&["tool", "install", "json_query", py]);
    assert!(ok, "{err}");
    assert!(out.contains("\"previous_version\": null"), "{out}");
    let (ok, out, _) = hearth(&["tool", "list", "--token", TOKEN]);
    assert!(ok && out.contains("json_query"), "{out}");
    let (ok, _, err) = hearth(&["tool", "remove", "json_query"]);
    assert!(ok, "{err}");
    let refused = w
        .raw(Method::DELETE, "/v1/tools/json_query", Some(OPERATOR), None)
        .await;
    assert_error(&refused, 404, "unknown_tool");
}

/// A loopback HTTP server answering every request with `hello`; counts the connections.
async fn hello_server() -> (u16, std::sync::Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let answer =
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

/// Network only to the allowed hosts: the loopback server named by its address is reached; the
/// same server by a name that resolves to it, a host not on the list, and a manifest asking past
/// the grant are refused — the refused ones without a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_reaches_only_the_hosts_it_was_granted() {
    let (port, connections) = hello_server().await;
    let allowed = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    let (w, operator) = registry_worker_granting(allowed.clone()).await;
    let built = built();
    let s = w
        .client
        .create_session(None)
        .await
        .unwrap()
        .session
        .id
        .clone();
    let manifest = format!("network = {allowed:?}\n");
    let installed = operator
        .install_tool("http_get", wasm(&built.http_get), Some(manifest))
        .await
        .unwrap();
    assert_eq!(installed.tool.network, allowed);
    let get = |url: String| {
        let (client, s) = (w.client.clone(), s.clone());
        async move {
            client
                .call_tool(&s, "http_get", json!({ "url": url }))
                .await
        }
    };

    let answer = get(format!("http://127.0.0.1:{port}/x")).await.unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "hello", "{answer}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // `localhost` is on the list, but it resolves to a loopback address the list does not name.
    assert_client_error(
        get(format!("http://localhost:{port}/")).await,
        403,
        "permission_denied",
    );
    // Not on the list at all (no name is looked up for it).
    assert_client_error(
        get("http://example.com/".into()).await,
        403,
        "permission_denied",
    );
    assert_client_error(
        get(format!("http://127.0.0.1:{}/", port + 1)).await,
        403,
        "permission_denied",
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "no refused request connected"
    );

    // A manifest asking beyond the grant is refused, and the granted version keeps serving.
    assert_client_error(
        operator
            .install_tool(
                "http_get",
                wasm(&built.http_get),
                Some("network = [\"10.0.0.1:80\"]\n".into()),
            )
            .await,
        400,
        "invalid_tool",
    );
    // Without a manifest, the same tool reaches nothing.
    operator
        .install_tool("http_get", wasm(&built.http_get), None)
        .await
        .unwrap();
    assert_client_error(
        get(format!("http://127.0.0.1:{port}/x")).await,
        403,
        "permission_denied",
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// The real binary: an acknowledged install survives `kill -9` (it is on disk before the answer),
/// and an installed tool that no longer loads is skipped at start and shown, not fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_keeps_installs_across_a_kill_and_starts_past_a_broken_one() {
    tokio::task::spawn_blocking(built).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("hearth.toml");
    std::fs::write(
        &config,
        format!("[tools]\noperator_token = \"{OPERATOR}\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (mut child, url) = crate::binary::serve(data.path(), &["--config", config]).await;
    let operator = Client::new(&url, Some(OPERATOR.into()));
    operator
        .install_tool("json_query", wasm(&built().json_query_rs), None)
        .await
        .unwrap();
    child.kill().await.unwrap();

    let broken = data.path().join("tools/installed/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("tool.wasm"), b"\0asm not a component").unwrap();
    let (_child, url) = crate::binary::serve(data.path(), &["--config", config]).await;
    let client = Client::new(&url, Some(TOKEN.into()));
    let health = client.health().await.unwrap();
    assert_eq!(health.tools_failed.len(), 1, "{health:?}");
    assert!(
        health.tools_failed[0].source.ends_with("broken"),
        "{health:?}"
    );
    let s = client
        .create_session(None)
        .await
        .unwrap()
        .session
        .id
        .clone();
    write(&client, &s, "/workspace/d.json", r#"{"k": [1, 2]}"#).await;
    assert_eq!(
        query(&client, &s, "k.1").await.unwrap(),
        json!({ "value": 2 })
    );
}
