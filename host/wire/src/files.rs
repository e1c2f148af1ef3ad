//! Files in and out: one raw file, and deepagents' bulk upload and download.

use serde::{Deserialize, Serialize};

/// `PUT /v1/sessions/{id}/files/{path}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileWritten {
    /// The view path written.
    pub path: String,
    pub size: usize,
    /// Whether the file is new (201) or was replaced (200).
    pub created: bool,
}

/// `POST /v1/sessions/{id}/upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// At most 1,000 files.
    pub files: Vec<UploadFile>,
}

/// A file to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadFile {
    /// A view path (absolute, or relative to `/workspace`).
    pub path: String,
    /// The bytes, in standard base64.
    pub content: String,
}

/// `POST /v1/sessions/{id}/upload`: one outcome per file, in order; one bad file does not fail
/// the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uploaded {
    pub files: Vec<UploadOutcome>,
}

/// What happened to one uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadOutcome {
    pub path: String,
    /// Null, or why the file was not written: an error code (`permission_denied`,
    /// `is_directory`, `invalid_path`, `too_large`, `quota_exceeded`, …) or
    /// `invalid_base64: <why>`.
    pub error: Option<String>,
}

/// `POST /v1/sessions/{id}/download`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// At most 1,000 view paths.
    pub paths: Vec<String>,
}

/// `POST /v1/sessions/{id}/download`: one outcome per path, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Downloaded {
    pub files: Vec<DownloadOutcome>,
}

/// One downloaded file, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadOutcome {
    pub path: String,
    /// The bytes, in standard base64 (null when `error` is not).
    pub content: Option<String>,
    /// Null, or an error code (`file_not_found`, `permission_denied`, `is_directory`,
    /// `invalid_path`, `too_large`).
    pub error: Option<String>,
}
