//! One registry for the fleet: a tool installed, upgraded or removed through any worker is
//! served (or gone) on every worker, a worker joining the fleet serves the fleet's tools from
//! its first request, each worker still holds a tool to its own grants, a record or component
//! someone else put in the store is checked like an upload, and a change the store did not
//! take does not stand.

use std::path::Path;
use std::time::{Duration, Instant};

use hearth_client::Client;
use serde_json::json;

use crate::fleet::in_fleet;
use hearth::Config;

use crate::support::{Worker, assert_client_error};

const OPERATOR: &str = "operator-token-for-the-fleet";

/// A worker of the fleet on `store`, syncing its tools every 100 ms; `grant_env` grants
/// `hostile` the variable `FLEET_KEY`.
fn member_config(store: &Path, name: &str, grant_env: bool) -> impl FnOnce(&mut Config) {
    let in_fleet = in_fleet(store, name);
    move |c: &mut Config| {
        in_fleet(c);
        // `hostile` is installed through the API here, not read from the tools directory.
        c.tools_dir = None;
        c.fleet.tools_sync_s = 0.1;
        c.tools.operator_token = Some(OPERATOR.into());
        if grant_env {
            c.tools.grants.insert(
                "hostile".into(),
                hearth_runtime::Grant {
                    env: [("FLEET_KEY".into(), "granted".into())].into(),
                    ..Default::default()
                },
            );
        }
    }
}

async fn member(store: &Path, name: &str, grant_env: bool) -> (Worker, Client) {
    let w = Worker::start_with(member_config(store, name, grant_env)).await;
    let operator = operator(&w);
    (w, operator)
}

fn operator(w: &Worker) -> Client {
    Client::new(&w.url, Some(OPERATOR.into()))
}

fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Waits (at most 10 s) until `check` holds for what `w` says of tool `hostile` (its version
/// and deadline).
async fn until(w: &Worker, what: &str, check: impl Fn(Option<(&str, u64)>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tool = w.client.tool("hostile").await.ok();
        if check(
            tool.as_ref()
                .map(|t| (t.version.as_str(), t.limits.deadline_ms)),
        ) {
            return;
        }
        assert!(Instant::now() < deadline, "{}: never {what}", w.url);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tool_installed_through_one_worker_is_served_by_every_worker() {
    let store = tempfile::tempdir().unwrap();
    let (a, operator_a) = member(store.path(), "a", false).await;
    let (b, operator_b) = member(store.path(), "b", false).await;

    // Installed through a: b serves it, the same version, and a session on b calls it.
    let v1 = operator_a
        .install_tool("hostile", component(hearth_tests::HOSTILE_WASM), None)
        .await
        .unwrap()
        .tool
        .version;
    until(&b, "serves it", |t| t.is_some_and(|(v, _)| v == v1)).await;
    let s = b.client.create_session(None).await.unwrap().session.id;
    b.client
        .call_tool(&s, "hostile", json!({ "action": "env" }))
        .await
        .unwrap();

    // Upgraded through b (a new manifest): a follows.
    operator_b
        .install_tool(
            "hostile",
            component(hearth_tests::HOSTILE_WASM),
            Some("deadline_ms = 250\n".into()),
        )
        .await
        .unwrap();
    until(&a, "follows the upgrade", |t| t == Some((v1.as_str(), 250))).await;

    // A worker joining now serves it from its first request, without waiting for a pass.
    let (c, _) = member(store.path(), "c", false).await;
    let on_c = c.client.tool("hostile").await.unwrap();
    assert_eq!((on_c.version, on_c.limits.deadline_ms), (v1, 250));

    // Removed through c while b is away: gone on a, and b, back, drops it before it serves.
    let b = {
        let mut b = b;
        b.stop().await;
        b
    };
    operator(&c).remove_tool("hostile").await.unwrap();
    until(&a, "drops it", |t| t.is_none()).await;
    let b = b
        .restart_with(member_config(store.path(), "b", false))
        .await;
    assert_client_error(b.client.tool("hostile").await, 404, "unknown_tool");
    let metrics = b.client.metrics().await.unwrap();
    let applied = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_fleet_tools_applied_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(applied, Some(1), "the removal, once");
    drop(operator_b);
}

#[tokio::test]
async fn each_worker_holds_the_fleet_s_tools_to_its_own_grants() {
    let store = tempfile::tempdir().unwrap();
    let (a, operator_a) = member(store.path(), "a", true).await;
    let (b, _) = member(store.path(), "b", false).await;
    let wasm = component(hearth_tests::HOSTILE_WASM);
    let v1 = operator_a
        .install_tool("hostile", wasm.clone(), None)
        .await
        .unwrap()
        .tool
        .version;
    until(&b, "serves it", |t| t.is_some_and(|(v, _)| v == v1)).await;

    // The same component, now asking for a variable only a grants: a serves the new manifest,
    // b keeps the one it could take (it says why in its log).
    operator_a
        .install_tool("hostile", wasm, Some("env = [\"FLEET_KEY\"]\n".into()))
        .await
        .unwrap();
    assert_eq!(a.client.tool("hostile").await.unwrap().env, ["FLEET_KEY"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let on_b = b.client.tool("hostile").await.unwrap();
    assert_eq!(on_b.version, v1);
    assert!(on_b.env.is_empty(), "{:?}", on_b.env);
}

#[tokio::test]
async fn what_others_put_in_the_store_is_checked_like_an_upload() {
    let store = tempfile::tempdir().unwrap();
    let (a, operator_a) = member(store.path(), "a", false).await;
    let registry = store.path().join("tools/registry");
    let components = store.path().join("tools/components");
    std::fs::create_dir_all(&registry).unwrap();
    std::fs::create_dir_all(&components).unwrap();
    let hostile = component(hearth_tests::HOSTILE_WASM);
    let sha = hex_sha256(&hostile);
    let installed = |name: &str, sha: &str| {
        json!({ "name": name, "op": "installed", "component_sha256": sha, "manifest": null,
                "at_ms": 1, "by_worker": "mallory" })
        .to_string()
    };
    // A component whose bytes are not what its name says.
    let forged = "f".repeat(64);
    std::fs::write(components.join(&forged), &hostile).unwrap();
    std::fs::write(registry.join("forged.json"), installed("forged", &forged)).unwrap();
    // A record naming another tool than its file, one that is not JSON, one far too big, one
    // naming a component that is not there, one replacing a built-in.
    std::fs::write(registry.join("alias.json"), installed("ls", &sha)).unwrap();
    std::fs::write(registry.join("garbage.json"), "{not json").unwrap();
    std::fs::write(registry.join("huge.json"), vec![b' '; 1 << 20]).unwrap();
    std::fs::write(
        registry.join("absent.json"),
        installed("absent", &"0".repeat(64)),
    )
    .unwrap();
    std::fs::write(components.join(&sha), &hostile).unwrap();
    let ls = component(hearth_tests::LS_WASM);
    let ls_sha = hex_sha256(&ls);
    std::fs::write(components.join(&ls_sha), &ls).unwrap();
    std::fs::write(registry.join("ls.json"), installed("ls", &ls_sha)).unwrap();
    // A record in a place a name cannot make.
    std::fs::create_dir_all(registry.join("deep")).unwrap();
    std::fs::write(registry.join("deep/x.json"), installed("x", &sha)).unwrap();

    // And one good record: once a serves it, the pass has gone over all the others.
    operator_a
        .install_tool("hostile", hostile.clone(), None)
        .await
        .unwrap();
    let (b, _) = member(store.path(), "b", false).await;
    until(&b, "serves the good one", |t| {
        t.is_some_and(|(v, _)| v == sha)
    })
    .await;
    let names: Vec<String> = b
        .client
        .tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for refused in ["forged", "alias", "garbage", "huge", "absent", "x"] {
        assert!(!names.iter().any(|n| n == refused), "{refused}: {names:?}");
    }
    let ls = b.client.tool("ls").await.unwrap();
    assert_eq!(
        ls.source, "builtin",
        "a built-in is not replaced from the store"
    );
    drop(a);
}

#[tokio::test]
async fn a_change_the_store_did_not_take_does_not_stand() {
    let store = tempfile::tempdir().unwrap();
    let (a, operator_a) = member(store.path(), "a", false).await;
    // The registry's place is taken by a file: every record write fails.
    std::fs::create_dir_all(store.path().join("tools")).unwrap();
    std::fs::write(store.path().join("tools/registry"), "in the way").unwrap();
    assert_client_error(
        operator_a
            .install_tool("hostile", component(hearth_tests::HOSTILE_WASM), None)
            .await,
        503,
        "store_unavailable",
    );
    assert_client_error(a.client.tool("hostile").await, 404, "unknown_tool");
    // The store back: the same request takes.
    std::fs::remove_file(store.path().join("tools/registry")).unwrap();
    operator_a
        .install_tool("hostile", component(hearth_tests::HOSTILE_WASM), None)
        .await
        .unwrap();
    let (b, _) = member(store.path(), "b", false).await;
    assert!(b.client.tool("hostile").await.is_ok());
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
