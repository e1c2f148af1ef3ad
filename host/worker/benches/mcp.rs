//! What MCP costs over the plain HTTP route: `read_file` of a 4 KiB file as a `tools/call` on
//! `/v1/sessions/{id}/mcp` (JSON-RPC, streamable HTTP, JSON answers) beside
//! `POST /v1/sessions/{id}/tools/read_file`, alternating, on one release worker and one
//! keep-alive connection each.
//!
//! Run: `cargo bench -p hearth --bench mcp`.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

mod common;

use common::{BenchDir, Conn, report, start_worker};
use serde_json::json;

const CALLS: usize = 1000;
const MCP_HEADERS: &str =
    "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n";

fn main() {
    let base = BenchDir::new();
    let (mut server, addr) = start_worker(base.path(), "[http]\nrate_per_s = 0\n");
    let mut http = Conn::open(&addr);
    let mut mcp = Conn::open(&addr);
    let session = http.create_session().unwrap();
    let content = "x".repeat(4096);
    let write = json!({ "file_path": "/workspace/f.txt", "content": content });
    assert!(http.tool(&session, "write_file", &write).0);
    let args = json!({ "file_path": "/workspace/f.txt" });
    let endpoint = format!("/v1/sessions/{session}/mcp");
    let initialize = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": "bench", "version": "1" } } });
    let (status, _) = mcp.request_with(
        "POST",
        &endpoint,
        initialize.to_string().as_bytes(),
        MCP_HEADERS,
    );
    assert_eq!(status, 200);
    // A 2025-11-25 client has an MCP session: every request names it.
    let session_id = mcp
        .last_headers
        .iter()
        .find(|(name, _)| name == "mcp-session-id")
        .map(|(_, value)| value.clone())
        .unwrap();
    let headers = format!("{MCP_HEADERS}Mcp-Session-Id: {session_id}\r\n");
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    mcp.request_with(
        "POST",
        &endpoint,
        initialized.to_string().as_bytes(),
        &headers,
    );
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "read_file", "arguments": args } })
    .to_string();
    let (mut over_http, mut over_mcp) = (Vec::new(), Vec::new());
    let (mut http_errors, mut mcp_errors) = (0, 0);
    for i in 0..CALLS + 50 {
        let (ok, latency) = http.tool(&session, "read_file", &args);
        let started = std::time::Instant::now();
        let (status, body) = mcp.request_with("POST", &endpoint, call.as_bytes(), &headers);
        let mcp_latency = started.elapsed();
        let mcp_ok = status == 200 && !String::from_utf8_lossy(&body).contains("\"isError\":true");
        if i >= 50 {
            over_http.push(latency);
            over_mcp.push(mcp_latency);
            http_errors += usize::from(!ok);
            mcp_errors += usize::from(!mcp_ok);
        }
    }
    println!(
        "\n| read_file, 4 KiB ({CALLS} calls each, alternating) | p50 | p99 | calls | errors | |\n|---|---|---|---|---|---|"
    );
    report(
        "plain HTTP `POST …/tools/read_file`",
        over_http,
        http_errors,
        None,
    );
    report("MCP `tools/call` on `…/mcp`", over_mcp, mcp_errors, None);
    let _ = server.kill();
    let _ = server.wait();
}
