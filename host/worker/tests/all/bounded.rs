//! Nothing exhausted: one session's client or program cannot take the memory other sessions
//! need.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{JsonCalls, TOKEN, Worker};

/// This process's resident memory (the worker runs in it), in MiB.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stream_costs_no_memory_and_frees_the_session() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let before = rss_mib();
    let mut response = reqwest::Client::new()
        .post(format!("{}/v1/sessions/{s}/exec/stream", w.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "command": "yes", "timeout_s": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some());
    // The program writes as fast as it can; the client reads nothing more.
    let mut peak = 0;
    for _ in 0..14 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_mib());
    }
    assert!(
        peak < before + 256,
        "the worker grew from {before} MiB to {peak} MiB"
    );
    // The run ended at its wall time; the session is free while the client still holds on.
    let started = Instant::now();
    let answer = w
        .client
        .exec_json(&s, json!({ "command": "echo free" }))
        .await
        .unwrap();
    assert_eq!(answer["stdout"], "free\n");
    // Not held until the client goes: a run's time, even on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(response);
}

/// A worker on a store at `endpoint`, with `extra` options; returns why it would not start.
async fn start_error(endpoint: &str, extra: &[(&str, &str)]) -> String {
    let data = crate::support::DataDir::new();
    let mut config = hearth::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        cache_dir: Some(hearth_tests::shared_cache_dir()),
        ..hearth::Config::default()
    };
    config.snapshots.store_url = Some("s3://bucket/prefix".into());
    config.snapshots.retry_timeout_s = 1.0;
    config.snapshots.max_retries = 1;
    config.snapshots.store_options = [
        ("aws_endpoint", endpoint),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    match hearth::start(config, std::future::pending()).await {
        Ok(_) => panic!("the worker started on a store it cannot use"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_store_that_cannot_work_stops_the_start_naming_what_to_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = start_error(&endpoint, &[]).await;
    assert!(http.contains("aws_allow_http"), "{http}");
    let started = Instant::now();
    let unreachable = start_error(&endpoint, &[("aws_allow_http", "true")]).await;
    assert!(unreachable.contains("probe"), "{unreachable}");
    assert!(unreachable.contains("store_options"), "{unreachable}");
    assert!(started.elapsed() < Duration::from_secs(35));
}

#[tokio::test]
async fn an_export_streams_in_bounded_memory() {
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let made = w
        .client
        .exec_json(
            &s,
            json!({ "command": "head -c 400M /dev/urandom > /workspace/big.bin && echo ok" }),
        )
        .await
        .unwrap();
    assert_eq!(made["stdout"], "ok\n", "{made}");
    let before = rss_mib();
    let mut response = reqwest::Client::new()
        .get(format!("{}/v1/sessions/{s}/export", w.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut received, mut peak) = (0usize, before);
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
        peak = peak.max(rss_mib());
    }
    assert!(received > 400 * 1024 * 1024, "{received} bytes");
    // Built in memory, the archive alone would be 400 MiB; other tests share this process.
    assert!(
        peak < before + 250,
        "the worker grew from {before} MiB to {peak} MiB during a 400 MiB export"
    );
}

/// Reads until the server closes the connection or `within` passes; returns whether it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn half_open_idle_and_excess_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let w = Worker::start_with(|c| {
        c.http.header_timeout_s = 1.0;
        c.http.max_connections = 4;
    })
    .await;
    let address = w.url.trim_start_matches("http://").to_owned();
    // A slowloris: half a request head, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    // An idle keep-alive connection after one answer.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(3)).await);
    // Over the cap, a connection is closed at once; the held ones time out, and then a client
    // gets in again.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut excess = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(closed_within(&mut excess, Duration::from_millis(500)).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = w.client.health().await.unwrap();
    assert_eq!(health.status, "ok", "{health:?}");
    drop(held);
}

#[tokio::test]
async fn an_early_401_leaves_a_pooled_client_working() {
    let w = Worker::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/sessions", w.url);
    for _ in 0..3 {
        let refused = client
            .post(&url)
            .body(vec![b' '; 256 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..])
        );
        let created = client
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
}

#[tokio::test]
async fn an_idle_session_expires_into_a_snapshot_and_comes_back() {
    let w = Worker::start_with(|c| c.idle_expire_s = 2.0).await;
    let c = &w.client;
    c.create_session(Some("sleepy")).await.unwrap();
    c.create_session(Some("busy")).await.unwrap();
    crate::support::write(c, "sleepy", "/workspace/notes.txt", "remember me\n").await;
    let started = Instant::now();
    let expired = loop {
        // The busy session is used all along.
        c.call_tool("busy", "ls", json!({ "path": "/workspace" }))
            .await
            .unwrap();
        match c.session("sleepy").await {
            Err(e) if e.code() == Some("session_expired") => break e,
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never expired");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(expired.status(), Some(404));
    assert!(expired.to_string().contains("from_snapshot"), "{expired}");
    assert!(c.session("busy").await.is_ok(), "a session in use expired");
    assert!(!w.data.path().join("sessions/sleepy").exists());
    c.create_session_json(json!({ "id": "sleepy", "from_snapshot": "sleepy" }))
        .await
        .unwrap();
    assert_eq!(
        crate::support::read(c, "sleepy", "workspace/notes.txt").await,
        "remember me\n"
    );
}

#[tokio::test]
async fn the_token_goes_in_authorization_or_the_api_key_header() {
    let w = Worker::start().await;
    let sessions = format!("{}/v1/sessions", w.url);
    let client = reqwest::Client::new();
    let by_key = client
        .get(&sessions)
        .header("X-API-Key", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 200);
    let wrong = client
        .get(&sessions)
        .header("X-API-Key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let bearer = client
        .get(&sessions)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
}

#[tokio::test]
async fn a_call_longer_than_the_idle_time_is_use_not_idleness() {
    let w = Worker::start_with(|c| c.idle_expire_s = 1.0).await;
    let c = &w.client;
    c.create_session(Some("long")).await.unwrap();
    let answer = c
        .exec_json(
            "long",
            json!({ "command": "sleep 3 && echo done > /tmp/mark" }),
        )
        .await
        .unwrap();
    assert_eq!(answer["exit_code"], 0, "{answer}");
    // The run ended just now: the session is fresh, /tmp and all.
    let info = c.session("long").await;
    assert!(info.is_ok(), "{info:?}");
    let mark = c
        .exec_json("long", json!({ "command": "cat /tmp/mark" }))
        .await
        .unwrap();
    assert_eq!(mark["stdout"], "done\n");
}

#[tokio::test]
async fn a_noisy_token_is_slowed_down_with_429_and_retry_after() {
    let w = Worker::start_with(|c| {
        c.http.rate_per_s = 5.0;
        c.http.rate_burst = 3;
    })
    .await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", w.url))
            .bearer_auth(TOKEN)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(get("/v1/sessions").await.unwrap().status(), 200);
    }
    let refused = get("/v1/sessions").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Health checks are never limited; the bucket refills at the rate.
    for _ in 0..10 {
        assert_eq!(get("/v1/health").await.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get("/v1/sessions").await.unwrap().status(), 200);
    assert_eq!(get("/v1/sessions").await.unwrap().status(), 429);
}

/// A body sent after its head (a second packet) to a route with no use for it: the answer must
/// leave the connection usable, or a pooled client's next request meets a reset.
#[tokio::test]
async fn a_body_a_route_ignores_leaves_the_connection_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start().await;
    let s = w.client.create_session(None).await.unwrap().session.id;
    let addr = w.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let body = b"{}";
    let head = format!(
        "POST /v1/sessions/{s}/snapshots HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(body).await.unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 201"), "{first}");
    let next = format!(
        "GET /v1/sessions/{s} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stream.write_all(next.as_bytes()).await.unwrap();
    let second = read_response(&mut stream).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the connection was dropped: {second:?}"
    );

    async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap_or(0);
            if n == 0 {
                return String::from_utf8_lossy(&seen).into_owned();
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if rest.len() >= length {
                    return text;
                }
            }
        }
    }
}
