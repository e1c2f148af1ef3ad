//! Raw files in and out, and deepagents' bulk upload and download.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::MAX_BULK_FILES;
use super::error::ApiError;
use super::extract::{blocking, body_bytes, json_body, path_params};
use crate::App;
use crate::files::{self, FileError};

/// `files/{*path}` carries a view path without its leading `/`.
fn view_path(path: &str) -> String {
    format!("/{path}")
}

pub(super) async fn get_file(
    State(app): State<Arc<App>>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (id, path) = path_params(params)?;
    let session = app.sessions.get(&id)?;
    let guard = session.lock(false).await?;
    let max = app.config.max_file_bytes;
    let path = view_path(&path);
    let bytes = blocking(move || {
        let _guard = guard;
        files::read(&session.view, &path, max)
    })
    .await?
    .map_err(file_error)?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(bytes),
    )
        .into_response())
}

pub(super) async fn put_file(
    State(app): State<Arc<App>>,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, path) = path_params(params)?;
    let session = app.sessions.get(&id)?;
    let bytes = body_bytes(body)?;
    let guard = session.lock(true).await?;
    let path = view_path(&path);
    let size = bytes.len();
    let answer_path = path.clone();
    let session2 = session.clone();
    let created = blocking(move || {
        let _guard = guard;
        files::write(&session2.view, &path, &bytes)
    })
    .await?
    .map_err(|e| file_error(e).or_quota(&session))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "path": answer_path, "size": size, "created": created })),
    ))
}

fn file_error(e: FileError) -> ApiError {
    use crate::files::FileErrorKind as K;
    let status = match e.kind {
        K::NotFound => StatusCode::NOT_FOUND,
        K::PermissionDenied => StatusCode::FORBIDDEN,
        K::IsDirectory => StatusCode::UNPROCESSABLE_ENTITY,
        K::InvalidPath => StatusCode::BAD_REQUEST,
        K::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        K::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        K::Io => return ApiError::internal(e),
    };
    ApiError::new(status, e.kind.code(), e.message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadRequest {
    files: Vec<UploadFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadFile {
    path: String,
    /// Base64.
    content: String,
}

/// deepagents' `upload_files`: every file gets its own outcome, in order; one bad file does not
/// fail the others.
pub(super) async fn upload(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    let request: UploadRequest = json_body(body)?;
    check_bulk_len(request.files.len())?;
    let guard = session.lock(true).await?;
    let results = blocking(move || {
        let _guard = guard;
        request
            .files
            .iter()
            .map(|file| {
                let outcome = base64::engine::general_purpose::STANDARD
                    .decode(&file.content)
                    .map_err(|e| format!("invalid_base64: {e}"))
                    .and_then(|bytes| {
                        files::write(&session.view, &file.path, &bytes)
                            .map_err(|e| file_error(e).or_quota(&session).code.to_owned())
                    });
                json!({ "path": file.path, "error": outcome.err() })
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "files": results })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DownloadRequest {
    paths: Vec<String>,
}

/// deepagents' `download_files`: base64 contents or an error per path, in order.
pub(super) async fn download(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&path_params(id)?)?;
    let request: DownloadRequest = json_body(body)?;
    check_bulk_len(request.paths.len())?;
    let guard = session.lock(false).await?;
    let max = app.config.max_file_bytes;
    let budget = app.config.max_body_bytes as u64;
    let results = blocking(move || {
        let _guard = guard;
        let mut total = 0u64;
        request
            .paths
            .iter()
            .map(|path| {
                match files::read(&session.view, path, max.min(budget.saturating_sub(total))) {
                    Ok(bytes) => {
                        total += bytes.len() as u64;
                        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
                        json!({ "path": path, "content": content, "error": null })
                    }
                    Err(e) => json!({ "path": path, "content": null, "error": e.kind.code() }),
                }
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "files": results })))
}

fn check_bulk_len(n: usize) -> Result<(), ApiError> {
    if n > MAX_BULK_FILES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_files",
            format!("{n} files in one request; the limit is {MAX_BULK_FILES}"),
        ));
    }
    Ok(())
}
