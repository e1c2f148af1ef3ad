//! Snapshots, exports and the store's garbage collection.

use serde::{Deserialize, Serialize};

/// What a snapshot holds and what taking it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotInfo {
    /// `<session>/<name>`: what `from_snapshot` takes.
    pub id: String,
    pub session: String,
    pub created_at_ms: u64,
    pub files: usize,
    pub bytes: u64,
    /// Objects this snapshot wrote: new blobs, then the manifest, then the pointer.
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub multipart_uploads: usize,
    pub objects_written: usize,
    /// Whether the session's latest pointer names this snapshot (false when a newer one from
    /// another writer got there first).
    pub latest: bool,
}

/// `GET /v1/sessions/{id}/snapshots`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotInfo>,
}

/// A stored export, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportInfo {
    /// Its key in the store (relative to the store's prefix).
    pub key: String,
    /// What `GET /v1/sessions/{id}/exports/{name}` takes.
    pub name: String,
    pub bytes: u64,
    pub created_at_ms: u64,
}

/// `GET /v1/sessions/{id}/exports`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportList {
    pub exports: Vec<ExportInfo>,
}

/// `POST /v1/sessions/{id}/export`: where the export went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportStored {
    /// Its key in the store (relative to the store's prefix).
    pub key: String,
    pub bytes: u64,
}

/// `POST /v1/snapshots/gc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Unreferenced blobs younger than this are kept (default: the worker's
    /// `snapshots.gc_grace_s`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::numbers::whole"
    )]
    #[cfg_attr(feature = "openapi", schema(maximum = 9223372036854775807_u64))]
    pub grace_s: Option<u64>,
}

/// What garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    pub manifests: usize,
    pub blobs: usize,
    pub deleted: usize,
    /// Unreferenced, but younger than the grace period: possibly a snapshot's in progress.
    pub kept_recent: usize,
    /// Snapshots in progress whose blobs were spared.
    pub in_progress: usize,
}
