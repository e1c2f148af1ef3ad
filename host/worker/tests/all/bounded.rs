//! Nothing exhausted: one session's client or program cannot take the memory other sessions
//! need.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TOKEN, Worker};

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
    let s = w.client.create_session(None).await.unwrap().id;
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
        .exec(&s, json!({ "command": "echo free" }))
        .await
        .unwrap();
    assert_eq!(answer["stdout"], "free\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(response);
}

/// A worker on a store at `endpoint`, with `extra` options; returns why it would not start.
async fn start_error(endpoint: &str, extra: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
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
    let s = w.client.create_session(None).await.unwrap().id;
    let made = w
        .client
        .exec(
            &s,
            json!({ "command": "head -c 300M /dev/urandom > /workspace/big.bin && echo ok" }),
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
    assert!(received > 300 * 1024 * 1024, "{received} bytes");
    assert!(
        peak < before + 150,
        "the worker grew from {before} MiB to {peak} MiB during a 300 MiB export"
    );
}
