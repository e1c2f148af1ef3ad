//! Which remotes a session may reach, and the credentials the host uses for them.
//!
//! The operator lists remotes as URLs (`https://github.com/acme/`); a session can clone, fetch
//! and push only there, so an agent cannot turn the worker into a client of arbitrary hosts (or
//! of local paths). Credentials are given to libgit2 only in its credential callback: they are
//! never written to the repository's config, never put in a URL, and scrubbed from every
//! message this crate returns.
//!
//! Rules and requested URLs are *parsed* and compared by scheme, host, port and path segments,
//! never as strings: `http://git.allowed.invalid:@127.0.0.1/` starts with an allowed prefix but
//! points at 127.0.0.1. The parser splits a URL the way libgit2 does (the authority ends at the
//! first `/`, user info at its last `@`), and refuses whatever libgit2 and a WHATWG parser could
//! read differently (backslashes, `?`, `#`, whitespace, hosts not written in their normal form),
//! so the host we check is the host libgit2 connects to.
//!
//! This file holds the policy and the question it answers (may a session use this URL?);
//! beside it:
//! - `urls`: how a URL or a rule is parsed and compared, and why one is refused;
//! - `credentials`: the secrets, which remote gets which, how libgit2 receives them (its
//!   callbacks, and only there), and how they are scrubbed from messages.

use crate::GitError;

mod credentials;
mod urls;

pub use credentials::{Credential, Secret, display_url};
use urls::RemoteUrl;

/// The operator's remote policy.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoteAccess {
    /// Remotes sessions may use, as rules: `scheme://host[:port][/path]` allows exactly that
    /// scheme, host and port (the scheme's default when left out), at or under that path on a
    /// segment boundary. Empty: no remote at all. Check them at start-up with
    /// [`RemoteAccess::validate`].
    pub allowed: Vec<String>,
    pub credentials: Vec<Credential>,
}

/// An `allowed_remotes` entry or a credential's `url_prefix` that is not a rule the policy can
/// compare: the worker should refuse to start with one rather than guess what was meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{rule}`: {reason}")]
pub struct RemoteRuleError {
    what: &'static str,
    /// The rule as written, without any user info.
    rule: String,
    reason: String,
}

const ALLOWED_ENTRY: &str = "allowed_remotes entry";
const CREDENTIAL_RULE: &str = "credential url_prefix";

impl RemoteAccess {
    /// Parses every allowed entry and credential rule, so a bad one stops the worker at start-up
    /// instead of refusing every remote later.
    pub fn validate(&self) -> Result<(), RemoteRuleError> {
        for raw in &self.allowed {
            RemoteUrl::rule(raw, ALLOWED_ENTRY)?;
        }
        for credential in &self.credentials {
            RemoteUrl::rule(&credential.url_prefix, CREDENTIAL_RULE)?;
        }
        Ok(())
    }

    /// Refuses `url` unless an allowed rule covers it, saying why: user info, the host (as
    /// parsed, so a `user@host` trick shows where it really leads), the port or the path.
    pub fn check(&self, url: &str) -> Result<(), GitError> {
        let url = RemoteUrl::request(url).map_err(GitError::RemoteNotAllowed)?;
        self.allows(&url).map_err(GitError::RemoteNotAllowed)
    }

    /// Whether an allowed rule covers `url`; if none does, why not (for the rule that came
    /// closest), as the message of the refusal.
    fn allows(&self, url: &RemoteUrl) -> Result<(), String> {
        let mut closest = None;
        for raw in &self.allowed {
            // A broken rule allows nothing; `validate` reports it at start-up.
            let rule = RemoteUrl::rule(raw, ALLOWED_ENTRY)
                .map_err(|e| format!("{url}: the worker's remote policy is broken ({e})"))?;
            match rule.covers(url) {
                Ok(()) => return Ok(()),
                Err(mismatch) => closest = closest.max(Some(mismatch)),
            }
        }
        Err(format!("{url}: {}", url.refusal(closest)))
    }
}

#[cfg(test)]
mod tests;
