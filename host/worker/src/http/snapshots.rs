//! Snapshots and exports over HTTP: take and list snapshots, export a session as a `.tar.zst`
//! (streamed to the client or into the store), list and fetch stored exports, collect garbage.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use hearth_snapshots::SnapshotError;

use super::error::ApiError;
use crate::App;
use crate::sessions::Session;
use crate::snapshots::sources;

pub async fn take(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let session = app.sessions.get(&super::extract::path_params(id)?)?;
    let info = app.snapshots.take(&session).await?;
    Ok((StatusCode::CREATED, Json(json!(info))))
}

pub async fn list(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&super::extract::path_params(id)?)?;
    let snapshots = app.snapshots.snapshots.list(&session.id).await?;
    Ok(Json(json!({ "snapshots": snapshots })))
}

/// Chunks of an export in flight: 16 × 256 KiB at most, whatever the session's size.
const EXPORT_CHUNKS: usize = 16;
const EXPORT_CHUNK_BYTES: usize = 256 * 1024;
/// What an export holds back before its answer commits to a stream: an error before then
/// (a tree too deep, say) is still a proper error answer.
const EXPORT_HOLD_BACK: usize = 1024 * 1024;
/// How long one chunk of an export waits for its consumer before the export gives up and frees
/// the session: a client must take at least 256 KiB every 10 s (~25 KiB/s), so a trickle
/// cannot hold a session's lock for hours.
const EXPORT_PATIENCE: Duration = Duration::from_secs(10);

/// The whole session (workspace and git history) as one `.tar.zst`, streamed: the archive is
/// made on a blocking thread while the session is held shared, into a bounded stream. Returns
/// the stream once its first bytes are out (or the export is done), or the error that ended
/// the export before then.
async fn archive(
    session: &Arc<Session>,
    max_depth: usize,
) -> Result<
    (
        tokio::sync::mpsc::Receiver<Bytes>,
        tokio::task::JoinHandle<Result<(), String>>,
    ),
    ApiError,
> {
    let guard = session.lock(false).await?;
    let git = session.git_lock_owned().await;
    let session = session.clone();
    let (chunks, receiver) = crate::stream::Chunks::channel(EXPORT_CHUNKS);
    let (committed, first) = tokio::sync::oneshot::channel();
    let producer = tokio::task::spawn_blocking(move || {
        let (_guard, _git) = (guard, git);
        let mut out = crate::stream::ChunkWriter::new(
            chunks,
            EXPORT_CHUNK_BYTES,
            EXPORT_HOLD_BACK,
            EXPORT_PATIENCE,
            committed,
        );
        let made = hearth_snapshots::export_archive(&sources(&session), max_depth, &mut out);
        if let Err(SnapshotError::TooDeep { limit }) = &made {
            // Said before any byte went out (see EXPORT_HOLD_BACK), as the 422 it is.
            return out.finish(Err(format!("too_deep:{limit}")));
        }
        out.finish(made.map_err(|e| e.to_string()))
    });
    match first.await {
        Ok(Ok(())) => Ok((receiver, producer)),
        Ok(Err(why)) => Err(
            match why.strip_prefix("too_deep:").and_then(|l| l.parse().ok()) {
                Some(limit) => SnapshotError::TooDeep { limit }.into(),
                None => ApiError::internal(why),
            },
        ),
        // The producer ended without a word: a panic.
        Err(_) => Err(ApiError::internal("the export ended unexpectedly")),
    }
}

pub async fn export_download(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let session = app.sessions.get(&super::extract::path_params(id)?)?;
    let (mut receiver, producer) =
        archive(&session, app.snapshots.snapshots.tuning().max_depth).await?;
    // A failure after the first bytes ends the stream early (the archive lacks zstd's end, so
    // a client sees it is cut); it is in the worker's log.
    let session_id = session.id.clone();
    tokio::spawn(async move {
        if let Ok(Err(why)) = producer.await {
            tracing::warn!(session = %session_id, error = %why, "an export stream ended early");
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::convert::Infallible>))
    });
    let disposition = format!("attachment; filename=\"{}.tar.zst\"", session.id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn export_to_store(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let session = app.sessions.get(&super::extract::path_params(id)?)?;
    let (receiver, producer) =
        archive(&session, app.snapshots.snapshots.tuning().max_depth).await?;
    let stored = app
        .snapshots
        .snapshots
        .put_export(&session.id, receiver)
        .await;
    let made = producer.await.map_err(ApiError::internal)?;
    let (key, size) = stored?;
    if let Err(why) = made {
        // A cut archive must not stay behind looking like an export.
        let _ = app.snapshots.snapshots.delete_export(&key).await;
        return Err(ApiError::internal(why));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "bytes": size })),
    ))
}

/// The exports stored for a session (`POST .../export`), oldest first.
pub async fn list_exports(
    State(app): State<Arc<App>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&super::extract::path_params(id)?)?;
    let exports = app.snapshots.snapshots.list_exports(&session.id).await?;
    Ok(Json(json!({ "exports": exports })))
}

/// A stored export, streamed from the store as it comes (no more of it in memory than a chunk).
pub async fn download_export(
    State(app): State<Arc<App>>,
    params: Result<UrlPath<(String, String)>, PathRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (id, name) = super::extract::path_params(params)?;
    let session = app.sessions.get(&id)?;
    let Some((size, stream)) = app
        .snapshots
        .snapshots
        .get_export(&session.id, &name)
        .await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "export_not_found",
            format!(
                "session `{}` has no export `{name}`; GET .../exports lists them",
                session.id
            ),
        ));
    };
    let headers = [
        (
            axum::http::header::CONTENT_TYPE,
            "application/zstd".to_owned(),
        ),
        (axum::http::header::CONTENT_LENGTH, size.to_string()),
        (
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-{name}\"", session.id),
        ),
    ];
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    grace_s: Option<u64>,
}

/// Collects blobs no snapshot references (older than the grace period).
pub async fn collect_garbage(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: GcRequest = super::extract::json_body(body)?;
    let grace = Duration::from_secs(request.grace_s.unwrap_or(app.snapshots.config.gc_grace_s));
    let report = app.snapshots.snapshots.collect_garbage(grace).await?;
    Ok(Json(json!(report)))
}
