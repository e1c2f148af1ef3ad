//! `hearth mcp`: MCP over stdio for clients that only launch local processes (desktop apps),
//! forwarded to a worker's `/v1/sessions/{id}/mcp`. Each JSON-RPC message read from stdin is
//! posted to the endpoint (with the MCP session the server gave, if it gave one); each message of
//! the answer (JSON, or the `data:` lines of an event stream) is written to stdout, one per line.
//! The token never reaches the tools. Notifications the server pushes on its GET stream are not
//! forwarded: a stdio client sees a changed registry at its next `tools/list`.

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The protocol version header a client sends once it is negotiated.
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// The session a server gives a client of 2025-11-25 and before, sent back with every request.
const SESSION_HEADER: &str = "mcp-session-id";

pub async fn bridge(url: &str, session: &str, token: Option<String>) -> Result<()> {
    let endpoint = format!("{}/v1/sessions/{session}/mcp", url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let mut protocol: Option<String> = None;
    let mut mcp_session: Option<String> = None;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let message: serde_json::Value =
            serde_json::from_str(&line).context("stdin carries JSON-RPC messages, one per line")?;
        let mut request = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(line.clone());
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        if let Some(version) = &protocol {
            request = request.header(PROTOCOL_HEADER, version);
        }
        if let Some(id) = &mcp_session {
            request = request.header(SESSION_HEADER, id);
        }
        let response = request.send().await.context("reaching the worker")?;
        if let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            mcp_session = Some(id.to_owned());
        }
        let status = response.status();
        let event_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = response.text().await?;
        let answers: Vec<String> = match (status.is_success(), event_stream) {
            // A notification: accepted, nothing to say.
            (true, _) if body.trim().is_empty() => Vec::new(),
            (true, true) => body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty())
                .collect(),
            (true, false) => vec![body.trim().to_owned()],
            // Refused before MCP (a bad token, a missing session): said as a JSON-RPC error.
            (false, _) => match message.get("id") {
                Some(id) => vec![
                    serde_json::json!({
                        "jsonrpc": "2.0",
                        "id": id,
                        "error": { "code": -32000, "message": format!("the worker answered {status}: {body}") }
                    })
                    .to_string(),
                ],
                None => Vec::new(),
            },
        };
        for answer in answers {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&answer)
                && let Some(version) = value
                    .pointer("/result/protocolVersion")
                    .and_then(|v| v.as_str())
            {
                protocol = Some(version.to_owned());
            }
            stdout.write_all(answer.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
            stdout.flush().await?;
        }
    }
    Ok(())
}
