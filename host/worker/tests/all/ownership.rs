//! Ownership of a session across workers sharing a snapshot store: the exact lost-update
//! sequence of issue 17 (a session moved from A to B, then A back on its old data dir, and a
//! `DELETE ?snapshot=true` on A), and a variant where both publish at once. The session's last
//! state is always what its owner acknowledged.

use reqwest::Method;
use serde_json::json;

use crate::support::{JsonCalls, TOKEN, Worker, assert_error, read, write};

fn on_store(store: &std::path::Path, worker: &'static str) -> impl FnOnce(&mut hearth::Config) {
    let url = format!("file://{}", store.display());
    move |config: &mut hearth::Config| {
        config.snapshots.store_url = Some(url);
        config.worker_id = Some(worker.into());
    }
}

#[tokio::test]
async fn a_worker_back_on_its_old_data_dir_neither_serves_nor_publishes_a_moved_session() {
    let store = tempfile::tempdir().unwrap();
    let a = Worker::start_with(on_store(store.path(), "a")).await;
    a.client.create_session(Some("moving")).await.unwrap();
    write(
        &a.client,
        "moving",
        "/workspace/state.txt",
        "written on a\n",
    )
    .await;
    a.client.take_snapshot("moving").await.unwrap();

    // B takes it over from its last snapshot, does more, and publishes it.
    let b = Worker::start_with(on_store(store.path(), "b")).await;
    b.client
        .create_session_json(json!({ "id": "moving", "from_snapshot": "moving" }))
        .await
        .unwrap();
    assert_eq!(
        read(&b.client, "moving", "workspace/state.txt").await,
        "written on a\n"
    );
    write(&b.client, "moving", "/workspace/state.txt", "then on b\n").await;
    b.client.take_snapshot("moving").await.unwrap();

    // A comes back on its old data dir: its copy is parked, not served.
    let a = a.restart_with(on_store(store.path(), "a")).await;
    let path = "/v1/sessions/moving";
    let answer = a.raw(Method::GET, path, Some(TOKEN), None).await;
    assert_error(&answer, 404, "session_moved");
    assert_eq!(answer.1["error"]["details"]["worker"], "b");
    let delete = a
        .raw(
            Method::DELETE,
            "/v1/sessions/moving?snapshot=true",
            Some(TOKEN),
            None,
        )
        .await;
    assert_error(&delete, 404, "session_moved");
    let parked: Vec<String> = std::fs::read_dir(a.data.path().join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        parked
            .iter()
            .any(|name| name.starts_with("moving.parked-2-")),
        "{parked:?}"
    );

    // Whoever restores it next gets B's state.
    let c = Worker::start_with(on_store(store.path(), "c")).await;
    c.client
        .create_session_json(json!({ "id": "moving", "from_snapshot": "moving" }))
        .await
        .unwrap();
    assert_eq!(
        read(&c.client, "moving", "workspace/state.txt").await,
        "then on b\n"
    );
}

/// A keeps running while B takes the session over; both publish, in either order: the latest
/// is B's, and A stops serving its copy the moment it tries.
#[tokio::test]
async fn when_both_publish_the_new_owner_wins_and_the_old_one_stops_serving() {
    let store = tempfile::tempdir().unwrap();
    let a = Worker::start_with(on_store(store.path(), "a")).await;
    a.client.create_session(Some("both")).await.unwrap();
    write(&a.client, "both", "/workspace/state.txt", "a, first\n").await;
    a.client.take_snapshot("both").await.unwrap();
    let b = Worker::start_with(on_store(store.path(), "b")).await;
    b.client
        .create_session_json(json!({ "id": "both", "from_snapshot": "both" }))
        .await
        .unwrap();
    write(&a.client, "both", "/workspace/state.txt", "a, stale\n").await;
    write(&b.client, "both", "/workspace/state.txt", "b, owner\n").await;
    let (from_a, from_b) = tokio::join!(
        a.client.take_snapshot("both"),
        b.client.take_snapshot("both")
    );
    assert!(from_b.unwrap().latest);
    let refused = from_a.unwrap_err();
    assert!(
        format!("{refused:?}").contains("session_moved"),
        "{refused:?}"
    );
    // A serves it no more.
    assert_error(
        &a.raw(Method::GET, "/v1/sessions/both", Some(TOKEN), None)
            .await,
        404,
        "session_moved",
    );
    let c = Worker::start_with(on_store(store.path(), "c")).await;
    c.client
        .create_session_json(json!({ "id": "both", "from_snapshot": "both" }))
        .await
        .unwrap();
    assert_eq!(
        read(&c.client, "both", "workspace/state.txt").await,
        "b, owner\n"
    );
}
