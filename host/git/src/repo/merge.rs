//! Merging: bringing fetched commits into the current branch (for push and pull), and
//! finishing (once the agent has resolved the conflicts) or abandoning a merge that stopped on
//! conflicts. The conflicted files are the agent's: they are read and removed through
//! `hearth-content`, which follows no link and never waits on a FIFO.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{Commit, ErrorCode, MergeOptions, Oid, Repository, ResetType};

use super::{Author, CommitInfo, MergeOutcome, RepoState, SessionRepo, answers};
use crate::GitError;

impl SessionRepo {
    /// Merges commit `their` into the current branch. The work tree must hold no uncommitted
    /// changes to tracked files (untracked ones the merge would overwrite stop it too).
    pub(super) fn merge(
        &self,
        their: Oid,
        name: &str,
        author: &Author,
    ) -> Result<MergeOutcome, GitError> {
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
        Ok(answers::commit_info(&head))
    }
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
    GitError::internal(format!("reading the work tree: {e}"))
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
