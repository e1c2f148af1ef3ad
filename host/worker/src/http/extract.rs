//! Reading a request: its JSON body, path and query, each rejection answered as our own error;
//! the session a route names; and the one way handlers run blocking work on a session (its
//! lock taken first, the work on a blocking thread).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use hearth_wire::ErrorCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::App;
use crate::sessions::Session;

/// A JSON body read as `T`: always an object. No body is `{}` (no arguments); a body of only
/// whitespace is not JSON, and says so; an array is not an object (serde would read a struct
/// from one).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(Bytes::from_request(request, state).await)?;
        parse_json(bytes, true).map(JsonBody)
    }
}

/// Any JSON value, for a body whose shape is checked elsewhere (a tool's arguments, against the
/// tool's own schema). No body is `{}`, as for [`JsonBody`].
pub struct AnyJson(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for AnyJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(Bytes::from_request(request, state).await)?;
        parse_json(bytes, false).map(AnyJson)
    }
}

fn parse_json<T: DeserializeOwned>(bytes: Bytes, object_only: bool) -> Result<T, ApiError> {
    let bytes = if bytes.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if object_only
        && first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "request body: a JSON object is expected",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            ErrorCode::InvalidJson
        } else {
            ErrorCode::InvalidRequest
        };
        ApiError::new(code, format!("request body: {e}"))
    })
}

/// A raw body (a file's bytes).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        body_bytes(Bytes::from_request(request, state).await).map(RawBody)
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let code = match rejection.status().as_u16() {
            413 => ErrorCode::BodyTooLarge,
            _ => ErrorCode::InvalidBody,
        };
        ApiError::new(code, rejection.body_text())
    })
}

/// Path parameters read as `T`.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParams(p))
            .map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.body_text()))
    }
}

/// A query string read as `T`.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))
    }
}

/// The session the route's `{id}` names.
pub struct SessionParam(pub Arc<Session>);

impl FromRequestParts<Arc<App>> for SessionParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let PathParams(params) =
            PathParams::<HashMap<String, String>>::from_request_parts(parts, app).await?;
        let id = params
            .get("id")
            .ok_or_else(|| ApiError::internal("a session route without `{id}`"))?;
        Ok(SessionParam(app.sessions.get(id)?))
    }
}

/// How a request holds its session while it works: with other readers, or alone (a writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Shared,
    Exclusive,
}

/// Runs `work` on a blocking thread while holding `session` as `access` says. The lock is
/// waited for without a thread; it is released when `work` returns.
pub async fn with_session<T: Send + 'static>(
    session: &Arc<Session>,
    access: Access,
    work: impl FnOnce(&Session) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let guard = session.lock(access == Access::Exclusive).await?;
    let session = session.clone();
    blocking(move || {
        let _guard = guard;
        work(&session)
    })
    .await
}

/// Runs `work` off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}
