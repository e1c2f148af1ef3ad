//! Raw files in and out, and deepagents' bulk upload and download.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hearth_wire::ErrorCode;
use hearth_wire::files::{
    DownloadOutcome, DownloadRequest, Downloaded, FileWritten, UploadOutcome, UploadRequest,
    Uploaded,
};

use super::MAX_BULK_FILES;
use super::docs::{Binary, FilePath, SessionId};
use super::error::ApiError;
use super::extract::{Access, JsonBody, PathParams, RawBody, SessionParam, with_session};
use crate::app::App;
use crate::files::{self, FileError};

/// `files/{*path}` carries a view path without its leading `/`.
fn view_path(path: &str) -> String {
    format!("/{path}")
}

/// Download one file's raw bytes.
#[utoipa::path(get, path = "/v1/sessions/{id}/files/{*path}", tag = "files",
    params(SessionId, FilePath),
    responses((status = 200, description = "The file's bytes.",
        content_type = "application/octet-stream", body = Binary)),
    extensions(("x-errors" = json!([
        ErrorCode::FileNotFound, ErrorCode::PermissionDenied, ErrorCode::IsDirectory,
        ErrorCode::TooLarge
    ]))))]
pub(super) async fn get_file(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    PathParams((_, path)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let max = app.config.max_file_bytes;
    let path = view_path(&path);
    let bytes = with_session(&session, Access::Shared, move |session| {
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

/// Upload one file's raw bytes.
///
/// Creates parent directories and replaces the file atomically.
#[utoipa::path(put, path = "/v1/sessions/{id}/files/{*path}", tag = "files",
    params(SessionId, FilePath),
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "A new file.", body = FileWritten),
        (status = 200, description = "The file was replaced.", body = FileWritten)),
    extensions(("x-errors" = json!([
        ErrorCode::PermissionDenied, ErrorCode::IsDirectory, ErrorCode::TooLarge,
        ErrorCode::InvalidBody, ErrorCode::StorageFull, ErrorCode::QuotaExceeded
    ]))))]
pub(super) async fn put_file(
    SessionParam(session): SessionParam,
    PathParams((_, path)): PathParams<(String, String)>,
    RawBody(bytes): RawBody,
) -> Result<(StatusCode, Json<FileWritten>), ApiError> {
    let path = view_path(&path);
    let size = bytes.len();
    let answer_path = path.clone();
    let created = with_session(&session, Access::Exclusive, move |session| {
        files::write(&session.view, &path, &bytes)
    })
    .await?
    .map_err(|e| file_error(e).or_quota(&session))?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    let answer = FileWritten {
        path: answer_path,
        size,
        created,
    };
    Ok((status, Json(answer)))
}

fn file_error(e: FileError) -> ApiError {
    use crate::files::FileErrorKind as K;
    let code = match e.kind {
        K::NotFound => ErrorCode::FileNotFound,
        K::PermissionDenied => ErrorCode::PermissionDenied,
        K::IsDirectory => ErrorCode::IsDirectory,
        K::InvalidPath => ErrorCode::InvalidPath,
        K::TooLarge => ErrorCode::TooLarge,
        K::StorageFull => ErrorCode::StorageFull,
        K::Io => return ApiError::internal(e),
    };
    ApiError::new(code, e.message)
}

/// deepagents' `upload_files`: many files, base64, one outcome each, in order.
///
/// One bad file does not fail the others.
#[utoipa::path(post, path = "/v1/sessions/{id}/upload", tag = "files", params(SessionId),
    request_body = UploadRequest,
    responses((status = 200, description = "An outcome per file.", body = Uploaded)),
    extensions(("x-errors" = json!([ErrorCode::TooManyFiles, ErrorCode::StorageFull]))))]
pub(super) async fn upload(
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<UploadRequest>,
) -> Result<Json<Uploaded>, ApiError> {
    check_bulk_len(request.files.len())?;
    let files = with_session(&session, Access::Exclusive, move |session| {
        request
            .files
            .into_iter()
            .map(|file| {
                let outcome = base64::engine::general_purpose::STANDARD
                    .decode(&file.content)
                    .map_err(|e| format!("invalid_base64: {e}"))
                    .and_then(|bytes| {
                        files::write(&session.view, &file.path, &bytes)
                            .map_err(|e| file_error(e).or_quota(session).code.to_string())
                    });
                UploadOutcome {
                    path: file.path,
                    error: outcome.err(),
                }
            })
            .collect()
    })
    .await?;
    Ok(Json(Uploaded { files }))
}

/// deepagents' `download_files`: many files, base64, one outcome each, in order.
///
/// The files of one answer together stay within the worker's `max_body_bytes`; past it, a file
/// answers `too_large`.
#[utoipa::path(post, path = "/v1/sessions/{id}/download", tag = "files", params(SessionId),
    request_body = DownloadRequest,
    responses((status = 200, description = "An outcome per path.", body = Downloaded)),
    extensions(("x-errors" = json!([ErrorCode::TooManyFiles]))))]
pub(super) async fn download(
    State(app): State<Arc<App>>,
    SessionParam(session): SessionParam,
    JsonBody(request): JsonBody<DownloadRequest>,
) -> Result<Json<Downloaded>, ApiError> {
    check_bulk_len(request.paths.len())?;
    let max = app.config.max_file_bytes;
    let budget = app.config.max_body_bytes as u64;
    let files = with_session(&session, Access::Shared, move |session| {
        let mut total = 0u64;
        request
            .paths
            .into_iter()
            .map(|path| {
                let room = max.min(budget.saturating_sub(total));
                match files::read(&session.view, &path, room) {
                    Ok(bytes) => {
                        total += bytes.len() as u64;
                        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
                        DownloadOutcome {
                            path,
                            content: Some(content),
                            error: None,
                        }
                    }
                    Err(e) => DownloadOutcome {
                        path,
                        content: None,
                        error: Some(e.kind.code().to_owned()),
                    },
                }
            })
            .collect()
    })
    .await?;
    Ok(Json(Downloaded { files }))
}

fn check_bulk_len(n: usize) -> Result<(), ApiError> {
    if n > MAX_BULK_FILES {
        return Err(ApiError::new(
            ErrorCode::TooManyFiles,
            format!("{n} files in one request; the limit is {MAX_BULK_FILES}"),
        ));
    }
    Ok(())
}
