//! One session's repository: its git directory in host-only state, its work tree the workspace.
//!
//! Operations read top-down as an agent uses them: create (init or clone), commit, look
//! (status, log, diff), exchange with a remote (push, pull, with the merge they may need), and
//! undo (merge abort, reset). Every operation opens the repository afresh, so no state lives in
//! memory between requests; the caller serialises operations with the session's other writers.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, Commit, DiffFormat, DiffOptions, ErrorCode, FetchOptions, IndexAddOption,
    MergeOptions, Oid, PushOptions, Repository, RepositoryInitOptions, RepositoryState, ResetType,
    Signature, Sort, Status as GitStatus, StatusOptions,
};
use serde::{Deserialize, Serialize};

use crate::GitError;
use crate::remote::{RemoteAccess, display_url};

/// The remote a clone names, as git does.
const ORIGIN: &str = "origin";
/// A push retries this often when the remote moves between our fetch and our push.
const MAX_PUSH_ATTEMPTS: usize = 3;
/// Longest revision expression accepted (`HEAD~3`, a commit id, a branch).
const MAX_REVISION_LEN: usize = 256;

/// Who a commit is by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    fn signature(&self) -> Result<Signature<'static>, GitError> {
        let bad = |s: &str| s.trim().is_empty() || s.contains(['<', '>', '\n', '\r', '\0']);
        if bad(&self.name) || bad(&self.email) {
            return Err(GitError::InvalidInput(
                "an author needs a non-empty `name` and `email` without `<`, `>` or line breaks"
                    .into(),
            ));
        }
        Ok(Signature::now(&self.name, &self.email)?)
    }
}

/// Whether an operation is half-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoState {
    Clean,
    /// A merge stopped on conflicts: resolve them, then continue or abort.
    Merging,
}

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    Typechange,
    Conflicted,
}

/// A path that differs from `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub change: ChangeKind,
}

/// A remote of the session (its URL without user info).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteInfo {
    pub name: String,
    pub url: String,
}

/// `git/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The branch `HEAD` is on (none when detached).
    pub branch: Option<String>,
    pub head: Option<String>,
    pub state: RepoState,
    /// Every changed path, untracked ones included (what a commit would take), ignored ones not.
    pub changes: Vec<FileChange>,
    pub conflicts: Vec<String>,
    pub remotes: Vec<RemoteInfo>,
}

/// A commit, as answers show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitInfo {
    pub id: String,
    pub summary: String,
    pub message: String,
    pub author: Author,
    /// Seconds since the epoch.
    pub time: i64,
    pub parents: Vec<String>,
}

impl CommitInfo {
    fn of(commit: &Commit<'_>) -> Self {
        let author = commit.author();
        Self {
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
}

/// `git/commit`: a new commit, or the plain answer that there was nothing to commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommitOutcome {
    Committed {
        commit: CommitInfo,
        files_changed: usize,
    },
    NothingToCommit {
        head: Option<String>,
    },
}

/// One page of `git/log`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPage {
    pub commits: Vec<CommitInfo>,
    /// The `skip` of the next page, if there is one.
    pub next_skip: Option<usize>,
}

/// A file in a diff.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffFile {
    pub path: String,
    pub old_path: Option<String>,
    pub change: ChangeKind,
    pub additions: usize,
    pub deletions: usize,
    pub binary: bool,
}

/// `git/diff`: the files, and the patch text up to a size cap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diff {
    pub files: Vec<DiffFile>,
    pub patch: String,
    pub truncated: bool,
}

/// What bringing a remote's commits in did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MergeOutcome {
    UpToDate {
        head: String,
    },
    FastForward {
        head: String,
    },
    Merged {
        head: String,
    },
    /// Stopped with conflict markers in these files; the repository is `merging`.
    Conflict {
        conflicts: Vec<String>,
    },
}

/// `git/push`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PushOutcome {
    /// The remote branch is now `head`. `merged` says the remote had moved and its commits were
    /// merged first.
    Pushed {
        remote: String,
        branch: String,
        head: String,
        merged: bool,
    },
    /// The remote already had everything (`fast_forwarded`: it was ahead, and the session caught
    /// up with it).
    UpToDate {
        remote: String,
        branch: String,
        head: String,
        fast_forwarded: bool,
    },
    /// The remote had moved and merging its commits conflicted: the repository is `merging`.
    Conflict { conflicts: Vec<String> },
    /// The remote refused the update (a hook, a protected branch, …).
    Rejected { reason: String },
}

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

    /// A new repository on `branch` with one empty commit, whatever the work tree holds (so a
    /// repository made after the agent's first files still shows them as changes to commit).
    pub fn init(
        git_dir: &Path,
        work_tree: &Path,
        branch: &str,
        author: &Author,
    ) -> Result<Self, GitError> {
        let this = Self::init_empty(git_dir, work_tree, branch)?;
        this.initial_commit(author)?;
        Ok(this)
    }

    fn initial_commit(&self, author: &Author) -> Result<(), GitError> {
        let empty = self.repo.treebuilder(None)?.write()?;
        self.write_commit("Initial commit", author, empty, &[])?;
        Ok(())
    }

    /// A repository without commits. The git directory is "bare" on disk: the work tree is
    /// attached only by [`SessionRepo::open`], so it never names the workspace.
    fn init_empty(git_dir: &Path, work_tree: &Path, branch: &str) -> Result<Self, GitError> {
        check_branch(branch)?;
        let mut options = RepositoryInitOptions::new();
        options
            .bare(true)
            .mkpath(true)
            .initial_head(&format!("refs/heads/{branch}"));
        Repository::init_opts(git_dir, &options)?;
        Self::open(git_dir, work_tree)
    }

    /// Clones `url` into the work tree: `branch`, or the remote's default branch. An empty
    /// remote gives an empty repository with an initial commit, ready to push to it.
    pub fn clone_into(
        git_dir: &Path,
        work_tree: &Path,
        url: &str,
        branch: Option<&str>,
        default_branch: &str,
        author: &Author,
        access: &RemoteAccess,
    ) -> Result<Self, GitError> {
        access.check(url)?;
        let provisional = branch.unwrap_or(default_branch);
        let this = Self::init_empty(git_dir, work_tree, provisional)?;
        this.repo.remote(ORIGIN, url)?;
        let (remote_default, heads) = this.fetch_heads(url, access)?;
        let branch = branch
            .map(str::to_owned)
            .or(remote_default)
            .unwrap_or_else(|| default_branch.to_owned());
        check_branch(&branch)?;
        this.repo.set_head(&format!("refs/heads/{branch}"))?;
        if heads.is_empty() {
            this.initial_commit(author)?;
            return Ok(this);
        }
        let tip = this
            .repo
            .refname_to_id(&format!("refs/remotes/{ORIGIN}/{branch}"))
            .map_err(|_| GitError::UnknownRemoteBranch(branch.clone()))?;
        let commit = this.repo.find_commit(tip)?;
        let tree = commit.tree()?;
        drop(commit);
        this.repo.reference(
            &format!("refs/heads/{branch}"),
            tip,
            true,
            &format!("clone: from {}", display_url(url)),
        )?;
        this.repo
            .checkout_tree(tree.as_object(), Some(CheckoutBuilder::new().force()))?;
        drop(tree);
        let mut config = this.repo.config()?;
        config.set_str(&format!("branch.{branch}.remote"), ORIGIN)?;
        config.set_str(
            &format!("branch.{branch}.merge"),
            &format!("refs/heads/{branch}"),
        )?;
        Ok(this)
    }

    // -----------------------------------------------------------------------------------------
    // Committing

    /// Stages everything (`.gitignore` honoured, deletions included) and commits it. Nothing to
    /// commit is an answer, not an error.
    pub fn commit(&self, message: &str, author: &Author) -> Result<CommitOutcome, GitError> {
        if message.trim().is_empty() {
            return Err(GitError::InvalidInput("a commit needs a message".into()));
        }
        self.require_no_merge()?;
        let tree = self.stage_all()?;
        let parent = self.head_commit()?;
        if let Some(parent) = &parent
            && parent.tree_id() == tree
        {
            return Ok(CommitOutcome::NothingToCommit {
                head: Some(parent.id().to_string()),
            });
        }
        let files_changed = self.changed_files(parent.as_ref(), tree)?;
        let parents: Vec<&Commit<'_>> = parent.iter().collect();
        let commit = self.write_commit(message, author, tree, &parents)?;
        Ok(CommitOutcome::Committed {
            commit,
            files_changed,
        })
    }

    /// The index made equal to the work tree; returns its tree.
    /// Stages the whole work tree. A directory holding a `.git` of its own (a nested
    /// repository, or a `.git` file naming any directory of the host) is left out: libgit2 would
    /// open it as a submodule — another repository, wherever its `.git` points — to record its
    /// head. git would add it as a gitlink; here it is simply not part of the session's history.
    fn stage_all(&self) -> Result<Oid, GitError> {
        let mut index = self.repo.index()?;
        let mut skip_nested = |path: &Path, _: &[u8]| -> i32 {
            let nested = path.as_os_str().as_encoded_bytes().ends_with(b"/");
            if nested {
                tracing::info!(path = ?path, "left a nested repository out of a commit");
            }
            i32::from(nested)
        };
        index.add_all(
            ["*"],
            IndexAddOption::DEFAULT,
            Some(&mut skip_nested as &mut git2::IndexMatchedPath<'_>),
        )?;
        index.update_all(["*"], None)?;
        index.write()?;
        Ok(index.write_tree()?)
    }

    fn write_commit(
        &self,
        message: &str,
        author: &Author,
        tree: Oid,
        parents: &[&Commit<'_>],
    ) -> Result<CommitInfo, GitError> {
        let signature = author.signature()?;
        let tree = self.repo.find_tree(tree)?;
        let id = self.repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            parents,
        )?;
        Ok(CommitInfo::of(&self.repo.find_commit(id)?))
    }

    fn changed_files(&self, parent: Option<&Commit<'_>>, tree: Oid) -> Result<usize, GitError> {
        let old = parent.map(Commit::tree).transpose()?;
        let new = self.repo.find_tree(tree)?;
        let diff = self
            .repo
            .diff_tree_to_tree(old.as_ref(), Some(&new), None)?;
        Ok(diff.deltas().len())
    }

    // -----------------------------------------------------------------------------------------
    // Looking

    pub fn status(&self) -> Result<Status, GitError> {
        let head = self.head_commit()?;
        let branch = self.current_branch();
        let changes = self.changes(true)?;
        let conflicts = changes
            .iter()
            .filter(|c| c.change == ChangeKind::Conflicted)
            .map(|c| c.path.clone())
            .collect();
        Ok(Status {
            branch,
            head: head.map(|h| h.id().to_string()),
            state: self.state(),
            changes,
            conflicts,
            remotes: self.remotes()?,
        })
    }

    pub fn state(&self) -> RepoState {
        match self.repo.state() {
            RepositoryState::Clean => RepoState::Clean,
            _ => RepoState::Merging,
        }
    }

    /// The paths that differ from `HEAD`, untracked ones only when asked.
    fn changes(&self, untracked: bool) -> Result<Vec<FileChange>, GitError> {
        let mut options = StatusOptions::new();
        options
            .include_untracked(untracked)
            .recurse_untracked_dirs(untracked)
            .include_ignored(false);
        let statuses = self.repo.statuses(Some(&mut options))?;
        Ok(statuses
            .iter()
            .filter_map(|entry| {
                let path = entry.path().ok()?.to_owned();
                Some(FileChange {
                    path,
                    change: change_kind(entry.status())?,
                })
            })
            .collect())
    }

    /// `limit` commits reachable from `revision` (default `HEAD`), newest first, after `skip`.
    pub fn log(
        &self,
        revision: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Result<LogPage, GitError> {
        let start = match revision {
            Some(revision) => Some(self.resolve(revision)?),
            None => self.head_commit()?.map(|c| c.id()),
        };
        let Some(start) = start else {
            return Ok(LogPage {
                commits: Vec::new(),
                next_skip: None,
            });
        };
        let mut walk = self.repo.revwalk()?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
        walk.push(start)?;
        let mut commits = Vec::new();
        for id in walk.skip(skip).take(limit.saturating_add(1)) {
            commits.push(CommitInfo::of(&self.repo.find_commit(id?)?));
        }
        let next_skip = (commits.len() > limit).then(|| skip + limit);
        commits.truncate(limit);
        Ok(LogPage { commits, next_skip })
    }

    /// The work tree against `from` (default `HEAD`), untracked files included; or, with `to`,
    /// commit `from` against commit `to`. The patch text stops at `max_patch_bytes`.
    pub fn diff(
        &self,
        from: Option<&str>,
        to: Option<&str>,
        max_patch_bytes: usize,
    ) -> Result<Diff, GitError> {
        let tree_of = |rev: &str| -> Result<git2::Tree<'_>, GitError> {
            Ok(self.repo.find_commit(self.resolve(rev)?)?.tree()?)
        };
        let old = match from {
            Some(from) => Some(tree_of(from)?),
            None => self.head_commit()?.map(|c| c.tree()).transpose()?,
        };
        let mut options = DiffOptions::new();
        let mut diff = match to {
            Some(to) => {
                let new = tree_of(to)?;
                self.repo
                    .diff_tree_to_tree(old.as_ref(), Some(&new), Some(&mut options))?
            }
            None => {
                options
                    .include_untracked(true)
                    .recurse_untracked_dirs(true)
                    .show_untracked_content(true);
                self.repo
                    .diff_tree_to_workdir_with_index(old.as_ref(), Some(&mut options))?
            }
        };
        diff.find_similar(None)?;
        let mut files = Vec::new();
        for (index, delta) in diff.deltas().enumerate() {
            let (additions, deletions) = match git2::Patch::from_diff(&diff, index)? {
                Some(patch) => {
                    let (_, added, deleted) = patch.line_stats()?;
                    (added, deleted)
                }
                None => (0, 0),
            };
            let path_of =
                |f: git2::DiffFile<'_>| f.path().map(|p| p.to_string_lossy().into_owned());
            let new_path = path_of(delta.new_file());
            let old_path = path_of(delta.old_file());
            let change = match delta.status() {
                git2::Delta::Added | git2::Delta::Untracked | git2::Delta::Copied => {
                    ChangeKind::Added
                }
                git2::Delta::Deleted => ChangeKind::Deleted,
                git2::Delta::Renamed => ChangeKind::Renamed,
                git2::Delta::Typechange => ChangeKind::Typechange,
                git2::Delta::Conflicted => ChangeKind::Conflicted,
                _ => ChangeKind::Modified,
            };
            files.push(DiffFile {
                path: new_path.clone().or(old_path.clone()).unwrap_or_default(),
                old_path: (change == ChangeKind::Renamed)
                    .then_some(old_path)
                    .flatten(),
                change,
                additions,
                deletions,
                binary: delta.flags().is_binary(),
            });
        }
        let mut patch = Vec::new();
        let mut truncated = false;
        diff.print(DiffFormat::Patch, |_, _, line| {
            let origin = line.origin();
            let prefix_len = usize::from(matches!(origin, '+' | '-' | ' '));
            if patch.len() + prefix_len + line.content().len() > max_patch_bytes {
                truncated = true;
                return false;
            }
            if prefix_len == 1 {
                patch.push(origin as u8);
            }
            patch.extend_from_slice(line.content());
            true
        })
        .or_else(|e| if truncated { Ok(()) } else { Err(e) })?;
        Ok(Diff {
            files,
            patch: String::from_utf8_lossy(&patch).into_owned(),
            truncated,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Remotes

    pub fn remotes(&self) -> Result<Vec<RemoteInfo>, GitError> {
        let names = self.repo.remotes()?;
        Ok(names
            .iter()
            .filter_map(|name| {
                let name = name.ok().flatten()?;
                let remote = self.repo.find_remote(name).ok()?;
                Some(RemoteInfo {
                    name: name.to_owned(),
                    url: display_url(remote.url().ok()?),
                })
            })
            .collect())
    }

    /// Adds the remote `name`, or points it at `url`.
    pub fn set_remote(&self, name: &str, url: &str, access: &RemoteAccess) -> Result<(), GitError> {
        // git2's check panics on a NUL (it unwraps the C string): refused before it is asked.
        if name.contains('\0') || !git2::Remote::is_valid_name(name) {
            return Err(GitError::InvalidInput(format!(
                "`{name}` is not a valid remote name"
            )));
        }
        access.check(url)?;
        match self.repo.find_remote(name) {
            Ok(_) => self.repo.remote_set_url(name, url)?,
            Err(_) => {
                self.repo.remote(name, url)?;
            }
        }
        Ok(())
    }

    fn remote_url(&self, name: &str, access: &RemoteAccess) -> Result<String, GitError> {
        let remote = self
            .repo
            .find_remote(name)
            .map_err(|_| GitError::UnknownRemote(name.to_owned()))?;
        let url = remote
            .url()
            .map_err(|_| GitError::UnknownRemote(name.to_owned()))?
            .to_owned();
        // Checked on every use, not only when set: the operator's list may have shrunk.
        access.check(&url)?;
        Ok(url)
    }

    /// A clone's first contact: fetches every branch of `origin` into its tracking refs (never
    /// following a redirect, like every exchange) and answers the remote's default branch and
    /// its branches.
    fn fetch_heads(
        &self,
        url: &str,
        access: &RemoteAccess,
    ) -> Result<(Option<String>, Vec<String>), GitError> {
        let refused = RefCell::new(None);
        let mut options = fetch_options(access, url, &refused);
        let mut remote = self.repo.find_remote(ORIGIN)?;
        remote
            .fetch(
                &[format!("+refs/heads/*:refs/remotes/{ORIGIN}/*")],
                Some(&mut options),
                None,
            )
            .map_err(|e| access.remote_error(url, &e))?;
        let heads: Vec<String> = remote
            .list()
            .map_err(|e| access.remote_error(url, &e))?
            .iter()
            .filter_map(|head| head.name().strip_prefix("refs/heads/").map(str::to_owned))
            .collect();
        let default = remote
            .default_branch()
            .ok()
            .and_then(|b| b.as_str().ok().map(str::to_owned))
            .and_then(|b| b.strip_prefix("refs/heads/").map(str::to_owned));
        Ok((default, heads))
    }

    /// Fetches `branch` of `remote` into `refs/remotes/<remote>/<branch>`; `None` when the
    /// remote has no such branch.
    fn fetch_branch(
        &self,
        remote: &str,
        branch: &str,
        access: &RemoteAccess,
    ) -> Result<Option<Oid>, GitError> {
        check_branch(branch)?;
        let url = self.remote_url(remote, access)?;
        let tracking = format!("refs/remotes/{remote}/{branch}");
        // A branch deleted on the remote must not live on in a stale tracking ref.
        if let Ok(mut stale) = self.repo.find_reference(&tracking) {
            stale.delete()?;
        }
        let refused = RefCell::new(None);
        let mut options = fetch_options(access, &url, &refused);
        let mut handle = self.repo.find_remote(remote)?;
        handle
            .fetch(
                &[format!("+refs/heads/{branch}:{tracking}")],
                Some(&mut options),
                None,
            )
            .map_err(|e| access.remote_error(&url, &e))?;
        Ok(self.repo.refname_to_id(&tracking).ok())
    }

    /// Pushes the current branch to `branch` of `remote` (default: the same name). When the
    /// remote has moved, its commits are fetched and merged first; a clean merge is pushed, a
    /// conflicting one is left for the agent to resolve.
    pub fn push(
        &self,
        remote: &str,
        branch: Option<&str>,
        author: &Author,
        access: &RemoteAccess,
    ) -> Result<PushOutcome, GitError> {
        self.require_no_merge()?;
        let local = self.current_branch().ok_or_else(|| {
            GitError::InvalidInput("HEAD is not on a branch; reset to a branch first".into())
        })?;
        let branch = branch.unwrap_or(&local).to_owned();
        check_branch(&branch)?;
        let url = self.remote_url(remote, access)?;
        let mut merged = false;
        let mut fast_forwarded = false;
        for _ in 0..MAX_PUSH_ATTEMPTS {
            let remote_tip = self.fetch_branch(remote, &branch, access)?;
            let head = self.head_id()?;
            if let Some(tip) = remote_tip
                && tip != head
                && !self.repo.graph_descendant_of(head, tip)?
            {
                match self.merge(tip, &format!("{remote}/{branch}"), author)? {
                    MergeOutcome::Conflict { conflicts } => {
                        return Ok(PushOutcome::Conflict { conflicts });
                    }
                    MergeOutcome::Merged { .. } => merged = true,
                    MergeOutcome::FastForward { .. } => fast_forwarded = true,
                    MergeOutcome::UpToDate { .. } => {}
                }
            }
            let head = self.head_id()?;
            if self.fetched_tip(remote, &branch) == Some(head) {
                return Ok(PushOutcome::UpToDate {
                    remote: remote.to_owned(),
                    branch,
                    head: head.to_string(),
                    fast_forwarded,
                });
            }
            let refused = RefCell::new(None);
            let mut options = PushOptions::new();
            options
                .follow_redirects(git2::RemoteRedirect::None)
                .remote_callbacks(access.callbacks(&url, &refused));
            let refspec = format!("refs/heads/{local}:refs/heads/{branch}");
            let pushed = self
                .repo
                .find_remote(remote)?
                .push(&[refspec.as_str()], Some(&mut options));
            drop(options);
            let refused = refused.into_inner().map(|r| access.redact(&r));
            match (pushed, refused) {
                (Ok(()), None) => {
                    return Ok(PushOutcome::Pushed {
                        remote: remote.to_owned(),
                        branch,
                        head: head.to_string(),
                        merged,
                    });
                }
                // The remote moved between our fetch and our push: fetch and merge again.
                (_, Some(reason)) if is_not_fast_forward(&reason) => continue,
                (Err(e), None) if e.code() == ErrorCode::NotFastForward => continue,
                (_, Some(reason)) => return Ok(PushOutcome::Rejected { reason }),
                (Err(e), None) => return Err(access.remote_error(&url, &e)),
            }
        }
        Ok(PushOutcome::Rejected {
            reason: format!("the remote branch kept moving during {MAX_PUSH_ATTEMPTS} attempts"),
        })
    }

    fn fetched_tip(&self, remote: &str, branch: &str) -> Option<Oid> {
        self.repo
            .refname_to_id(&format!("refs/remotes/{remote}/{branch}"))
            .ok()
    }

    /// Fetches `branch` of `remote` (default: the current branch) and merges it.
    pub fn pull(
        &self,
        remote: &str,
        branch: Option<&str>,
        author: &Author,
        access: &RemoteAccess,
    ) -> Result<MergeOutcome, GitError> {
        self.require_no_merge()?;
        let branch = match branch {
            Some(branch) => branch.to_owned(),
            None => self.current_branch().ok_or_else(|| {
                GitError::InvalidInput("HEAD is not on a branch: name the branch to pull".into())
            })?,
        };
        let tip = self
            .fetch_branch(remote, &branch, access)?
            .ok_or_else(|| GitError::UnknownRemoteBranch(branch.clone()))?;
        self.merge(tip, &format!("{remote}/{branch}"), author)
    }

    // -----------------------------------------------------------------------------------------
    // Merging

    /// Merges commit `their` into the current branch. The work tree must hold no uncommitted
    /// changes to tracked files (untracked ones the merge would overwrite stop it too).
    fn merge(&self, their: Oid, name: &str, author: &Author) -> Result<MergeOutcome, GitError> {
        let dirty: Vec<String> = self.changes(false)?.into_iter().map(|c| c.path).collect();
        if !dirty.is_empty() {
            return Err(GitError::UncommittedChanges(dirty));
        }
        let annotated = self.repo.find_annotated_commit(their)?;
        let (analysis, _) = self.repo.merge_analysis(&[&annotated])?;
        if analysis.is_up_to_date() {
            return Ok(MergeOutcome::UpToDate {
                head: self.head_id()?.to_string(),
            });
        }
        if analysis.is_fast_forward() || analysis.is_unborn() {
            let target = self.repo.find_commit(their)?;
            self.repo
                .checkout_tree(target.as_object(), Some(CheckoutBuilder::new().safe()))
                .map_err(|e| self.checkout_error(e))?;
            let head_ref = self
                .repo
                .find_reference("HEAD")?
                .symbolic_target()?
                .map(str::to_owned)
                .ok_or_else(|| GitError::InvalidInput("HEAD is not on a branch".into()))?;
            self.repo
                .reference(&head_ref, their, true, &format!("fast-forward to {name}"))?;
            return Ok(MergeOutcome::FastForward {
                head: their.to_string(),
            });
        }
        let mut checkout = CheckoutBuilder::new();
        checkout
            .safe()
            .allow_conflicts(true)
            .conflict_style_merge(true);
        self.repo
            .merge(
                &[&annotated],
                Some(&mut MergeOptions::new()),
                Some(&mut checkout),
            )
            .map_err(|e| self.checkout_error(e))?;
        let conflicts = self.conflicted_paths()?;
        if !conflicts.is_empty() {
            return Ok(MergeOutcome::Conflict { conflicts });
        }
        let commit = self.finish_merge(None, author, name)?;
        Ok(MergeOutcome::Merged { head: commit.id })
    }

    /// A checkout refused because it would overwrite local files.
    fn checkout_error(&self, e: git2::Error) -> GitError {
        if e.code() == ErrorCode::Conflict {
            GitError::UncommittedChanges(vec![e.message().to_owned()])
        } else {
            e.into()
        }
    }

    fn conflicted_paths(&self) -> Result<Vec<String>, GitError> {
        let index = self.repo.index()?;
        let mut paths = Vec::new();
        for conflict in index.conflicts()? {
            let conflict = conflict?;
            if let Some(entry) = conflict.our.or(conflict.their).or(conflict.ancestor) {
                paths.push(String::from_utf8_lossy(&entry.path).into_owned());
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// Finishes a merge stopped on conflicts, once the agent has resolved them: every file that
    /// conflicted must be free of conflict markers.
    pub fn merge_continue(
        &self,
        message: Option<&str>,
        author: &Author,
    ) -> Result<CommitInfo, GitError> {
        if self.state() != RepoState::Merging {
            return Err(GitError::NoMergeInProgress);
        }
        let unresolved: Vec<String> = self
            .conflicted_paths()?
            .into_iter()
            .map(|path| Ok((has_conflict_markers(&self.work_tree, &path)?, path)))
            .filter_map(|found: Result<(bool, String), GitError>| match found {
                Ok((false, _)) => None,
                Ok((true, path)) => Some(Ok(path)),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        if !unresolved.is_empty() {
            return Err(GitError::UnresolvedConflicts(unresolved));
        }
        self.finish_merge(message, author, "the remote")
    }

    /// Commits the staged merge with `HEAD` and every `MERGE_HEAD` as parents.
    fn finish_merge(
        &self,
        message: Option<&str>,
        author: &Author,
        name: &str,
    ) -> Result<CommitInfo, GitError> {
        let tree = self.stage_all()?;
        let mut parents = vec![self.repo.find_commit(self.head_id()?)?];
        let mut their_ids = Vec::new();
        // `mergehead_foreach` needs `&mut`; a second handle on the same git directory is cheap.
        Repository::open_bare(self.repo.path())?.mergehead_foreach(|id| {
            their_ids.push(*id);
            true
        })?;
        for id in their_ids {
            parents.push(self.repo.find_commit(id)?);
        }
        let default = format!("Merge {name}");
        let prepared = self.repo.message().ok();
        let message = message
            .map(str::to_owned)
            .or(prepared)
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(default);
        let parent_refs: Vec<&Commit<'_>> = parents.iter().collect();
        let commit = self.write_commit(&message, author, tree, &parent_refs)?;
        self.repo.cleanup_state()?;
        Ok(commit)
    }

    /// Abandons a merge: the work tree and index go back to `HEAD`, and files the merge brought
    /// in are removed (the merge started from a clean work tree, so they are its own).
    pub fn merge_abort(&self) -> Result<CommitInfo, GitError> {
        if self.state() != RepoState::Merging {
            return Err(GitError::NoMergeInProgress);
        }
        let head = self.repo.find_commit(self.head_id()?)?;
        let head_tree = head.tree()?;
        let brought_in: Vec<String> = self
            .repo
            .index()?
            .iter()
            .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
            .filter(|path| head_tree.get_path(Path::new(path)).is_err())
            .collect();
        self.repo.reset(
            head.as_object(),
            ResetType::Hard,
            Some(CheckoutBuilder::new().force()),
        )?;
        for path in brought_in {
            remove_in_work_tree(&self.work_tree, &path)?;
        }
        self.repo.cleanup_state()?;
        Ok(CommitInfo::of(&head))
    }

    // -----------------------------------------------------------------------------------------
    // Undoing

    /// Rolls the workspace and the current branch back to `revision`. Untracked files stay unless
    /// `clean` (ignored files always stay). Abandons a merge in progress.
    pub fn reset(&self, revision: &str, clean: bool) -> Result<CommitInfo, GitError> {
        let target = self.repo.find_commit(self.resolve(revision)?)?;
        self.repo.reset(
            target.as_object(),
            ResetType::Hard,
            Some(CheckoutBuilder::new().force()),
        )?;
        if clean {
            // `reset` leaves untracked files whatever its checkout options say; a second pass
            // against the new HEAD removes them.
            self.repo
                .checkout_head(Some(CheckoutBuilder::new().force().remove_untracked(true)))?;
        }
        self.repo.cleanup_state()?;
        Ok(CommitInfo::of(&target))
    }

    // -----------------------------------------------------------------------------------------
    // Helpers

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

/// The remote's default branch and its branch names, without fetching anything.
/// How every fetch talks to a remote: the policy's callbacks, no tags, and no redirect (it
/// would lead to a URL the policy never checked).
fn fetch_options<'cb>(
    access: &'cb RemoteAccess,
    url: &'cb str,
    refused: &'cb RefCell<Option<String>>,
) -> FetchOptions<'cb> {
    let mut options = FetchOptions::new();
    options
        .follow_redirects(git2::RemoteRedirect::None)
        .remote_callbacks(access.callbacks(url, refused))
        .download_tags(AutotagOption::None);
    options
}

fn check_branch(branch: &str) -> Result<(), GitError> {
    if branch.starts_with('-') || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(GitError::InvalidInput(format!(
            "`{branch}` is not a valid branch name"
        )));
    }
    Ok(())
}

fn change_kind(status: GitStatus) -> Option<ChangeKind> {
    let any = |flags: GitStatus| status.intersects(flags);
    Some(if any(GitStatus::CONFLICTED) {
        ChangeKind::Conflicted
    } else if any(GitStatus::INDEX_DELETED | GitStatus::WT_DELETED) {
        ChangeKind::Deleted
    } else if any(GitStatus::INDEX_NEW | GitStatus::WT_NEW) {
        ChangeKind::Added
    } else if any(GitStatus::INDEX_TYPECHANGE | GitStatus::WT_TYPECHANGE) {
        ChangeKind::Typechange
    } else if any(GitStatus::INDEX_RENAMED | GitStatus::WT_RENAMED) {
        ChangeKind::Renamed
    } else if any(GitStatus::INDEX_MODIFIED | GitStatus::WT_MODIFIED) {
        ChangeKind::Modified
    } else {
        return None;
    })
}

fn is_not_fast_forward(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("non-fast-forward")
        || reason.contains("fetch first")
        || reason.contains("stale")
}

/// Whether a file still holds the markers a conflicting merge wrote. The file is the agent's:
/// opened through `hearth-content` (no link followed, a FIFO refused, never blocking) and
/// scanned in a stream, so its size costs time (bounded by the helper's deadline), not memory.
/// What is not a regular file holds no markers.
fn has_conflict_markers(work_tree: &Path, relative: &str) -> Result<bool, GitError> {
    let tree = hearth_content::Tree::open(work_tree).map_err(content_error)?;
    let file = match tree.open_file(Path::new(relative)) {
        Ok((file, _)) => file,
        Err(
            hearth_content::ContentError::NotFound
            | hearth_content::ContentError::Symlink
            | hearth_content::ContentError::NotAFile(_)
            | hearth_content::ContentError::IsDirectory
            | hearth_content::ContentError::NotADirectory,
        ) => return Ok(false),
        Err(e) => return Err(content_error(e)),
    };
    Ok(starts_a_line(
        std::io::BufReader::new(file),
        &[b"<<<<<<< ", b">>>>>>> "],
    )?)
}

/// Whether any line of `input` starts with one of `prefixes` (all of one length).
fn starts_a_line(mut input: impl std::io::BufRead, prefixes: &[&[u8]]) -> std::io::Result<bool> {
    let width = prefixes.first().map_or(0, |p| p.len());
    let mut start: Vec<u8> = Vec::with_capacity(width);
    let mut at_line_start = true;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(false);
        }
        let taken = chunk.len();
        for &byte in chunk {
            if byte == b'\n' {
                at_line_start = true;
                start.clear();
            } else if at_line_start {
                start.push(byte);
                if start.len() == width {
                    if prefixes.contains(&start.as_slice()) {
                        return Ok(true);
                    }
                    at_line_start = false;
                }
            }
        }
        input.consume(taken);
    }
}

fn content_error(e: hearth_content::ContentError) -> GitError {
    GitError::Internal(format!("reading the work tree: {e}"))
}

/// Removes `relative` under `root` without following a symlink anywhere on the way.
fn remove_in_work_tree(root: &Path, relative: &str) -> Result<(), GitError> {
    let tree = hearth_content::Tree::open(root).map_err(content_error)?;
    match tree.remove(Path::new(relative)) {
        // A link or a file where a directory was: what the merge brought is not there.
        Ok(())
        | Err(
            hearth_content::ContentError::Symlink | hearth_content::ContentError::NotADirectory,
        ) => Ok(()),
        Err(e) => Err(content_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Author {
        Author {
            name: "Test".into(),
            email: "test@example.invalid".into(),
        }
    }

    #[test]
    fn the_work_tree_never_learns_where_its_git_directory_is() {
        let root = tempfile::tempdir().unwrap();
        let (git_dir, work) = (root.path().join("state/git"), root.path().join("work"));
        std::fs::create_dir(&work).unwrap();
        let repo = SessionRepo::init(&git_dir, &work, "main", &author()).unwrap();
        std::fs::write(work.join("a.txt"), "a\n").unwrap();
        assert!(matches!(
            repo.commit("a", &author()).unwrap(),
            CommitOutcome::Committed {
                files_changed: 1,
                ..
            }
        ));
        assert!(matches!(
            repo.commit("again", &author()).unwrap(),
            CommitOutcome::NothingToCommit { .. }
        ));
        let names: Vec<_> = std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
        let config = std::fs::read_to_string(git_dir.join("config")).unwrap();
        assert!(!config.contains("worktree"), "{config}");
        assert_eq!(
            SessionRepo::open(&git_dir, &work)
                .unwrap()
                .log(None, 0, 10)
                .unwrap()
                .commits
                .len(),
            2
        );
    }

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
        assert!(nameless.signature().is_err());
        let injected = Author {
            name: "x>\nevil".into(),
            email: "a@b".into(),
        };
        assert!(injected.signature().is_err());
    }

    #[test]
    fn conflict_markers_are_recognised_at_line_starts_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "a\n<<<<<<< ours\nb\n=======\nc\n>>>>>>> theirs\n").unwrap();
        assert!(has_conflict_markers(dir.path(), "f").unwrap());
        std::fs::write(&file, "s = '<<<<<<< not a marker'\n").unwrap();
        assert!(!has_conflict_markers(dir.path(), "f").unwrap());
        std::fs::write(&file, "<<<<<<<\n<<<<<< x\n").unwrap();
        assert!(!has_conflict_markers(dir.path(), "f").unwrap());
    }

    #[test]
    fn nested_repositories_are_left_out_of_a_commit_never_opened() {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::create_dir_all(work.join("inner/.git")).unwrap();
        std::fs::write(work.join("sub/.git"), "gitdir: /nonexistent/elsewhere\n").unwrap();
        std::fs::write(work.join("sub/f"), "f").unwrap();
        std::fs::write(work.join("top"), "t").unwrap();
        let repo = SessionRepo::init(&root.path().join("git"), &work, "main", &author()).unwrap();
        let outcome = repo.commit("with nested", &author()).unwrap();
        assert!(
            matches!(
                outcome,
                CommitOutcome::Committed {
                    files_changed: 1,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn conflicted_paths_the_agent_replaced_are_never_followed_or_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), "<<<<<<< x\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("out")).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for name in ["zero", "out", "fifo", "missing"] {
            assert!(!has_conflict_markers(dir.path(), name).unwrap(), "{name}");
        }
    }
}
