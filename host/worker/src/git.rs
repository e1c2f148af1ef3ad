//! `/v1/sessions/{id}/git/...`: git on the worker, through `hearth-git`.
//!
//! Operations that change the workspace or the history (commit, push, pull, merge, reset) hold
//! the session exclusively, like any writer, so a commit never captures a half-written file.
//! Status, log and diff share the session with readers and take the session's git mutex
//! (libgit2 still refreshes the index while looking). Every operation runs in a `hearth-git`
//! helper process, confined to the session and killed at `git.timeout_s`: the workspace is the
//! agent's, and libgit2 reads it by itself (`hearth_git::isolated` says how that is bounded).

use hearth_git::{Author, CommitOutcome, GitError, Isolation, Job, Operation, RemoteAccess};
use hearth_wire::git::CommitRequest;
use hearth_wire::sessions::GitSource;
use serde::de::DeserializeOwned;
use std::time::Duration;

use crate::config::{ConfigError, GitConfig};
use crate::sessions::Session;

/// The worker's git facility: policy and defaults, shared by every session.
pub struct Git {
    pub access: RemoteAccess,
    pub default_branch: String,
    pub author: Author,
    pub max_diff_bytes: usize,
    /// The deepest work tree a failed operation is blamed on (`too_deep`).
    max_depth: usize,
    /// Every operation runs in a `hearth-git` helper (see `hearth_git::isolated`).
    isolation: Isolation,
}

/// The git helper's file name, looked for next to the `hearth` binary.
pub const HELPER_NAME: &str = "hearth-git";

/// A commit asked for by a request (also by exec's "commit on success").
pub fn commit_operation(request: &CommitRequest) -> Operation {
    Operation::Commit {
        message: request.message.clone(),
        author: request.author.clone(),
    }
}

impl Git {
    pub fn new(config: &GitConfig, max_depth: usize) -> Result<Self, ConfigError> {
        let helper = config
            .helper
            .clone()
            .or_else(|| crate::binaries::beside_binary(HELPER_NAME))
            .filter(|helper| helper.is_file())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "the git helper `{HELPER_NAME}` is not next to the hearth binary; build the \
                     whole workspace (`cargo build --release`) or set git.helper"
                ))
            })?;
        Ok(Self {
            access: config.remote_access()?,
            default_branch: config.default_branch.clone(),
            author: config.author.clone(),
            max_diff_bytes: config.max_diff_bytes,
            max_depth,
            isolation: Isolation::new(
                helper,
                Duration::from_secs_f64(config.timeout_s),
                config.memory_mib * 1024 * 1024,
            ),
        })
    }

    fn job(
        &self,
        work_tree: &std::path::Path,
        git_dir: &std::path::Path,
        operation: Operation,
    ) -> Job {
        Job {
            git_dir: git_dir.to_owned(),
            work_tree: work_tree.to_owned(),
            default_branch: self.default_branch.clone(),
            author: self.author.clone(),
            access: self.access.clone(),
            max_depth: self.max_depth,
            operation,
        }
    }

    /// Runs `operation` on the session's repository in the helper; blocks the calling thread
    /// until it answers or its deadline kills it. The caller holds the session's lock.
    pub fn run<T: DeserializeOwned>(
        &self,
        session: &Session,
        operation: Operation,
    ) -> Result<T, GitError> {
        let job = self.job(session.workspace_dir(), &session.git_dir(), operation);
        let answer = self.isolation.run(&job)?;
        serde_json::from_value(answer)
            .map_err(|e| GitError::internal(format!("the git helper's answer: {e}")))
    }

    /// Fills a new session's git directory with a clone of `source`. Without one, the
    /// repository (empty, with an initial commit) is made by the session's first git operation:
    /// a dozen files and directories cost more than the rest of a new session on a slow disk.
    pub fn create(
        &self,
        work_tree: &std::path::Path,
        git_dir: &std::path::Path,
        source: Option<&GitSource>,
    ) -> Result<(), GitError> {
        let Some(source) = source else {
            return Ok(());
        };
        let operation = Operation::Clone {
            url: source.url.clone(),
            branch: source.branch.clone(),
        };
        self.isolation
            .run(&self.job(work_tree, git_dir, operation))
            .map(drop)
    }

    /// Commits the whole workspace; the caller holds the session exclusively.
    pub fn commit(
        &self,
        session: &Session,
        request: &CommitRequest,
    ) -> Result<CommitOutcome, GitError> {
        self.run(session, commit_operation(request))
    }
}
