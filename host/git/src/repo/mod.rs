//! One session's repository: its git directory in host-only state, its work tree the workspace.
//!
//! Operations read top-down as an agent uses them: create (init or clone), commit, look
//! (status, log, diff), exchange with a remote (push, pull, with the merge they may need), and
//! undo (merge abort, reset). Every operation opens the repository afresh, so no state lives in
//! memory between requests; the caller serialises operations with the session's other writers.
//!
//! This file holds the handle and what every operation shares (the merge-state check, `HEAD`,
//! revisions, branch names). The operations live beside it:
//! - `answers`: what the operations answer, serialisable as they cross to the worker;
//! - `local`: create, commit, look and reset, which need the repository and nothing else;
//! - `exchange`: remotes, fetch, push and pull, the only operations that reach the network;
//! - `merge`: bringing fetched commits in, then finishing or abandoning a merge that stopped on
//!   conflicts.

use std::path::{Path, PathBuf};

use git2::{Commit, ErrorCode, Oid, Repository};

use crate::GitError;

mod answers;
mod exchange;
mod local;
mod merge;

pub use answers::{
    Author, ChangeKind, CommitInfo, CommitOutcome, Diff, DiffFile, FileChange, LogPage,
    MergeOutcome, PushOutcome, RemoteInfo, RepoState, Status,
};

/// The remote a clone names, as git does.
const ORIGIN: &str = "origin";
/// Longest revision expression accepted (`HEAD~3`, a commit id, a branch).
const MAX_REVISION_LEN: usize = 256;

/// A session's repository.
pub struct SessionRepo {
    repo: Repository,
    work_tree: PathBuf,
}

impl SessionRepo {
    /// Whether `git_dir` holds a repository.
    pub fn exists(git_dir: &Path) -> bool {
        git_dir.join("HEAD").is_file()
    }

    /// Opens the repository at `git_dir` with `work_tree` attached (in memory only: nothing is
    /// written into the work tree).
    pub fn open(git_dir: &Path, work_tree: &Path) -> Result<Self, GitError> {
        let repo = Repository::open_bare(git_dir)?;
        repo.set_workdir(work_tree, false)?;
        Ok(Self {
            repo,
            work_tree: work_tree.to_owned(),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Shared by the operations

    fn require_no_merge(&self) -> Result<(), GitError> {
        match self.state() {
            RepoState::Clean => Ok(()),
            RepoState::Merging => Err(GitError::MergeInProgress),
        }
    }

    fn head_commit(&self) -> Result<Option<Commit<'_>>, GitError> {
        match self.repo.head() {
            Ok(head) => Ok(Some(head.peel_to_commit()?)),
            Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn head_id(&self) -> Result<Oid, GitError> {
        self.head_commit()?
            .map(|c| c.id())
            .ok_or_else(|| GitError::InvalidInput("the repository has no commits yet".into()))
    }

    fn current_branch(&self) -> Option<String> {
        let head = self.repo.find_reference("HEAD").ok()?;
        head.symbolic_target()
            .ok()
            .flatten()?
            .strip_prefix("refs/heads/")
            .map(str::to_owned)
    }

    /// A revision expression to a commit id.
    fn resolve(&self, revision: &str) -> Result<Oid, GitError> {
        let unknown = || GitError::UnknownRevision(revision.to_owned());
        if revision.is_empty() || revision.len() > MAX_REVISION_LEN || revision.starts_with('-') {
            return Err(unknown());
        }
        let object = self.repo.revparse_single(revision).map_err(|_| unknown())?;
        Ok(object.peel_to_commit().map_err(|_| unknown())?.id())
    }
}

fn check_branch(branch: &str) -> Result<(), GitError> {
    if branch.starts_with('-') || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(GitError::InvalidInput(format!(
            "`{branch}` is not a valid branch name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_authors_are_refused() {
        for bad in ["-x", "a..b", "a b", "", "x.lock", "a~1"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
        check_branch("agent/feature-1").unwrap();
        let nameless = Author {
            name: " ".into(),
            email: "a@b".into(),
        };
        assert!(answers::signature(&nameless).is_err());
        let injected = Author {
            name: "x>\nevil".into(),
            email: "a@b".into(),
        };
        assert!(answers::signature(&injected).is_err());
    }
}
