//! Which remotes a session may reach, and the credentials the host uses for them.
//!
//! The operator lists URL prefixes; a session can clone, fetch and push only there, so an agent
//! cannot turn the worker into a client of arbitrary hosts (or of local paths). Credentials are
//! matched by URL prefix as well and given to libgit2 only in its credential callback: they are
//! never written to the repository's config, never put in a URL, and scrubbed from every message
//! this crate returns.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::PathBuf;

use git2::{Cred, CredentialType, RemoteCallbacks};

use crate::GitError;

/// A secret the host presents to a remote.
#[derive(Clone)]
pub enum Secret {
    /// An https token, sent as the password of HTTP basic auth (`x-access-token` is GitHub's
    /// customary user name).
    Token { username: String, token: String },
    /// An ssh private key file on the host.
    SshKey {
        username: String,
        private_key: PathBuf,
        passphrase: Option<String>,
    },
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token { username, .. } => write!(f, "Token({username}, [redacted])"),
            Self::SshKey {
                username,
                private_key,
                ..
            } => write!(f, "SshKey({username}, {})", private_key.display()),
        }
    }
}

/// A secret and the URLs it is for.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Used for remote URLs starting with this (e.g. `https://github.com/acme/`).
    pub url_prefix: String,
    pub secret: Secret,
}

/// The operator's remote policy.
#[derive(Debug, Clone, Default)]
pub struct RemoteAccess {
    /// URL prefixes sessions may use. Empty: no remote at all.
    pub allowed: Vec<String>,
    pub credentials: Vec<Credential>,
}

/// libgit2 asks again after a refused credential; a refused secret is not worth a second try.
const MAX_CREDENTIAL_ATTEMPTS: u32 = 2;

impl RemoteAccess {
    /// Refuses `url` unless it is on the allowed list. A prefix matches at a path boundary
    /// (`https://host/acme` does not allow `https://host/acme-evil`), and URLs with dot segments
    /// or encoded separators are refused outright: the server, not us, would resolve them.
    pub fn check(&self, url: &str) -> Result<(), GitError> {
        let shown = display_url(url);
        let lower = url.to_ascii_lowercase();
        let suspicious = url.chars().any(|c| c.is_control() || c.is_whitespace())
            || url.split(['/', '\\']).any(|seg| seg == ".." || seg == ".")
            || lower.contains("%2e")
            || lower.contains("%2f")
            || lower.contains("%5c")
            || url.starts_with('-');
        if suspicious || !self.allowed.iter().any(|p| prefix_matches(p, url)) {
            return Err(GitError::RemoteNotAllowed(shown));
        }
        Ok(())
    }

    fn credential_for(&self, url: &str) -> Option<&Credential> {
        self.credentials
            .iter()
            .filter(|c| prefix_matches(&c.url_prefix, url))
            .max_by_key(|c| c.url_prefix.len())
    }

    /// Scrubs every configured secret, and any user info in URLs, from `message`.
    pub fn redact(&self, message: &str) -> String {
        let mut out = display_url(message);
        for credential in &self.credentials {
            let secrets = match &credential.secret {
                Secret::Token { token, .. } => vec![token],
                Secret::SshKey { passphrase, .. } => passphrase.iter().collect(),
            };
            for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }

    /// A remote failure, scrubbed.
    pub(crate) fn remote_error(&self, remote: &str, e: &git2::Error) -> GitError {
        GitError::Remote {
            remote: display_url(remote),
            message: self.redact(e.message()),
        }
    }

    /// Callbacks for one remote operation: the credentials for `url`, and a record of the
    /// first reference the remote refused (libgit2 reports a refused push only here).
    pub(crate) fn callbacks<'a>(
        &'a self,
        url: &'a str,
        refused: &'a RefCell<Option<String>>,
    ) -> RemoteCallbacks<'a> {
        let attempts = Cell::new(0u32);
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |_url, username_from_url, allowed| {
            attempts.set(attempts.get() + 1);
            let Some(credential) = self.credential_for(url) else {
                return Err(git2::Error::from_str(
                    "the remote asks for credentials and none are configured for it",
                ));
            };
            if attempts.get() > MAX_CREDENTIAL_ATTEMPTS {
                return Err(git2::Error::from_str(
                    "the remote refused the configured credentials",
                ));
            }
            match &credential.secret {
                Secret::Token { username, token }
                    if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
                {
                    Cred::userpass_plaintext(username, token)
                }
                Secret::SshKey { username, .. } if allowed.contains(CredentialType::USERNAME) => {
                    Cred::username(username_from_url.unwrap_or(username))
                }
                Secret::SshKey {
                    username,
                    private_key,
                    passphrase,
                } if allowed.contains(CredentialType::SSH_KEY) => Cred::ssh_key(
                    username_from_url.unwrap_or(username),
                    None,
                    private_key,
                    passphrase.as_deref(),
                ),
                _ => Err(git2::Error::from_str(
                    "the configured credential does not fit what the remote asks for",
                )),
            }
        });
        callbacks.push_update_reference(move |reference, status| {
            if let Some(status) = status {
                refused
                    .borrow_mut()
                    .get_or_insert_with(|| format!("{reference}: {status}"));
            }
            Ok(())
        });
        callbacks
    }
}

/// `prefix` matches `url` exactly or up to a separator.
fn prefix_matches(prefix: &str, url: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    match url.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => prefix.ends_with(['/', ':']) || rest.starts_with(['/', ':']),
        None => false,
    }
}

/// `text` with the user info of every URL in it removed (`https://u:p@host/` → `https://host/`).
pub fn display_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(userinfo_end) => out.push_str(&authority[userinfo_end + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> RemoteAccess {
        RemoteAccess {
            allowed: vec!["https://git.example/acme".into(), "git://127.0.0.1:".into()],
            credentials: vec![Credential {
                url_prefix: "https://git.example/acme/".into(),
                secret: Secret::Token {
                    username: "x-access-token".into(),
                    token: "s3cret-token".into(),
                },
            }],
        }
    }

    #[test]
    fn remotes_are_matched_at_boundaries() {
        let a = access();
        for ok in [
            "https://git.example/acme",
            "https://git.example/acme/repo.git",
            "git://127.0.0.1:9418/repo.git",
        ] {
            assert!(a.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://git.example/acme-evil/repo.git",
            "https://git.example/acme/../other/repo.git",
            "https://git.example/acme/%2e%2e/other",
            "https://git.example/other",
            "/etc",
            "file:///etc",
            "git://127.0.0.2:9418/x",
            "https://git.example/acme/ x",
        ] {
            assert!(
                matches!(a.check(bad), Err(GitError::RemoteNotAllowed(_))),
                "{bad}"
            );
        }
        assert!(RemoteAccess::default().check("https://x/").is_err());
    }

    #[test]
    fn secrets_and_user_info_are_scrubbed() {
        let a = access();
        let message = a.redact(
            "failed for https://bob:hunter2@git.example/acme/r.git with s3cret-token inside",
        );
        assert_eq!(
            message,
            "failed for https://git.example/acme/r.git with [redacted] inside"
        );
        assert!(!format!("{a:?}").contains("s3cret-token"));
        assert_eq!(display_url("no urls here"), "no urls here");
    }
}
