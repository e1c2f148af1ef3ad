//! Snapshots and exports over HTTP: take and list snapshots, export a session as a `.tar.zst`
//! (streamed to the client or into the store), list and fetch stored exports, collect garbage.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_snapshots::SnapshotError;
use hearth_wire::ErrorCode;
use hearth_wire::snapshots::{
    ExportList, ExportStored, GcReport, GcRequest, SnapshotInfo, SnapshotList,
};

use super::docs::{Binary, ExportName, SessionId};
use super::error::ApiError;
use super::extract::{JsonBody, PathParams, SessionParam};
use crate::app::App;
use crate::sessions::Session;
use crate::snapshots::sources;

/// What taking a snapshot or making an export may also answer.
const CAPTURE_ERRORS: [ErrorCode; 5] = [
    ErrorCode::TooDeep,
    ErrorCode::SnapshotTooLarge,
    ErrorCode::CaptureFailed,
    ErrorCode::StoreUnavailable,
    // A program kept changing a file while it was stored.
    ErrorCode::SessionBusy,
];

/// Take a snapshot of the workspace and the git history.
///
/// Answers once it is durable (blobs, then the manifest, then the latest pointer).
/// Incremental: only content the previous snapshot lacks is uploaded.
#[utoipa::path(post, path = "/v1/sessions/{id}/snapshots", tag = "snapshots", params(SessionId),
    responses((status = 201, description = "The snapshot.", body = SnapshotInfo)),
    extensions(("x-errors" = json!(CAPTURE_ERRORS))))]
pub(super) async fn take_snapshot(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<(StatusCode, Json<SnapshotInfo>), ApiError> {
    let info = app.snapshots.take(&app.sessions, &session).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The session's snapshots in the store, oldest first (the last `snapshots.keep` are kept).
#[utoipa::path(get, path = "/v1/sessions/{id}/snapshots", tag = "snapshots", params(SessionId),
    responses((status = 200, description = "The snapshots.", body = SnapshotList)),
    extensions(("x-errors" = json!([ErrorCode::StoreUnavailable, ErrorCode::SnapshotCorrupt]))))]
pub(super) async fn list_snapshots(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<Json<SnapshotList>, ApiError> {
    let snapshots = app.snapshots.snapshots.list(&session.id).await?;
    Ok(Json(SnapshotList { snapshots }))
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

/// The whole session — workspace and git directory — as one `.tar.zst`, streamed.
///
/// Symlinks are kept as links. A failure after the first bytes cuts the stream (the archive
/// then lacks zstd's end).
#[utoipa::path(get, path = "/v1/sessions/{id}/export", tag = "snapshots", params(SessionId),
    responses((status = 200, description = "The archive.", content_type = "application/zstd",
        body = Binary)),
    extensions(("x-errors" = json!([ErrorCode::TooDeep]))))]
pub(super) async fn export_download(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<Response, ApiError> {
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

/// Put the same archive in the store, under `exports/<session>/`.
#[utoipa::path(post, path = "/v1/sessions/{id}/export", tag = "snapshots", params(SessionId),
    responses((status = 201, description = "Where the export is.", body = ExportStored)),
    extensions(("x-errors" = json!([ErrorCode::TooDeep, ErrorCode::StoreUnavailable]))))]
pub(super) async fn export_to_store(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<(StatusCode, Json<ExportStored>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(ExportStored { key, bytes: size })))
}

/// The exports of this session stored by `POST …/export`, oldest first.
#[utoipa::path(get, path = "/v1/sessions/{id}/exports", tag = "snapshots", params(SessionId),
    responses((status = 200, description = "The stored exports.", body = ExportList)),
    extensions(("x-errors" = json!([ErrorCode::StoreUnavailable]))))]
pub(super) async fn list_exports(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
) -> Result<Json<ExportList>, ApiError> {
    let exports = app.snapshots.snapshots.list_exports(&session.id).await?;
    Ok(Json(ExportList { exports }))
}

/// A stored export (`.tar.zst`), streamed from the store.
///
/// As it comes: no more of it in memory than a chunk.
#[utoipa::path(get, path = "/v1/sessions/{id}/exports/{name}", tag = "snapshots",
    params(SessionId, ExportName),
    responses((status = 200, description = "The archive.", content_type = "application/zstd",
        body = Binary)),
    extensions(("x-errors" = json!([ErrorCode::ExportNotFound, ErrorCode::StoreUnavailable]))))]
pub(super) async fn download_export(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    PathParams((_, name)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let Some((size, stream)) = app
        .snapshots
        .snapshots
        .get_export(&session.id, &name)
        .await?
    else {
        return Err(ApiError::new(
            ErrorCode::ExportNotFound,
            format!(
                "session `{}` has no export `{name}`; GET .../exports lists them",
                session.id
            ),
        ));
    };
    let headers = [
        (header::CONTENT_TYPE, "application/zstd".to_owned()),
        (header::CONTENT_LENGTH, size.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-{name}\"", session.id),
        ),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Delete the blobs no snapshot of any session references and that are older than the grace
/// period.
///
/// `grace_s` defaults to the worker's `snapshots.gc_grace_s`. A snapshot in progress uploads
/// its blobs before its manifest, and fresh blobs are left alone.
#[utoipa::path(post, path = "/v1/snapshots/gc", tag = "snapshots", request_body = GcRequest,
    responses((status = 200, description = "What was collected.", body = GcReport)),
    extensions(("x-errors" = json!([ErrorCode::StoreUnavailable, ErrorCode::SnapshotCorrupt]))))]
pub(super) async fn collect_garbage(
    State(app): State<Arc<App>>,
    JsonBody(request): JsonBody<GcRequest>,
) -> Result<Json<GcReport>, ApiError> {
    let grace = Duration::from_secs(request.grace_s.unwrap_or(app.snapshots.config.gc_grace_s));
    let report = app.snapshots.snapshots.collect_garbage(grace).await?;
    Ok(Json(report))
}
