//! Exchange with a remote: the session's remotes, fetch, push and pull — the only operations
//! that reach the network. A remote's URL is checked against the operator's policy every time
//! it is used, and every transfer goes through the policy's callbacks (its credentials, no
//! redirect). A remote that moved is merged (see `merge`) before a push.

use std::cell::RefCell;

use git2::{AutotagOption, ErrorCode, FetchOptions, Oid, PushOptions};

use super::{Author, MergeOutcome, ORIGIN, PushOutcome, RemoteInfo, SessionRepo, check_branch};
use crate::GitError;
use crate::remote::{RemoteAccess, display_url};

/// A push retries this often when the remote moves between our fetch and our push.
const MAX_PUSH_ATTEMPTS: usize = 3;

impl SessionRepo {
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

    // -----------------------------------------------------------------------------------------
    // Fetching, pushing, pulling

    /// A clone's first contact: fetches every branch of `origin` into its tracking refs (never
    /// following a redirect, like every exchange) and answers the remote's default branch and
    /// its branches.
    pub(super) fn fetch_heads(
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
}

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

fn is_not_fast_forward(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("non-fast-forward")
        || reason.contains("fetch first")
        || reason.contains("stale")
}
