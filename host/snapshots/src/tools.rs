//! The fleet's tool registry: which tools installed through the API every worker of a fleet
//! serves, kept in the store the workers share.
//!
//! ```text
//! tools/components/<sha256>   a component, named by its hash (written before any record names it)
//! tools/registry/<name>.json  the tool's current record: installed (component + manifest) or
//!                             removed (a tombstone, so a worker that was away removes it too)
//! ```
//!
//! A record is overwritten, last writer wins: two operators upgrading one tool through two
//! workers at once end with one of the two versions on every worker, which is what a single
//! worker does with two concurrent uploads. Records are what workers converge to, so a reader
//! treats everything it reads as untrusted: sizes are capped before a byte is read, a component
//! must hash to the name its record gives, and the name must be a tool name.

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{SnapshotError, Snapshots, hex};

/// The most a record may be: a manifest is a few lines of TOML.
const MAX_RECORD_BYTES: u64 = 256 * 1024;

/// What the fleet holds for one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    pub name: String,
    #[serde(flatten)]
    pub state: ToolState,
    /// When and by which worker the record was written (for operators reading the store).
    pub at_ms: u64,
    pub by_worker: String,
}

/// A tool installed (at a version, with a manifest), or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToolState {
    Installed {
        /// The component's SHA-256 (its name under `tools/components/`).
        component_sha256: String,
        /// The manifest's text (`None`: installed without one).
        manifest: Option<String>,
    },
    Removed,
}

/// A record as the store lists it: enough to tell whether it changed since it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolListing {
    pub name: String,
    /// The store's version of the object (its ETag, or its time and size where it has none).
    pub version: String,
}

fn record_path(name: &str) -> StorePath {
    StorePath::from(format!("tools/registry/{name}.json"))
}

fn component_path(sha256: &str) -> StorePath {
    StorePath::from(format!("tools/components/{sha256}"))
}

/// Whether `name` can be a file name under `tools/registry/` as this code writes them (the
/// runtime checks tool names fully; this only keeps a record's name from naming another path).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Snapshots {
    /// Keeps `wasm` among the fleet's components; returns its SHA-256.
    pub async fn put_tool_component(&self, wasm: Bytes) -> Result<String, SnapshotError> {
        let sha256 = hex(&Sha256::digest(&wasm));
        self.store
            .put(&component_path(&sha256), PutPayload::from(wasm))
            .await?;
        Ok(sha256)
    }

    /// The component of hash `sha256`, if it is at most `max_bytes` and hashes to its name.
    pub async fn tool_component(
        &self,
        sha256: &str,
        max_bytes: u64,
    ) -> Result<Bytes, SnapshotError> {
        let corrupt = |detail: String| SnapshotError::Corrupt {
            snapshot: format!("tools/components/{sha256}"),
            detail,
        };
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(corrupt("not a SHA-256".into()));
        }
        let got = match self.store.get(&component_path(sha256)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(SnapshotError::NotFound(format!(
                    "tools/components/{sha256}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if got.meta.size > max_bytes {
            return Err(corrupt(format!(
                "{} bytes, more than the {max_bytes} a tool may be",
                got.meta.size
            )));
        }
        let bytes = got.bytes().await?;
        if hex(&Sha256::digest(&bytes)) != sha256 {
            return Err(corrupt("its bytes do not hash to its name".into()));
        }
        Ok(bytes)
    }

    /// Writes the tool's record (after its component, if it names one).
    pub async fn put_tool_record(&self, record: &ToolRecord) -> Result<(), SnapshotError> {
        if !plain_name(&record.name) {
            return Err(SnapshotError::Store(format!(
                "`{}` is not a tool name",
                record.name
            )));
        }
        let body =
            serde_json::to_vec(record).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        self.store
            .put(&record_path(&record.name), PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// Every record in the store, with its version; one LIST, whatever the number of sessions.
    /// Objects that are not records this code writes are left out.
    pub async fn list_tool_records(&self) -> Result<Vec<ToolListing>, SnapshotError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&StorePath::from("tools/registry")))
            .try_collect()
            .await?;
        let mut listed: Vec<ToolListing> = metas
            .into_iter()
            .filter_map(|meta| {
                let rest = meta.location.as_ref().strip_prefix("tools/registry/")?;
                let name = rest.strip_suffix(".json")?;
                plain_name(name).then(|| ToolListing {
                    name: name.to_owned(),
                    version: meta.e_tag.clone().unwrap_or_else(|| {
                        format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size)
                    }),
                })
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// The record of tool `name`, if there is one.
    pub async fn tool_record(&self, name: &str) -> Result<Option<ToolRecord>, SnapshotError> {
        if !plain_name(name) {
            return Ok(None);
        }
        let got = match self.store.get(&record_path(name)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = |detail: String| SnapshotError::Corrupt {
            snapshot: format!("tools/registry/{name}.json"),
            detail,
        };
        if got.meta.size > MAX_RECORD_BYTES {
            return Err(corrupt(format!("{} bytes", got.meta.size)));
        }
        let bytes = got.bytes().await?;
        let record: ToolRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if record.name != name {
            return Err(corrupt(format!("it names another tool, `{}`", record.name)));
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_records() {
        assert!(plain_name("word_count2"));
        for bad in ["", "../x", "a/b", "A", "a.json", &"a".repeat(65)] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let record = ToolRecord {
            name: "wc".into(),
            state: ToolState::Installed {
                component_sha256: "ab".repeat(32),
                manifest: Some("read_only = true\n".into()),
            },
            at_ms: 7,
            by_worker: "w1".into(),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""op":"installed""#), "{text}");
        assert_eq!(serde_json::from_str::<ToolRecord>(&text).unwrap(), record);
        let removed = r#"{"name":"wc","op":"removed","at_ms":1,"by_worker":"w2"}"#;
        let read: ToolRecord = serde_json::from_str(removed).unwrap();
        assert_eq!(read.state, ToolState::Removed);
    }
}
