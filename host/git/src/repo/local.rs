//! What a session does with its repository alone: create it (init, or clone — whose fetch is
//! in `exchange`), commit, look (status, log, diff) and undo with a reset. None of these reaches
//! a remote.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{
    Commit, Delta, DiffFormat, DiffOptions, Oid, Repository, RepositoryInitOptions,
    RepositoryState, ResetType, Sort, Status as GitStatus, StatusOptions,
};

use super::{
    Author, ChangeKind, CommitInfo, CommitOutcome, Diff, DiffFile, FileChange, LogPage, ORIGIN,
    RepoState, SessionRepo, Status, answers, check_branch,
};
use crate::GitError;
use crate::remote::{RemoteAccess, display_url};

impl SessionRepo {
    // -----------------------------------------------------------------------------------------
    // Creating

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
        // A bad author is refused whether or not there is something to commit.
        answers::signature(author)?;
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

    /// The index made equal to the work tree (`.gitignore` honoured, deletions included);
    /// returns its tree.
    ///
    /// One look at the work tree: the index-to-work-tree diff names what is new, changed, gone
    /// or conflicted, and only those paths are added or removed. (`add_all` then `update_all`
    /// walked the tree twice, and the second walk hashed every file changed since the index was
    /// written once more: each was newer than the index, so "racily clean" to libgit2.) The
    /// trees are git's own: a test holds them to `git add -A`.
    ///
    /// A directory holding a `.git` of its own (a nested repository, or a `.git` file naming
    /// any directory of the host) is left out: libgit2 would open it as a submodule — another
    /// repository, wherever its `.git` points — to record its head. git would add it as a
    /// gitlink; here it is simply not part of the session's history.
    pub(super) fn stage_all(&self) -> Result<Oid, GitError> {
        let mut index = self.repo.index()?;
        let mut options = DiffOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_typechange(true);
        let diff = self
            .repo
            .diff_index_to_workdir(Some(&index), Some(&mut options))?;
        let mut gone = Vec::new();
        let mut present = Vec::new();
        for delta in diff.deltas() {
            let file = match delta.status() {
                Delta::Deleted => delta.old_file(),
                _ => delta.new_file(),
            };
            let Some(path) = file.path_bytes() else {
                continue;
            };
            let path = Path::new(std::ffi::OsStr::from_bytes(path)).to_owned();
            match delta.status() {
                Delta::Unmodified | Delta::Ignored => {}
                Delta::Deleted => gone.push(path),
                _ if path.as_os_str().as_bytes().ends_with(b"/") => {
                    tracing::info!(path = ?path, "left a nested repository out of a commit");
                }
                _ => present.push(path),
            }
        }
        for path in &gone {
            index.remove_path(path)?;
        }
        for path in &present {
            match index.add_path(path) {
                // Gone since the diff looked (or a conflict whose file was deleted).
                Err(e) if e.code() == git2::ErrorCode::NotFound => index.remove_path(path)?,
                other => other?,
            }
        }
        index.write()?;
        Ok(index.write_tree()?)
    }

    pub(super) fn write_commit(
        &self,
        message: &str,
        author: &Author,
        tree: Oid,
        parents: &[&Commit<'_>],
    ) -> Result<CommitInfo, GitError> {
        let signature = answers::signature(author)?;
        let tree = self.repo.find_tree(tree)?;
        let id = self.repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            parents,
        )?;
        Ok(answers::commit_info(&self.repo.find_commit(id)?))
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
    pub(super) fn changes(&self, untracked: bool) -> Result<Vec<FileChange>, GitError> {
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
            commits.push(answers::commit_info(&self.repo.find_commit(id?)?));
        }
        let next_skip = (commits.len() > limit)
            .then(|| u32::try_from(skip + limit).ok())
            .flatten();
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
        Ok(answers::commit_info(&target))
    }
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

    /// The tree `git add -A` makes of the same work tree (with an index of its own).
    fn tree_by_the_git_cli(git_dir: &Path, work: &Path) -> String {
        let index = git_dir.join("cli-index");
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(git_dir)
                .arg("--work-tree")
                .arg(work)
                .args(args)
                .env("GIT_INDEX_FILE", &index)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", git_dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        git(&["read-tree", "HEAD"]);
        git(&["add", "-A"]);
        git(&["write-tree"])
    }

    #[test]
    fn staging_makes_the_trees_git_add_all_makes() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let root = tempfile::tempdir().unwrap();
        let (git_dir, work) = (root.path().join("git"), root.path().join("work"));
        let file = |relative: &str, text: &str| {
            let path = work.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        file(".gitignore", "*.log\nbuild/\n");
        file("src/main.py", "print(1)\n");
        file("src/util/helpers.py", "def f(): pass\n");
        file("notes.log", "ignored\n");
        file("build/out.bin", "ignored\n");
        file("gone.txt", "soon deleted\n");
        file("becomes_dir", "a file first\n");
        file("tracked.log", "tracked, then ignored\n");
        file("run.sh", "#!/bin/sh\n");
        std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        symlink("src/main.py", work.join("link")).unwrap();
        // What git never stages: a FIFO (which must not be opened: nothing writes to it) and a
        // socket.
        let fifo = std::process::Command::new("mkfifo")
            .arg(work.join("src/pipe"))
            .status();
        assert!(fifo.unwrap().success());
        let _socket = std::os::unix::net::UnixListener::bind(work.join("src/socket")).unwrap();
        let repo = SessionRepo::init(&git_dir, &work, "main", &author()).unwrap();
        // `tracked.log` is tracked although ignored (added before the rule covered it).
        std::fs::write(work.join(".gitignore"), "build/\n").unwrap();
        repo.commit("first", &author()).unwrap();
        std::fs::write(work.join(".gitignore"), "*.log\nbuild/\n").unwrap();
        for round in 0..2 {
            let tree = repo.stage_all().unwrap().to_string();
            assert_eq!(tree, tree_by_the_git_cli(&git_dir, &work), "round {round}");
            repo.commit(&format!("round {round}"), &author()).unwrap();
            // Changes of every kind for the next round.
            file("src/main.py", &format!("print({round})\n"));
            file("tracked.log", &format!("changed {round}\n"));
            file(&format!("new/deep/file{round}.txt"), "new\n");
            let _ = std::fs::remove_file(work.join("gone.txt"));
            if round == 0 {
                std::fs::remove_file(work.join("becomes_dir")).unwrap();
                file("becomes_dir/inside.txt", "now a directory\n");
                std::fs::remove_file(work.join("link")).unwrap();
                symlink("run.sh", work.join("link")).unwrap();
                std::fs::set_permissions(
                    work.join("run.sh"),
                    std::fs::Permissions::from_mode(0o644),
                )
                .unwrap();
            }
        }
        let tree = repo.stage_all().unwrap().to_string();
        assert_eq!(tree, tree_by_the_git_cli(&git_dir, &work), "last round");
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
}
