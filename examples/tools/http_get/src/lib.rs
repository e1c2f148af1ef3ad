//! `http_get`: a Hearth tool with network access. It fetches a URL with `wasi:http` and returns
//! the status and the body as text. It reaches only what the operator lets it reach: its
//! manifest names the hosts (`network = ["api.example.com:443"]`), the operator's
//! `[tools.grants.http_get] network` must cover them, and the host refuses everything else —
//! including a name that resolves to a private address.

wit_bindgen::generate!({ world: "tool", path: "../../../wit" });

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// The most of a body the tool returns.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `http://host[:port]/path?query` split into what `wasi:http` takes.
#[derive(Debug, PartialEq, Eq)]
pub struct Url<'a> {
    pub https: bool,
    pub authority: &'a str,
    pub path_with_query: &'a str,
}

pub fn parse(url: &str) -> Option<Url<'_>> {
    let (https, rest) = match url.split_once("://")? {
        ("https", rest) => (true, rest),
        ("http", rest) => (false, rest),
        _ => return None,
    };
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    (!authority.is_empty() && !authority.contains('@')).then_some(Url {
        https,
        authority,
        path_with_query: if path.is_empty() { "/" } else { path },
    })
}

struct HttpGet;

impl Guest for HttpGet {
    fn describe() -> Metadata {
        Metadata {
            name: "http_get".into(),
            description: "Fetch an http(s) URL (GET) and return its status and body as text (at \
                most 1 MiB). Only the hosts this tool was granted are reachable."
                .into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": { "url": { "type": "string", "description": "http:// or https://" } },
                "required": ["url"],
                "additionalProperties": false
            })
            .to_string(),
            read_only: true,
        }
    }

    fn invoke(_context: CallContext, args: String) -> Result<String, ToolError> {
        let args: serde_json::Value =
            serde_json::from_str(&args).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let url = args["url"].as_str().unwrap_or_default();
        let url = parse(url)
            .ok_or_else(|| ToolError::InvalidInput(format!("`{url}` is not an http(s) URL")))?;
        let (status, body) = get(&url).map_err(|e| match e {
            ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
                ToolError::PermissionDenied(format!(
                    "{}: not reachable from this tool ({e:?})",
                    url.authority
                ))
            }
            other => ToolError::Other(format!("{}: {other:?}", url.authority)),
        })?;
        Ok(serde_json::json!({
            "status": status,
            "body": String::from_utf8_lossy(&body),
            "truncated": body.len() >= MAX_BODY_BYTES,
        })
        .to_string())
    }
}

fn get(url: &Url<'_>) -> Result<(u16, Vec<u8>), ErrorCode> {
    let internal = |what: &str| ErrorCode::InternalError(Some(what.to_owned()));
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| internal("scheme"))?;
    request
        .set_authority(Some(url.authority))
        .map_err(|()| internal("authority"))?;
    request
        .set_path_with_query(Some(url.path_with_query))
        .map_err(|()| internal("path"))?;
    let pending = outgoing_handler::handle(request, None)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| internal("no response"))?
        .map_err(|()| internal("response taken twice"))??;
    let status = response.status();
    let body = response.consume().map_err(|()| internal("body"))?;
    let stream = body.stream().map_err(|()| internal("stream"))?;
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY_BYTES {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(internal(&e.to_debug_string()));
            }
        }
    }
    bytes.truncate(MAX_BODY_BYTES);
    Ok((status, bytes))
}

export!(HttpGet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_as_wasi_http_takes_them() {
        assert_eq!(
            parse("https://api.example.com/v1/x?y=1"),
            Some(Url {
                https: true,
                authority: "api.example.com",
                path_with_query: "/v1/x?y=1"
            })
        );
        assert_eq!(
            parse("http://127.0.0.1:8080"),
            Some(Url {
                https: false,
                authority: "127.0.0.1:8080",
                path_with_query: "/"
            })
        );
        for bad in ["ftp://x/", "http://", "https://user@host/", "example.com"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
