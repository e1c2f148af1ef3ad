//! git for Hearth sessions.
//!
//! Every session has one repository whose **git directory lives in the session's host-only
//! state**, outside the workspace, and whose work tree is the workspace. Nothing in the
//! workspace points at the git directory (no `.git` file, no `core.worktree`): the host opens
//! the repository by its path and attaches the work tree in memory on every open. So neither a
//! tool nor a jailed program can read or change git config, hooks, refs or history; and the
//! host never runs hooks (libgit2 has none) or external filters.
//!
//! Remotes are reached only by the host: [`RemoteAccess`] says which URLs a session may use and
//! which credentials go with them. Credentials are handed to libgit2 in its credential callback
//! and nowhere else; every message that leaves this crate is scrubbed of them.

mod error;
pub mod isolated;
mod remote;
mod repo;

pub use error::GitError;
pub use isolated::{Isolation, Job, Operation};
pub use remote::{Credential, RemoteAccess, RemoteRuleError, Secret};
pub use repo::{
    Author, ChangeKind, CommitInfo, CommitOutcome, Diff, DiffFile, FileChange, LogPage,
    MergeOutcome, PushOutcome, RemoteInfo, RepoState, SessionRepo, Status,
};
