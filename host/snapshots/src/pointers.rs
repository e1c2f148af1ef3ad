//! A session's latest pointer: which of its snapshots a restore of `<session>` takes.
//!
//! A pointer is an object `sessions/<session>/latest/<epoch>.<seq>-<name>`, created only if
//! absent (no update ever overwrites another, whatever the store's own atomicity), and the
//! latest is the greatest `(epoch, seq, name)`. The epoch is that of the session's owner the
//! writer holds ([`crate::Owner`]): a worker that took the session over publishes at a greater
//! epoch, so what the worker that lost it writes afterwards — however late, whatever its clock
//! — never becomes the latest. There is no check-then-write to race: the order is in the names.
//! Within one epoch (one owner), the writer takes the next sequence number after the latest it
//! sees, unless that one is newer than its own; two writers racing for one number both land,
//! and the newer name breaks the tie.
//!
//! Pointers of before epochs (`<seq>-<name>`) read as epoch 0.

use futures_util::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};

use crate::{SnapshotError, Snapshots};

/// Pointers kept below the newest of its epoch (older ones are history; a few stay for
/// whoever is reading them now).
const POINTERS_KEPT: u64 = 4;

/// One pointer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pointer {
    pub epoch: u64,
    pub seq: u64,
    pub name: String,
}

impl Pointer {
    /// Reads a pointer's object name: `<epoch>.<seq>-<name>`, or `<seq>-<name>` (epoch 0).
    fn parse(filename: &str) -> Option<Self> {
        let (head, name) = filename.split_once('-')?;
        let (epoch, seq) = match head.split_once('.') {
            Some((epoch, seq)) => (epoch.parse().ok()?, seq.parse().ok()?),
            None => (0, head.parse().ok()?),
        };
        Some(Self {
            epoch,
            seq,
            name: name.to_owned(),
        })
    }

    fn path(&self, session: &str) -> StorePath {
        StorePath::from(format!(
            "sessions/{session}/latest/{:020}.{:020}-{}",
            self.epoch, self.seq, self.name
        ))
    }
}

impl Snapshots {
    /// Points the session's latest at `name`, written at `epoch`. Returns whether `name` is the
    /// latest afterwards: never when a pointer of a greater epoch exists (the session has a
    /// newer owner), whatever the names.
    pub(crate) async fn advance_latest(
        &self,
        session: &str,
        name: &str,
        epoch: u64,
    ) -> Result<bool, SnapshotError> {
        let seq = match self.latest_pointer(session).await? {
            Some(latest) if latest.epoch > epoch => return Ok(false),
            // Writers of one epoch racing (one owner's snapshots overlapping, or workers sharing
            // a store without ownership, all at epoch 0): the newer snapshot wins.
            Some(latest) if latest.epoch == epoch && latest.name.as_str() > name => {
                return Ok(false);
            }
            Some(latest) if latest.epoch == epoch => latest.seq + 1,
            _ => 0,
        };
        let pointer = Pointer {
            epoch,
            seq,
            name: name.to_owned(),
        };
        let put = self
            .store
            .put_opts(
                &pointer.path(session),
                bytes::Bytes::from(name.to_owned()).into(),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            // Only a retried request of our own can find our unique key taken.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let pointers = self.pointers(session).await?;
        let newest = pointers.last().map(|(p, _)| (p.epoch, p.seq));
        for (pointer, location) in &pointers {
            let stale = newest.is_some_and(|(epoch, seq)| {
                pointer.epoch < epoch || pointer.seq + POINTERS_KEPT <= seq
            });
            if stale {
                match self.store.delete(location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(pointers
            .last()
            .is_some_and(|(latest, _)| latest.name == name))
    }

    /// Every pointer of `session`, in order: the last is the latest.
    async fn pointers(&self, session: &str) -> Result<Vec<(Pointer, StorePath)>, SnapshotError> {
        let prefix = StorePath::from(format!("sessions/{session}/latest"));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut pointers: Vec<_> = metas
            .into_iter()
            .filter_map(|meta| {
                let pointer = Pointer::parse(meta.location.filename()?)?;
                Some((pointer, meta.location))
            })
            .collect();
        pointers.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(pointers)
    }

    /// The latest pointer of `session`.
    pub(crate) async fn latest_pointer(
        &self,
        session: &str,
    ) -> Result<Option<Pointer>, SnapshotError> {
        Ok(self
            .pointers(session)
            .await?
            .pop()
            .map(|(pointer, _)| pointer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greatest_epoch_wins_whatever_the_names_and_sequences() {
        let parse = |text: &str| Pointer::parse(text).unwrap();
        let old_format = parse("00000000000000000009-1799999999999-ffffffff");
        assert_eq!((old_format.epoch, old_format.seq), (0, 9));
        let mut pointers = [
            parse("00000000000000000001.00000000000000000007-1799999999999-zzzzzzzz"),
            parse("00000000000000000002.00000000000000000000-1700000000000-aaaaaaaa"),
            old_format,
        ];
        pointers.sort();
        assert_eq!(pointers.last().unwrap().name, "1700000000000-aaaaaaaa");
        assert!(Pointer::parse("garbage").is_none());
        assert!(Pointer::parse("x.1-name").is_none());
    }
}
