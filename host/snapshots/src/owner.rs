//! Who owns a session: ownership records in the store, each taken with a create-if-absent.
//!
//! `sessions/<session>/owner/<epoch>` names the worker that owns the session from that epoch
//! on; the owner is the record of the greatest epoch. Taking a session ([`Snapshots::claim`])
//! creates the record one past the greatest seen: of two workers racing for it, exactly one
//! creates it (the store refuses the second), and the loser sees the winner. Create-if-absent
//! is all it needs, so it works on every store (a local directory has no if-match).
//!
//! The epoch fences what a worker publishes (see `pointers`): a worker holds the epoch it
//! claimed, and once another claims a greater one, nothing it writes can become the latest.

use futures_util::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use crate::{SnapshotError, Snapshots, now_ms};

/// How many times a claim that lost a race tries the next epoch.
const CLAIM_TRIES: usize = 8;
/// Ownership records kept below the current one (history for an operator).
const RECORDS_KEPT: usize = 3;

/// A session's owner: from `epoch` on, `worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub epoch: u64,
    pub worker: String,
    pub claimed_at_ms: u64,
}

fn record_path(session: &str, epoch: u64) -> StorePath {
    StorePath::from(format!("sessions/{session}/owner/{epoch:020}"))
}

impl Snapshots {
    /// The session's owner, if any worker claimed it.
    pub async fn owner(&self, session: &str) -> Result<Option<Owner>, SnapshotError> {
        let Some(epoch) = self.owner_epochs(session).await?.pop() else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(&record_path(session, epoch))
            .await?
            .bytes()
            .await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SnapshotError::Store(format!("an ownership record of {session}: {e}")))
    }

    /// Makes `worker` the session's owner at the next epoch; returns it. The previous owner's
    /// writes stop counting from here (see the module's doc).
    pub async fn claim(&self, session: &str, worker: &str) -> Result<Owner, SnapshotError> {
        for _ in 0..CLAIM_TRIES {
            let epochs = self.owner_epochs(session).await?;
            let owner = Owner {
                epoch: epochs.last().map_or(1, |e| e + 1),
                worker: worker.to_owned(),
                claimed_at_ms: now_ms(),
            };
            let record = serde_json::to_vec(&owner)
                .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
            let put = self
                .store
                .put_opts(
                    &record_path(session, owner.epoch),
                    bytes::Bytes::from(record).into(),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_) => {
                    for old in epochs.iter().rev().skip(RECORDS_KEPT) {
                        match self.store.delete(&record_path(session, *old)).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    return Ok(owner);
                }
                // Another worker claimed this epoch first: try past it.
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SnapshotError::Store(format!(
            "the session {session} kept being claimed by other workers"
        )))
    }

    /// The epochs of the session's ownership records, in order.
    async fn owner_epochs(&self, session: &str) -> Result<Vec<u64>, SnapshotError> {
        let prefix = StorePath::from(format!("sessions/{session}/owner"));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut epochs: Vec<u64> = metas
            .iter()
            .filter_map(|meta| meta.location.filename()?.parse().ok())
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }
}
