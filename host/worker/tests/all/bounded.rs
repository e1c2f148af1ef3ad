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
