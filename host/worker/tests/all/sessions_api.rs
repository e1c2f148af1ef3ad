//! Sessions: create, list, info, delete, ids, restart.

use reqwest::Method;
use serde_json::json;

use crate::support::{TOKEN, Worker, assert_client_error, assert_error};

#[tokio::test]
async fn create_list_info_delete() {
    let w = Worker::start().await;
    let generated = w.client.create_session(None).await.unwrap();
    assert_eq!(generated.id.len(), 32);
    let named = w.client.create_session(Some("agent-7")).await.unwrap();
    assert_eq!(named.id, "agent-7");
    let paths: Vec<(&str, bool)> = named
        .mounts
        .iter()
        .map(|m| (m.path.as_str(), m.writable))
        .collect();
    assert_eq!(
        paths,
        [
            ("/workspace", true),
            ("/tmp", true),
            ("/workspace/skills", false)
        ]
    );
    assert!(w.workspace("agent-7").is_dir());

    let ids: Vec<String> = w
        .client
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"agent-7".to_owned()));
    assert_eq!(w.client.session("agent-7").await.unwrap().id, "agent-7");

    w.client.delete_session("agent-7").await.unwrap();
    assert!(
        !w.workspace("agent-7").exists(),
        "the session's files are gone"
    );
    assert_client_error(w.client.session("agent-7").await, 404, "session_not_found");
    assert_client_error(
        w.client.delete_session("agent-7").await,
        404,
        "session_not_found",
    );
}

#[tokio::test]
async fn ids_are_validated_and_unique() {
    let w = Worker::start().await;
    w.client.create_session(Some("dup")).await.unwrap();
    assert_client_error(
        w.client.create_session(Some("dup")).await,
        409,
        "session_exists",
    );
    for bad in ["../escape", "a/b", "", "-x", "with space", &"x".repeat(65)] {
        assert_client_error(
            w.client.create_session(Some(bad)).await,
            400,
            "invalid_session_id",
        );
    }
    assert!(!w.data.path().join("escape").exists());
    let snapshot = w
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(TOKEN),
            Some(br#"{"from_snapshot": "s1"}"#.to_vec()),
        )
        .await;
    assert_error(&snapshot, 404, "snapshot_not_found");
    let unknown = w
        .raw(
            Method::POST,
            "/v1/sessions",
            Some(TOKEN),
            Some(br#"{"idd": "x"}"#.to_vec()),
        )
        .await;
    assert_error(&unknown, 400, "invalid_request");
}

#[tokio::test]
async fn the_session_limit_is_a_quota() {
    let w = Worker::start_with(|c| c.max_sessions = 2).await;
    w.client.create_session(None).await.unwrap();
    w.client.create_session(None).await.unwrap();
    assert_client_error(w.client.create_session(None).await, 507, "session_limit");
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let w = Worker::start().await;
    w.client.create_session(Some("keep")).await.unwrap();
    w.client
        .call_tool(
            "keep",
            "write_file",
            json!({ "file_path": "/workspace/notes.md", "content": "remember" }),
        )
        .await
        .unwrap();
    // Leftovers that are not sessions: a half-created directory, and a copy of "keep" under
    // another name (its record names "keep").
    let sessions = w.data.path().join("sessions");
    std::fs::create_dir_all(sessions.join("half/workspace")).unwrap();
    std::fs::write(sessions.join("half/workspace/stale.txt"), "old").unwrap();
    copy_dir(&sessions.join("keep"), &sessions.join("impostor"));
    let w = w.restart().await;
    let read = w
        .client
        .call_tool(
            "keep",
            "read_file",
            json!({ "file_path": "/workspace/notes.md" }),
        )
        .await
        .unwrap();
    assert_eq!(read["content"], "remember");
    let ids: Vec<String> = w
        .client
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["keep"]);
    w.client.create_session(Some("half")).await.unwrap();
    let stale = w
        .client
        .call_tool(
            "half",
            "read_file",
            json!({ "file_path": "/workspace/stale.txt" }),
        )
        .await;
    assert_client_error(stale, 404, "file_not_found");
}

#[tokio::test]
async fn the_view_paths_are_configurable() {
    let w = Worker::start_with(|c| {
        c.workspace_path = "/project".into();
        c.scratch_path = "/scratch".into();
        c.read_only_areas[0].path = "/project/skills".into();
    })
    .await;
    let session = w.client.create_session(None).await.unwrap();
    let paths: Vec<&str> = session.mounts.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/project", "/scratch", "/project/skills"]);
    let s = session.id.clone();
    w.client
        .call_tool(
            &s,
            "write_file",
            json!({ "file_path": "/project/src/a.py", "content": "x" }),
        )
        .await
        .unwrap();
    let found = w
        .client
        .call_tool(&s, "glob", json!({ "pattern": "*.py" }))
        .await
        .unwrap();
    assert_eq!(found["matches"][0]["path"], "/project/src/a.py");
    let skill = w
        .client
        .call_tool(
            &s,
            "read_file",
            json!({ "file_path": "/project/skills/SKILL.md" }),
        )
        .await;
    assert_eq!(skill.unwrap()["content"], "# shared skill\n");
    assert_client_error(
        w.client
            .call_tool(
                &s,
                "read_file",
                json!({ "file_path": "/workspace/src/a.py" }),
            )
            .await,
        400,
        "invalid_path",
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
