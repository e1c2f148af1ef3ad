//! What repository operations answer. The types are the HTTP API's own (`hearth-wire`), because
//! the worker passes these answers on as they are; every operation runs in the `hearth-git`
//! helper and its answer reaches the worker as JSON (see `isolated`). This module only makes
//! them from git2's values.

use git2::{Commit, Signature};

use crate::GitError;

pub use hearth_wire::git::{
    Author, ChangeKind, CommitInfo, CommitOutcome, Diff, DiffFile, FileChange, LogPage,
    MergeOutcome, PushOutcome, RemoteInfo, RepoState, Status,
};

/// `author` as a signature dated now, once it is one git can write: a name or email with `<`,
/// `>` or a line break would forge the commit's header.
pub(super) fn signature(author: &Author) -> Result<Signature<'static>, GitError> {
    let bad = |s: &str| s.trim().is_empty() || s.contains(['<', '>', '\n', '\r', '\0']);
    if bad(&author.name) || bad(&author.email) {
        return Err(GitError::InvalidInput(
            "an author needs a non-empty `name` and `email` without `<`, `>` or line breaks".into(),
        ));
    }
    Ok(Signature::now(&author.name, &author.email)?)
}

/// A commit, as answers show it.
pub(super) fn commit_info(commit: &Commit<'_>) -> CommitInfo {
    let author = commit.author();
    CommitInfo {
        id: commit.id().to_string(),
        summary: commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned(),
        message: commit.message().unwrap_or_default().to_owned(),
        author: Author {
            name: author.name().unwrap_or_default().to_owned(),
            email: author.email().unwrap_or_default().to_owned(),
        },
        time: commit.time().seconds(),
        parents: commit.parent_ids().map(|id| id.to_string()).collect(),
    }
}
