//! The middleware around every route: request ids, logs and metrics (`observe`), the token
//! and its scope (`authenticate`), rate limits (`admit`), and reading whole bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use hearth_wire::ErrorCode;

use super::error::ApiError;
use crate::app::App;

// ---------------------------------------------------------------------------------------------
// Middleware

/// Gives every request an id (`x-request-id`, taken from the request or made up), a tracing
/// span, a log line, and its place in the metrics.
pub(super) async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128 && !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{:x}-{}",
                app.started_nonce,
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            )
        });
    // Only standard methods become label values: an extension method per request must not
    // grow the metrics without bound.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", id = %id, %method, %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.as_str());
    span.in_scope(|| match code {
        Some(code) if status >= 500 => tracing::warn!(status, code, ?elapsed, "answered"),
        Some(code) => tracing::info!(status, code, ?elapsed, "answered"),
        None => tracing::info!(status, ?elapsed, "answered"),
    });
    app.metrics
        .record_request(&method, &route, status, elapsed, code);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Every route but `/v1/health` needs the bearer token, when one is configured; installing and
/// removing tools need the operator's token, always. The comparisons take the same time
/// wherever the first differing byte is.
pub(super) async fn authenticate(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if app.draining.load(std::sync::atomic::Ordering::Acquire)
        && !crate::drain::allowed_while_draining(path)
    {
        let mut refused = ApiError::new(
            ErrorCode::Draining,
            "this worker is draining (stopping): it takes no more work; retry on another",
        )
        .into_response();
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return refused;
    }
    if matches!(path, "/v1/health" | "/v1/ready") {
        return next.run(request).await;
    }
    let presented = presented_token(&request).unwrap_or("").to_owned();
    let operator = app.config.tools.operator_token.as_deref();
    let is_operator =
        operator.is_some_and(|t| constant_time_eq(presented.as_bytes(), t.as_bytes()));
    if changes_tools(&request) {
        if is_operator {
            return admit(&app, "tools-operator", request, next).await;
        }
        // Who is not known at all is told to authenticate; who is known, that this is not theirs.
        let known = match &app.config.token {
            None => true,
            Some(token) => {
                constant_time_eq(presented.as_bytes(), token.as_bytes())
                    || (!presented.is_empty()
                        && app
                            .sessions
                            .opened_by(&crate::tokens::hash(&presented))
                            .is_some())
            }
        };
        if !known {
            return refuse(ApiError::unauthorized(), &request);
        }
        let why = match operator {
            Some(_) => {
                "installing and removing tools needs the operator's token (tools.operator_token)"
            }
            None => {
                "installing and removing tools is off: this worker has no operator token (tools.operator_token / HEARTH_OPERATOR_TOKEN)"
            }
        };
        return refuse(ApiError::new(ErrorCode::OperatorOnly, why), &request);
    }
    if is_operator {
        return admit(&app, "tools-operator", request, next).await;
    }
    let Some(token) = &app.config.token else {
        return admit(&app, "local", request, next).await;
    };
    let presented = presented.as_str();
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return admit(&app, "operator", request, next).await;
    }
    let session = (!presented.is_empty())
        .then(|| app.sessions.opened_by(&crate::tokens::hash(presented)))
        .flatten();
    let refused = match session {
        Some(id) if crate::tokens::opens(&id, request.uri().path()) => {
            return admit(&app, &format!("session:{id}"), request, next).await;
        }
        Some(id) => ApiError::new(
            ErrorCode::TokenScope,
            format!("this token opens session `{id}`'s routes only"),
        ),
        None => ApiError::unauthorized(),
    };
    refuse(refused, &request)
}

/// The token a request presents: `Authorization: Bearer`, or the API-key header for clients
/// that cannot set Authorization (some MCP and webhook clients).
pub(super) fn presented_token(request: &Request) -> Option<&str> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let api_key = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    bearer.or(api_key)
}

/// Installing or removing a tool: `PUT` or `DELETE /v1/tools/{name}`.
fn changes_tools(request: &Request) -> bool {
    let path = request.uri().path();
    matches!(*request.method(), Method::PUT | Method::DELETE)
        && path
            .strip_prefix("/v1/tools/")
            .is_some_and(|name| !name.is_empty())
}

/// An answer that refuses a request before its body was read: the connection cannot carry
/// another request, and says so, or a pooled client would send its next request on a
/// connection about to close.
fn refuse(refused: ApiError, request: &Request) -> Response {
    let mut refused = refused.into_response();
    if has_body(request) {
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    refused
}

/// Runs an authenticated request if `caller`'s rate allows it; 429 `rate_limited` with
/// `Retry-After` if not (see `rate`).
pub(super) async fn admit(app: &App, caller: &str, request: Request, next: Next) -> Response {
    let Err(wait) = app.rate.admit(caller) else {
        return next.run(request).await;
    };
    let message = format!(
        "more than {} requests per second (burst {}) with this token; retry in {} ms",
        app.config.http.rate_per_s,
        app.config.http.rate_burst,
        wait.as_millis().max(1)
    );
    let mut refused = ApiError::new(ErrorCode::RateLimited, message).into_response();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    refused
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    if has_body(&request) {
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    refused
}

/// Reads an admitted request's whole body, within the body limit, before its handler runs. A
/// handler that has no use for a body (a snapshot, a delete, a status) would leave it unread, and
/// hyper closes a connection whose request body was not read — after the answer, without
/// `Connection: close` — so a pooled client that sent the body in a second packet met a reset
/// connection on its next request. Handlers that take a body get the same bytes, uncopied.
pub(super) async fn read_whole_body(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    if is_port_route(&request) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, app.config.max_body_bytes).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
            let mut refused = match too_large {
                true => ApiError::new(
                    ErrorCode::BodyTooLarge,
                    format!(
                        "the request body is over {} bytes",
                        app.config.max_body_bytes
                    ),
                ),
                false => ApiError::new(ErrorCode::InvalidBody, format!("reading the body: {e}")),
            }
            .into_response();
            // What is left of the body is not read: the connection cannot carry another request.
            refused.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            refused
        }
    }
}

/// Whether the request is for a session's port: its body streams to the program's server (of
/// any size, as a WebSocket's does), and the server decides what to do with it.
fn is_port_route(request: &Request) -> bool {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|matched| matched.as_str().starts_with("/v1/sessions/{id}/ports/"))
}

/// The header that carries the token where `Authorization: Bearer` cannot.
const API_KEY_HEADER: &str = "x-api-key";

/// Whether a request comes with a body still to be read.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Equal-length comparison without early exit; lengths are not secret.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
