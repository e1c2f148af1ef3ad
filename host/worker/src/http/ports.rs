//! Ports: a server a program of the session started is reached through the worker, at
//! `/v1/sessions/{id}/ports/{port}/…`, HTTP and WebSocket alike, streaming both ways. The
//! connection to it is made inside the session's network namespace, on its loopback: the
//! server never listens on the host's network, and only the session's token (or the worker's)
//! reaches it. The token is not passed on: the program never sees it.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use axum::response::Response;
use hearth_wire::ErrorCode;
use hyper_util::rt::TokioIo;

use super::docs::SessionId;
use super::error::ApiError;
use super::extract::{PathParams, SessionParam};
use super::relay;

/// How long the program's server may take to start answering.
const ANSWER_WAIT: Duration = Duration::from_secs(300);

/// A port and a path below it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PortPath {
    /// The port the program's server listens on, inside the session.
    #[param(minimum = 1, maximum = 65535)]
    #[expect(dead_code, reason = "read by the document only")]
    port: u16,
    /// The path on that server (may be empty).
    #[expect(dead_code, reason = "read by the document only")]
    path: String,
}

/// Reach a server a program of the session runs.
///
/// The request goes on to `http://localhost:{port}/{path}` inside the session, with its
/// method, query, headers (but the token's, and hop-by-hop ones) and body, streamed; the
/// server's answer comes back as it is. A WebSocket (an `Upgrade` request) is joined through
/// both ways. The server sees `Host: localhost:{port}` and `X-Forwarded-Prefix` with the
/// route's prefix. Any method; only GET is listed here.
#[utoipa::path(get, path = "/v1/sessions/{id}/ports/{port}/{*path}", tag = "ports",
    params(SessionId, PortPath),
    responses((status = 200, description = "The server's answer, whatever its status.")),
    extensions(("x-errors" = json!([ErrorCode::PortUnreachable]))))]
pub(super) async fn forward(
    SessionParam(session): SessionParam,
    PathParams(params): PathParams<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let port = params
        .get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidPath, "a port is 1–65535"))?;
    let unreachable = |why: String| {
        ApiError::new(
            ErrorCode::PortUnreachable,
            format!("nothing in the session answers on port {port}: {why}"),
        )
    };
    let network = session
        .existing_network()
        .ok_or_else(|| unreachable("no program of the session has run yet".into()))?;
    let stream = network
        .connect(port)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(connection.with_upgrades());

    let prefix = format!("/v1/sessions/{}/ports/{port}", session.id);
    let (mut parts, body) = request.into_parts();
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let upgrading = relay::is_upgrade(&parts.headers);
    // The path as the client wrote it (percent-encoding kept), past `…/ports/{port}`.
    let path = parts.uri.path().splitn(7, '/').nth(6).unwrap_or("");
    let target = match parts.uri.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    parts.uri = target
        .parse::<Uri>()
        .map_err(|_| ApiError::new(ErrorCode::InvalidPath, "the path is not a valid URI"))?;
    clean_headers(&mut parts.headers, upgrading);
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(&format!("localhost:{port}"))
            .map_err(|_| ApiError::internal("a host header"))?,
    );
    if let Ok(prefix) = HeaderValue::from_str(&prefix) {
        parts
            .headers
            .insert(HeaderName::from_static("x-forwarded-prefix"), prefix);
    }
    parts.version = axum::http::Version::HTTP_11;
    let upstream = Request::from_parts(parts, body);
    let mut answer = tokio::time::timeout(ANSWER_WAIT, sender.send_request(upstream))
        .await
        .map_err(|_| unreachable(format!("no answer within {ANSWER_WAIT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;

    if answer.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        relay::join_upgrade(client_upgrade, &mut answer)?;
    } else {
        clean_headers(answer.headers_mut(), false);
    }
    Ok(answer.map(Body::new))
}

/// Removes the worker's credentials (the program never sees them) and the hop-by-hop headers.
fn clean_headers(headers: &mut HeaderMap, upgrading: bool) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(HeaderName::from_static("x-api-key"));
    relay::drop_hop_by_hop(headers, upgrading);
}
