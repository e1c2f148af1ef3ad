//! A fleet of in-process workers on one store (a shared directory): every worker is a door to
//! every session — forwarded with its streams, its token checked, its end respected — and a
//! drained worker's sessions are taken over at once with everything it acknowledged. The
//! real binaries, on S3 (moto), with SIGKILL, are in `fleet_binary`.

use std::time::{Duration, Instant};

use hearth_client::wire::exec::ExecRequest;
use hearth_client::wire::processes::OutputQuery;
use reqwest::Method;
use serde_json::json;

use crate::support::{S3Server, TOKEN, Worker, assert_error, read, write};

/// A worker of a fleet on the store at `store`, named `worker`.
pub(crate) fn in_fleet(store: &std::path::Path, worker: &str) -> impl FnOnce(&mut hearth::Config) {
    let (url, worker) = (format!("file://{}", store.display()), worker.to_owned());
    move |config: &mut hearth::Config| {
        config.snapshots.store_url = Some(url);
        config.snapshots.auto_delay_s = 0.0;
        config.worker_id = Some(worker);
        config.fleet.advertise_url = Some("http://127.0.0.1:0".into());
        config.fleet.lease_ttl_s = 30.0;
        config.fleet.lease_renew_s = 1.0;
    }
}

async fn raw_with(
    w: &Worker,
    method: Method,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", w.url))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn every_worker_is_a_door_to_every_session() {
    let store = tempfile::tempdir().unwrap();
    let a = Worker::start_with(in_fleet(store.path(), "a")).await;
    let b = Worker::start_with(in_fleet(store.path(), "b")).await;
    let created = a.client.create_session(Some("s")).await.unwrap();
    assert_eq!(created.owner.worker, "a");
    assert_eq!(created.owner.url.as_deref(), Some(a.url.as_str()));

    // Through b: who owns it, files, a tool, a program, its stream, a background process.
    let info = b.client.session("s").await.unwrap();
    assert_eq!((info.owner.worker.as_str(), info.owner.epoch), ("a", 1));
    write(&b.client, "s", "/workspace/via-b.txt", "through b\n").await;
    assert_eq!(
        read(&a.client, "s", "workspace/via-b.txt").await,
        "through b\n"
    );
    assert_eq!(
        read(&b.client, "s", "workspace/via-b.txt").await,
        "through b\n"
    );
    let ran = b
        .client
        .exec("s", &ExecRequest::command("cat via-b.txt"))
        .await
        .unwrap();
    assert_eq!(ran.stdout, "through b\n");
    let (status, stream) = raw_with(
        &b,
        Method::POST,
        "/v1/sessions/s/exec/stream",
        TOKEN,
        json!({ "command": "echo streamed" }),
    )
    .await;
    assert_eq!(status, 200, "{stream}");
    assert!(stream.contains("streamed"), "{stream}");
    let p = b
        .client
        .exec_background("s", &ExecRequest::command("echo in the background"))
        .await
        .unwrap();
    let query = OutputQuery {
        wait_s: Some(10.0),
        ..OutputQuery::default()
    };
    let out = b.client.process_output("s", &p.id, &query).await.unwrap();
    assert_eq!(out.stdout.data, "in the background\n");
    assert!(a.client.processes("s").await.unwrap().processes.len() == 1);

    // A server a program started, reached through the door and the owner's port route.
    let server = ExecRequest::command("exec python3 -m http.server 8000 --bind 127.0.0.1");
    b.client.exec_background("s", &server).await.unwrap();
    let started = Instant::now();
    loop {
        let (status, body) = raw_with(
            &b,
            Method::GET,
            "/v1/sessions/s/ports/8000/via-b.txt",
            TOKEN,
            json!(null),
        )
        .await;
        if status == 200 {
            assert_eq!(body, "through b\n");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // MCP, with the session's own token, through the door.
    let (status, answer) = raw_with(
        &b,
        Method::POST,
        "/v1/sessions/s/mcp",
        &created.token,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "test", "version": "1" } } }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("serverInfo"), "{answer}");

    // A wrong token is refused at the door; another session's token too.
    let other = b.client.create_session(Some("other")).await.unwrap();
    let refused = b
        .raw(Method::GET, "/v1/sessions/s", Some("nope"), None)
        .await;
    assert_error(&refused, 401, "unauthorized");
    let scoped = b
        .raw(Method::GET, "/v1/sessions/s", Some(&other.token), None)
        .await;
    assert_error(&scoped, 401, "unauthorized");
    let mine = b
        .raw(Method::GET, "/v1/sessions/s", Some(&created.token), None)
        .await;
    assert_eq!(mine.0, 200, "{mine:?}");
    // Nobody's session is nobody's.
    let unknown = b
        .raw(Method::GET, "/v1/sessions/ghost", Some(TOKEN), None)
        .await;
    assert_error(&unknown, 404, "session_not_found");
}

#[tokio::test]
async fn an_id_in_use_anywhere_is_taken_and_an_ended_session_stays_ended() {
    let store = tempfile::tempdir().unwrap();
    let a = Worker::start_with(in_fleet(store.path(), "a")).await;
    let b = Worker::start_with(in_fleet(store.path(), "b")).await;
    a.client.create_session(Some("taken")).await.unwrap();
    let twice = b
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(TOKEN),
            Some(br#"{"id":"taken"}"#.to_vec()),
        )
        .await;
    assert_error(&twice, 409, "session_exists");

    // Deleted through b (forwarded to a): gone through every door, and its id free again.
    b.client.delete_session("taken").await.unwrap();
    for w in [&a, &b] {
        let gone = w
            .raw(Method::GET, "/v1/sessions/taken", Some(TOKEN), None)
            .await;
        assert_error(&gone, 404, "session_not_found");
    }
    let again = b.client.create_session(Some("taken")).await.unwrap();
    assert_eq!((again.owner.worker.as_str(), again.owner.epoch), ("b", 3));
}

#[tokio::test]
async fn a_drained_worker_hands_its_sessions_over_at_once_with_all_it_acknowledged() {
    let store = tempfile::tempdir().unwrap();
    let mut a = Worker::start_with(in_fleet(store.path(), "a")).await;
    let b = Worker::start_with(in_fleet(store.path(), "b")).await;
    let created = a.client.create_session(Some("handed")).await.unwrap();
    write(&a.client, "handed", "/workspace/work.txt", "acknowledged\n").await;
    // A rotated token: the old one must stay revoked on the next owner.
    let token = a.client.replace_token("handed").await.unwrap();

    a.stop().await;
    let started = Instant::now();
    assert_eq!(
        read(&b.client, "handed", "workspace/work.txt").await,
        "acknowledged\n"
    );
    // The lease was released: no waiting for its 30 s to lapse.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let info = b.client.session("handed").await.unwrap();
    assert_eq!(info.owner.worker, "b");
    assert!(info.owner.epoch > 1, "{info:?}");
    let old = b
        .raw(
            Method::GET,
            "/v1/sessions/handed",
            Some(&created.token),
            None,
        )
        .await;
    assert_error(&old, 401, "unauthorized");
    let new = b
        .raw(Method::GET, "/v1/sessions/handed", Some(&token), None)
        .await;
    assert_eq!(new.0, 200, "{new:?}");
}

/// Fleet settings with a short lease, for a worker on `s3`.
fn short_lease(worker: &str) -> impl FnOnce(&mut hearth::Config) {
    let worker = worker.to_owned();
    move |config: &mut hearth::Config| {
        config.snapshots.auto_delay_s = 0.0;
        config.worker_id = Some(worker);
        config.fleet.advertise_url = Some("http://127.0.0.1:0".into());
        config.fleet.lease_ttl_s = 2.0;
        config.fleet.lease_renew_s = 0.5;
    }
}

#[tokio::test]
async fn a_worker_cut_off_from_the_store_never_answers_for_a_session_taken_over() {
    let mut s3 = S3Server::start().await;
    // a reaches the store through the proxy `down` cuts; b straight.
    let a = Worker::start_with(|c| {
        s3.configure(c);
        short_lease("a")(c)
    })
    .await;
    let b = Worker::start_with(|c| {
        s3.configure_direct(c);
        short_lease("b")(c)
    })
    .await;
    a.client.create_session(Some("cut")).await.unwrap();
    write(&a.client, "cut", "/workspace/state.txt", "on a\n").await;
    a.client.take_snapshot("cut").await.unwrap();

    s3.down().await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    // a's lease is in doubt: it does not answer for the session without the store.
    let path = "/v1/sessions/cut/files/workspace/state.txt";
    let refused = a.raw(Method::GET, path, Some(TOKEN), None).await;
    assert_error(&refused, 503, "store_unavailable");
    // b takes it over (a's lease lapsed) from its last snapshot, and works on.
    assert_eq!(
        read(&b.client, "cut", "workspace/state.txt").await,
        "on a\n"
    );
    write(&b.client, "cut", "/workspace/state.txt", "on b\n").await;

    // a reaches the store again: it renews, finds the session taken over, parks its copy and
    // forwards to b from then on.
    s3.up().await;
    let started = Instant::now();
    loop {
        let answer = a.raw(Method::GET, path, Some(TOKEN), None).await;
        if answer.0 == 200 {
            assert_eq!(
                answer.1,
                serde_json::Value::String("on b\n".into()),
                "stale"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parked = std::fs::read_dir(a.data.path().join("sessions"))
        .unwrap()
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("cut.parked-2-")
        });
    assert!(parked);
}
