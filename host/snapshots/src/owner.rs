//! Who owns a session: ownership records in the store, each taken with a create-if-absent.
//!
//! `sessions/<session>/owner/<epoch>` names the worker that owns the session from that epoch
//! on; the owner is the record of the greatest epoch. A new record is only ever created one
//! past the greatest its writer saw ([`Snapshots::claim_after`]): of two workers racing for a
//! session, exactly one creates it (the store refuses the second), and the loser sees the
//! winner. Create-if-absent is all it needs, so it works on every store (a local directory
//! has no if-match). Records are never deleted: there are as many as takeovers, and a gap
//! would let a stale claimer create an old epoch again.
//!
//! The epoch fences what a worker publishes (see `pointers`): a worker holds the epoch it
//! claimed, and once another claims a greater one, nothing it writes can become the latest.
//!
//! A record also carries the session's `terms` (what any owner needs to serve it: its token's
//! hash, its quota, its network), copied from record to record, and may say the session
//! `ended` (deleted or expired): a tombstone no takeover brings back to life.

use futures_util::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use crate::{SnapshotError, Snapshots, now_ms};

/// How many times an unconditional claim that lost a race tries again.
const CLAIM_TRIES: usize = 8;

/// A session's owner: from `epoch` on, `worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub epoch: u64,
    pub worker: String,
    pub claimed_at_ms: u64,
    /// What every owner needs to serve the session (opaque here; the worker's to define).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub terms: serde_json::Value,
    /// That the session ended, when it did: nobody serves it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// `deleted` or `expired`.
    pub reason: String,
    /// The last snapshot it left, if any (an expired session's brings it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// What a new ownership record says, beside its epoch.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The session's terms; `None` carries the previous record's.
    pub terms: Option<serde_json::Value>,
    /// Ends the session (a tombstone).
    pub ended: Option<Ended>,
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

    /// Makes `worker` the session's owner at the next epoch, whoever owned it; returns it. The
    /// previous owner's writes stop counting from here (see the module's doc).
    pub async fn claim(
        &self,
        session: &str,
        worker: &str,
        terms: Option<serde_json::Value>,
    ) -> Result<Owner, SnapshotError> {
        for _ in 0..CLAIM_TRIES {
            let seen = self.owner(session).await?;
            let claim = Claim {
                terms: terms.clone(),
                ended: None,
            };
            if let Some(owner) = self
                .claim_after(session, seen.as_ref(), worker, claim)
                .await?
            {
                return Ok(owner);
            }
        }
        Err(SnapshotError::Store(format!(
            "the session {session} kept being claimed by other workers"
        )))
    }

    /// Makes `worker` the owner at the epoch after `seen` (no record at all: epoch 1), if
    /// `seen` is still the latest record; `None` when another record came first. This is the
    /// one conditional step of every change of hands: a takeover after a dead owner, a worker
    /// changing its own session's terms, a tombstone.
    pub async fn claim_after(
        &self,
        session: &str,
        seen: Option<&Owner>,
        worker: &str,
        claim: Claim,
    ) -> Result<Option<Owner>, SnapshotError> {
        let seen_epoch = seen.map(|owner| owner.epoch);
        if self.owner_epochs(session).await?.last().copied() != seen_epoch {
            return Ok(None);
        }
        let owner = Owner {
            epoch: seen_epoch.map_or(1, |e| e + 1),
            worker: worker.to_owned(),
            claimed_at_ms: now_ms(),
            terms: claim
                .terms
                .or_else(|| seen.map(|owner| owner.terms.clone()))
                .unwrap_or_default(),
            ended: claim.ended,
        };
        let record =
            serde_json::to_vec(&owner).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        let put = self
            .store
            .put_opts(
                &record_path(session, owner.epoch),
                bytes::Bytes::from(record).into(),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => Ok(Some(owner)),
            // Another worker created this epoch first.
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
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
