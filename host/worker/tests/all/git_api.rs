//! git on the worker, against a real git server on loopback (`git daemon`): commit, look,
//! push, clone-on-create, pull, merges clean and conflicting, rejection, rollback; and the
//! boundaries: the git directory and the credentials stay out of every session's reach.

use hearth_client::Client;
use serde_json::{Value, json};

use crate::support::{GitServer, JsonCalls, Worker, assert_client_error, read, write};

async fn worker_for(server: &GitServer) -> Worker {
    let prefix = server.prefix();
    Worker::start_with(move |c| c.git.allowed_remotes = vec![prefix]).await
}

async fn commit(c: &Client, s: &str, message: &str) -> Value {
    c.git(s, "commit", json!({ "message": message }))
        .await
        .unwrap()
}

async fn clone_session(w: &Worker, url: &str) -> String {
    w.client
        .create_session_json(json!({ "git": { "url": url } }))
        .await
        .unwrap()
        .session
        .id
}

#[tokio::test]
async fn commit_status_log_diff_and_rollback() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    // A new session starts as a repository with one (empty) commit.
    let status = c.git_view(&s, "status", &[]).await.unwrap();
    assert_eq!(status["branch"], "main", "{status}");
    assert_eq!(status["state"], "clean");
    assert_eq!(status["changes"], json!([]));
    let first = status["head"].as_str().unwrap().to_owned();

    write(c, &s, "/workspace/main.py", "print('v1')\n").await;
    write(c, &s, "/workspace/pkg/util.py", "X = 1\n").await;
    write(c, &s, "/workspace/.gitignore", "build/\n*.log\n").await;
    write(c, &s, "/workspace/build/out.bin", "ignored\n").await;
    write(c, &s, "/workspace/debug.log", "ignored\n").await;
    let status = c.git_view(&s, "status", &[]).await.unwrap();
    let mut changed: Vec<&str> = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        [".gitignore", "main.py", "pkg/util.py"],
        "{status}"
    );
    let diff = c.git_view(&s, "diff", &[]).await.unwrap();
    assert!(
        diff["patch"].as_str().unwrap().contains("+print('v1')"),
        "{diff}"
    );

    let second = commit(c, &s, "first version").await;
    assert_eq!(second["status"], "committed", "{second}");
    assert_eq!(second["files_changed"], 3);
    assert_eq!(second["commit"]["author"]["name"], "Hearth agent");
    let second = second["commit"]["id"].as_str().unwrap().to_owned();
    let again = commit(c, &s, "nothing new").await;
    assert_eq!(again["status"], "nothing_to_commit", "{again}");
    assert_eq!(again["head"], second.as_str());

    write(c, &s, "/workspace/main.py", "print('v2')\n").await;
    c.call_tool(&s, "delete", json!({ "file_path": "/workspace/pkg" }))
        .await
        .unwrap();
    let third = c
        .git(
            &s,
            "commit",
            json!({ "message": "v2", "author": { "name": "Ada", "email": "ada@example.invalid" } }),
        )
        .await
        .unwrap();
    assert_eq!(third["commit"]["author"]["name"], "Ada");
    let third = third["commit"]["id"].as_str().unwrap().to_owned();

    // Log pages, newest first.
    let page = c.git_view(&s, "log", &[("limit", "2")]).await.unwrap();
    let ids: Vec<&str> = page["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [third.as_str(), second.as_str()]);
    assert_eq!(page["next_skip"], 2);
    let rest = c
        .git_view(&s, "log", &[("limit", "2"), ("skip", "2")])
        .await
        .unwrap();
    assert_eq!(rest["commits"][0]["id"], first.as_str());
    assert_eq!(rest["next_skip"], Value::Null);

    // Diff between two commits.
    let diff = c
        .git_view(&s, "diff", &[("from", &second), ("to", &third)])
        .await
        .unwrap();
    let files: Vec<(&str, &str)> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["change"].as_str().unwrap()))
        .collect();
    assert_eq!(files, [("main.py", "modified"), ("pkg/util.py", "deleted")]);

    // Roll back: files return, history moves, untracked files go with `clean`.
    write(c, &s, "/workspace/scratch.txt", "junk\n").await;
    let reset = c
        .git(&s, "reset", json!({ "commit": second, "clean": true }))
        .await
        .unwrap();
    assert_eq!(reset["head"]["id"], second.as_str());
    assert_eq!(read(c, &s, "workspace/main.py").await, "print('v1')\n");
    assert_eq!(read(c, &s, "workspace/pkg/util.py").await, "X = 1\n");
    assert!(!w.workspace(&s).join("scratch.txt").exists());
    assert!(
        w.workspace(&s).join("debug.log").exists(),
        "ignored files stay"
    );
    // The operator's read-only area is still there for tools and programs.
    let skills = c
        .exec_json(&s, json!({ "command": "cat /workspace/skills/SKILL.md" }))
        .await
        .unwrap();
    assert_eq!(skills["stdout"], "# shared skill\n", "{skills}");

    // Bad input: clear errors.
    assert_client_error(
        c.git(&s, "commit", json!({ "message": "  " })).await,
        400,
        "invalid_git_request",
    );
    assert_client_error(
        c.git(&s, "reset", json!({ "commit": "no-such-rev" })).await,
        404,
        "revision_not_found",
    );
    assert_client_error(
        c.git_view(&s, "log", &[("limit", "0")]).await,
        400,
        "invalid_query",
    );
    assert_client_error(
        c.git(&s, "merge/continue", json!({})).await,
        409,
        "no_merge_in_progress",
    );
    assert_client_error(c.git(&s, "push", json!({})).await, 404, "remote_not_found");
}

#[tokio::test]
async fn clone_on_create_push_and_pull() {
    let server = GitServer::start();
    let url = server.repo(
        "skills.git",
        &[("README.md", "# skills\n"), ("tools/fmt.py", "FMT = 1\n")],
    );
    let w = worker_for(&server).await;
    let c = &w.client;
    let a = clone_session(&w, &url).await;
    assert_eq!(read(c, &a, "workspace/tools/fmt.py").await, "FMT = 1\n");
    let status = c.git_view(&a, "status", &[]).await.unwrap();
    assert_eq!(status["branch"], "main");
    assert_eq!(status["remotes"][0]["name"], "origin");

    write(c, &a, "/workspace/tools/lint.py", "LINT = 2\n").await;
    let head = commit(c, &a, "add lint")
        .await
        .pointer("/commit/id")
        .unwrap()
        .clone();
    let pushed = c.git(&a, "push", json!({})).await.unwrap();
    assert_eq!(pushed["status"], "pushed", "{pushed}");
    assert_eq!(pushed["merged"], false);
    assert_eq!(
        server.git("skills.git", &["rev-parse", "main"]).trim(),
        head.as_str().unwrap()
    );
    let again = c.git(&a, "push", json!({})).await.unwrap();
    assert_eq!(again["status"], "up_to_date", "{again}");

    // A second agent clones what the first pushed, changes it; the first pulls.
    let b = clone_session(&w, &url).await;
    assert_eq!(read(c, &b, "workspace/tools/lint.py").await, "LINT = 2\n");
    write(c, &b, "/workspace/README.md", "# skills, v2\n").await;
    commit(c, &b, "readme v2").await;
    c.git(&b, "push", json!({})).await.unwrap();
    let pulled = c.git(&a, "pull", json!({})).await.unwrap();
    assert_eq!(pulled["status"], "fast_forward", "{pulled}");
    assert_eq!(read(c, &a, "workspace/README.md").await, "# skills, v2\n");

    // Push to a new branch of the remote.
    let branch = c
        .git(&a, "push", json!({ "branch": "agent/feature-1" }))
        .await
        .unwrap();
    assert_eq!(branch["status"], "pushed", "{branch}");
    assert!(
        server
            .git("skills.git", &["branch"])
            .contains("agent/feature-1")
    );

    // Clone of a named branch; of an empty remote; of a missing branch.
    let feature = c
        .create_session_json(json!({ "git": { "url": url, "branch": "agent/feature-1" } }))
        .await
        .unwrap()
        .session
        .id;
    assert_eq!(
        c.git_view(&feature, "status", &[]).await.unwrap()["branch"],
        "agent/feature-1"
    );
    let empty = server.repo("empty.git", &[]);
    let fresh = clone_session(&w, &empty).await;
    write(c, &fresh, "/workspace/a.txt", "a\n").await;
    commit(c, &fresh, "first").await;
    assert_eq!(
        c.git(&fresh, "push", json!({})).await.unwrap()["status"],
        "pushed"
    );
    assert_client_error(
        c.create_session_json(json!({ "id": "nobranch", "git": { "url": url, "branch": "nope" } }))
            .await,
        404,
        "remote_branch_not_found",
    );
    // A failed create leaves nothing behind: the id is free again.
    c.create_session(Some("nobranch")).await.unwrap();
}

#[tokio::test]
async fn a_remote_that_moved_is_merged_cleanly_then_pushed() {
    let server = GitServer::start();
    let url = server.repo("proj.git", &[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let w = worker_for(&server).await;
    let c = &w.client;
    let (a, b) = (clone_session(&w, &url).await, clone_session(&w, &url).await);
    write(c, &a, "/workspace/a.txt", "a from A\n").await;
    commit(c, &a, "A edits a").await;
    c.git(&a, "push", json!({})).await.unwrap();

    write(c, &b, "/workspace/b.txt", "b from B\n").await;
    commit(c, &b, "B edits b").await;
    let pushed = c.git(&b, "push", json!({})).await.unwrap();
    assert_eq!(pushed["status"], "pushed", "{pushed}");
    assert_eq!(pushed["merged"], true);
    assert_eq!(read(c, &b, "workspace/a.txt").await, "a from A\n");
    let remote_a = server.git("proj.git", &["show", "main:a.txt"]);
    let remote_b = server.git("proj.git", &["show", "main:b.txt"]);
    assert_eq!(
        (remote_a.as_str(), remote_b.as_str()),
        ("a from A\n", "b from B\n")
    );
    let parents = server.git("proj.git", &["rev-list", "--parents", "-n1", "main"]);
    assert_eq!(
        parents.split_whitespace().count(),
        3,
        "a merge commit: {parents}"
    );
}

#[tokio::test]
async fn a_conflict_is_resolved_continued_and_pushed_or_aborted() {
    let server = GitServer::start();
    let url = server.repo("proj.git", &[("app.py", "value = 0\n")]);
    let w = worker_for(&server).await;
    let c = &w.client;
    let (a, b) = (clone_session(&w, &url).await, clone_session(&w, &url).await);
    write(c, &a, "/workspace/app.py", "value = 1\n").await;
    commit(c, &a, "A sets 1").await;
    c.git(&a, "push", json!({})).await.unwrap();

    write(c, &b, "/workspace/app.py", "value = 2\n").await;
    write(c, &b, "/workspace/notes.md", "B's notes\n").await;
    commit(c, &b, "B sets 2").await;
    let conflict = c.git(&b, "push", json!({})).await;
    let error = conflict.as_ref().unwrap_err();
    assert_eq!(error.code(), Some("merge_conflict"), "{error}");
    assert_eq!(error.details().unwrap()["conflicts"], json!(["app.py"]));
    let marked = read(c, &b, "workspace/app.py").await;
    assert!(
        marked.contains("<<<<<<<") && marked.contains("value = 1") && marked.contains("value = 2"),
        "{marked}"
    );
    let status = c.git_view(&b, "status", &[]).await.unwrap();
    assert_eq!(status["state"], "merging");
    assert_eq!(status["conflicts"], json!(["app.py"]));
    // While merging: no plain commit, no push, no continue with markers left.
    assert_client_error(
        c.git(&b, "commit", json!({ "message": "x" })).await,
        409,
        "merge_in_progress",
    );
    assert_client_error(c.git(&b, "push", json!({})).await, 409, "merge_in_progress");
    assert_client_error(
        c.git(&b, "merge/continue", json!({})).await,
        409,
        "unresolved_conflicts",
    );

    // Abort: back to B's commit, nothing of A's change left.
    let aborted = c.git(&b, "merge/abort", json!({})).await.unwrap();
    assert_eq!(aborted["status"], "aborted");
    assert_eq!(read(c, &b, "workspace/app.py").await, "value = 2\n");
    assert_eq!(
        c.git_view(&b, "status", &[]).await.unwrap()["state"],
        "clean"
    );

    // Again, and this time resolve with the file tools, continue and push.
    assert!(c.git(&b, "push", json!({})).await.is_err());
    write(c, &b, "/workspace/app.py", "value = 3  # both\n").await;
    let merged = c.git(&b, "merge/continue", json!({})).await.unwrap();
    assert_eq!(merged["status"], "merged", "{merged}");
    assert_eq!(merged["commit"]["parents"].as_array().unwrap().len(), 2);
    let pushed = c.git(&b, "push", json!({})).await.unwrap();
    assert_eq!(pushed["status"], "pushed", "{pushed}");
    assert_eq!(
        server.git("proj.git", &["show", "main:app.py"]),
        "value = 3  # both\n"
    );
    assert_eq!(
        server.git("proj.git", &["show", "main:notes.md"]),
        "B's notes\n"
    );
}

#[tokio::test]
async fn a_push_the_remote_rejects_is_reported_as_rejected() {
    let server = GitServer::start();
    let url = server.repo("guarded.git", &[("a.txt", "a\n")]);
    let hook = server.root.path().join("guarded.git/hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = worker_for(&server).await;
    let c = &w.client;
    let s = clone_session(&w, &url).await;
    write(c, &s, "/workspace/a.txt", "changed\n").await;
    commit(c, &s, "change").await;
    let rejected = c.git(&s, "push", json!({})).await;
    let error = rejected.as_ref().unwrap_err();
    assert_eq!(error.code(), Some("push_rejected"), "{error}");
    assert!(
        error.details().unwrap()["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{error}"
    );
    assert_eq!(
        server.git("guarded.git", &["show", "main:a.txt"]),
        "a\n",
        "the remote is unchanged"
    );
}

#[tokio::test]
async fn remotes_off_the_list_are_refused() {
    let server = GitServer::start();
    let allowed = server.repo("ok.git", &[("a", "a\n")]);
    let w = worker_for(&server).await;
    let c = &w.client;
    for url in [
        "git://127.0.0.1:1/elsewhere.git".to_owned(),
        "/etc".to_owned(),
        format!("file://{}", server.root.path().join("ok.git").display()),
        format!("{allowed}/../../x"),
    ] {
        assert_client_error(
            c.create_session_json(json!({ "git": { "url": url } }))
                .await,
            403,
            "remote_not_allowed",
        );
    }
    let s = c.create_session(None).await.unwrap().session.id;
    assert_client_error(
        c.git(
            &s,
            "remotes",
            json!({ "url": "https://example.invalid/x.git" }),
        )
        .await,
        403,
        "remote_not_allowed",
    );
    let set = c
        .git(&s, "remotes", json!({ "name": "origin", "url": allowed }))
        .await
        .unwrap();
    assert_eq!(set["remotes"][0]["url"], allowed.as_str());
    // The worker's list is empty by default: no remote at all.
    let closed = Worker::start().await;
    assert_client_error(
        closed
            .client
            .create_session_json(json!({ "git": { "url": allowed } }))
            .await,
        403,
        "remote_not_allowed",
    );
}

#[tokio::test]
async fn exec_commits_on_success_only() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    write(c, &s, "/workspace/test_ok.py", "assert 1 + 1 == 2\n").await;
    let passed = c
        .exec_json(
            &s,
            json!({ "script": "test_ok.py", "commit": { "message": "tests pass" } }),
        )
        .await
        .unwrap();
    assert_eq!(passed["exit_code"], 0, "{passed}");
    assert_eq!(passed["commit"]["status"], "committed", "{passed}");
    let id = passed["commit"]["commit"]["id"].as_str().unwrap();
    let log = c.git_view(&s, "log", &[("limit", "1")]).await.unwrap();
    assert_eq!(log["commits"][0]["id"], id);
    assert_eq!(log["commits"][0]["summary"], "tests pass");

    write(c, &s, "/workspace/test_bad.py", "assert 1 + 1 == 3\n").await;
    let failed = c
        .exec_json(
            &s,
            json!({ "script": "test_bad.py", "commit": { "message": "never" } }),
        )
        .await
        .unwrap();
    assert_eq!(failed["exit_code"], 1);
    assert_eq!(failed["commit"]["status"], "skipped", "{failed}");
    let log = c.git_view(&s, "log", &[("limit", "1")]).await.unwrap();
    assert_eq!(log["commits"][0]["id"], id, "no commit for a failed run");
}

/// A simulation that reports failure in its result still exits 0: `when.result_pointer` makes
/// the commit wait for `true` there.
#[tokio::test]
async fn exec_commits_only_when_the_call_result_says_it_passed() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    write(
        c,
        &s,
        "/workspace/sim.py",
        "def run(ok):\n    return {'success': ok, 'checks': {'all': ok}}\n",
    )
    .await;
    let commit = |message: &str, pointer: &str| json!({ "message": message, "when": { "result_pointer": pointer } });
    let failed = c
        .exec_json(
            &s,
            json!({ "call": "sim:run", "kwargs": { "ok": false }, "commit": commit("no", "/success") }),
        )
        .await
        .unwrap();
    assert_eq!(failed["exit_code"], 0, "{failed}");
    assert_eq!(failed["commit"]["status"], "skipped", "{failed}");
    assert!(
        failed["commit"]["reason"]
            .as_str()
            .unwrap()
            .contains("`/success` is false"),
        "{failed}"
    );
    let missing = c
        .exec_json(
            &s,
            json!({ "call": "sim:run", "kwargs": { "ok": true }, "commit": commit("no", "/nowhere") }),
        )
        .await
        .unwrap();
    assert_eq!(missing["commit"]["status"], "skipped", "{missing}");
    let passed = c
        .exec_json(
            &s,
            json!({ "call": "sim:run", "kwargs": { "ok": true }, "commit": commit("sim ok", "/checks/all") }),
        )
        .await
        .unwrap();
    assert_eq!(passed["commit"]["status"], "committed", "{passed}");
    let log = c.git_view(&s, "log", &[("limit", "1")]).await.unwrap();
    assert_eq!(log["commits"][0]["summary"], "sim ok");
    // Asked of something without a JSON result, or with a pointer that is not one: refused.
    for body in [
        json!({ "command": "true", "commit": commit("x", "/success") }),
        json!({ "call": "sim:run", "kwargs": { "ok": true }, "commit": commit("x", "success") }),
    ] {
        let refused = w
            .raw(
                reqwest::Method::POST,
                &format!("/v1/sessions/{s}/exec"),
                Some(crate::support::TOKEN),
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        crate::support::assert_error(&refused, 400, "invalid_exec");
    }
}

#[tokio::test]
async fn the_git_directory_is_out_of_every_sessions_reach() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    write(c, &s, "/workspace/a.txt", "a\n").await;
    commit(c, &s, "a").await;
    let git_dir = w.git_dir(&s);
    let config_before = std::fs::read_to_string(git_dir.join("config")).unwrap();

    // Tools see no git directory, and cannot name one outside the workspace.
    let listing = c
        .call_tool(&s, "ls", json!({ "path": "/workspace" }))
        .await
        .unwrap()
        .to_string();
    assert!(!listing.contains(".git"), "{listing}");
    let found = c
        .call_tool(&s, "glob", json!({ "pattern": "**/HEAD", "path": "/" }))
        .await;
    assert!(
        found.is_err() || !found.unwrap().to_string().contains("HEAD"),
        "glob must not find a git directory"
    );
    for path in ["/workspace/../state/git/config", "/state/git/config"] {
        assert!(
            c.call_tool(&s, "read_file", json!({ "file_path": path }))
                .await
                .is_err(),
            "{path}"
        );
    }
    // A `.git` an agent writes is its own file: not the repository, not committed.
    write(
        c,
        &s,
        "/workspace/.git/config",
        "[core]\n\thooksPath = /workspace/hooks\n",
    )
    .await;
    write(c, &s, "/workspace/b.txt", "b\n").await;
    let b = commit(c, &s, "b").await;
    assert_eq!(b["files_changed"], 1, "only b.txt: {b}");
    assert_eq!(
        std::fs::read_to_string(git_dir.join("config")).unwrap(),
        config_before
    );

    // A jailed program finds no git directory and cannot reach the session's state.
    write(c, &s, "/workspace/marker/HEAD", "a marker\n").await;
    let probe = c
        .exec_json(
            &s,
            json!({ "command": "find / -path /proc -prune -o -name HEAD -print 2>/dev/null; ls -a /workspace; cat ../state/git/config 2>&1; cat /state/git/config 2>&1; true" }),
        )
        .await
        .unwrap();
    let out = probe["stdout"].as_str().unwrap();
    let heads: Vec<&str> = out.lines().filter(|l| l.contains("HEAD")).collect();
    // The planted marker proves the search ran; nothing else named HEAD is in reach.
    assert_eq!(heads, ["/workspace/marker/HEAD"], "{probe}");
    assert!(!out.contains("refs/heads"), "{probe}");
    assert!(!out.contains("[core]\n\tbare"), "{probe}");
    assert!(!out.contains("repositoryformatversion"), "{probe}");
}

#[tokio::test]
async fn rolling_back_never_writes_through_a_planted_symlink() {
    let w = Worker::start().await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    write(c, &s, "/workspace/link/evil.txt", "pwned\n").await;
    let with_dir = commit(c, &s, "a directory named link").await;
    let with_dir = with_dir["commit"]["id"].as_str().unwrap().to_owned();
    // The agent replaces the directory with a symlink to a host directory it should not reach.
    let outside = tempfile::tempdir().unwrap();
    let workspace = w.workspace(&s);
    std::fs::remove_dir_all(workspace.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), workspace.join("link")).unwrap();
    commit(c, &s, "link is now a symlink").await;
    c.git(&s, "reset", json!({ "commit": with_dir }))
        .await
        .unwrap();
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "git wrote through the symlink"
    );
    assert_eq!(read(c, &s, "workspace/link/evil.txt").await, "pwned\n");
}

/// An https-style remote on loopback that demands basic auth and records what it is sent.
async fn auth_recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some(auth) = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                {
                    record.lock().unwrap().push(auth.to_owned());
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn credentials_are_used_by_the_host_and_shown_to_no_one() {
    const SECRET: &str = "ghp_0123456789abcdefSECRET";
    let (prefix, seen) = auth_recording_server().await;
    let allowed = prefix.clone();
    let w = Worker::start_with(move |c| {
        c.git.allowed_remotes = vec![allowed.clone()];
        c.git.credentials = vec![
            toml::from_str(&format!(
                "url_prefix = \"{allowed}\"\ntoken = \"{SECRET}\"\n"
            ))
            .unwrap(),
        ];
    })
    .await;
    let c = &w.client;
    let s = c.create_session(None).await.unwrap().session.id;
    let url = format!("{prefix}repo.git");
    c.git(&s, "remotes", json!({ "url": url })).await.unwrap();
    write(c, &s, "/workspace/a.txt", "a\n").await;
    commit(c, &s, "a").await;

    let pushed = c.git(&s, "push", json!({})).await;
    let error = pushed.as_ref().unwrap_err();
    assert_eq!(error.code(), Some("remote_failed"), "{error}");
    assert!(!error.to_string().contains(SECRET), "{error}");
    // The host presented the token, as basic auth, to the remote it is meant for.
    use base64::Engine as _;
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{SECRET}"));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|h| h.contains(&expected)),
        "no credential reached the remote: {seen:?}"
    );

    // Nothing the session can see or be told holds the secret.
    let env = c
        .exec_json(
            &s,
            json!({ "command": "env; cat /proc/self/environ; cat /proc/1/environ; grep -rs . /workspace /tmp; true" }),
        )
        .await
        .unwrap();
    assert!(!env.to_string().contains(SECRET), "{env}");
    for view in ["status", "log", "diff"] {
        let answer = c.git_view(&s, view, &[]).await.unwrap();
        assert!(!answer.to_string().contains(SECRET), "{view}: {answer}");
    }
    let pulled = c.git(&s, "pull", json!({})).await.unwrap_err();
    assert!(!pulled.to_string().contains(SECRET), "{pulled}");
    let info = c.session(&s).await.unwrap();
    assert!(!format!("{info:?}").contains(SECRET));
}

/// Found by schemathesis: a remote name with a NUL made libgit2's binding panic in the helper
/// (500). Any name is input to judge, not to trust.
#[tokio::test]
async fn a_remote_name_with_a_nul_is_refused_not_a_crash() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    for name in ["\u{f9}:\u{0}o", "\u{0}", "ok\u{0}"] {
        let body = serde_json::to_vec(&json!({ "name": name, "url": "" })).unwrap();
        let answer = w
            .raw(
                reqwest::Method::POST,
                &format!("/v1/sessions/{s}/git/remotes"),
                Some(crate::support::TOKEN),
                Some(body),
            )
            .await;
        crate::support::assert_error(&answer, 400, "invalid_git_request");
    }
}
