//! The secrets the host presents to remotes: which remote gets which, how libgit2 receives
//! them (in its credential callback, and nowhere else; never after a redirect to a URL the
//! policy does not allow), and how they are scrubbed from every message that leaves the crate.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::PathBuf;

use git2::{Cred, CredentialType, RemoteCallbacks};

use super::urls::RemoteUrl;
use super::{CREDENTIAL_RULE, RemoteAccess};
use crate::GitError;

/// A secret the host presents to a remote. Serialisable only to reach the `hearth-git` helper
/// over its stdin pipe.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
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

/// A secret and the remotes it is for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    /// The remotes this secret is presented to, written as a rule like the allowed ones:
    /// exactly this scheme, host and port, at or under this path (`https://github.com/acme/`).
    pub url_prefix: String,
    pub secret: Secret,
}

/// libgit2 asks again after a refused credential; a refused secret is not worth a second try.
const MAX_CREDENTIAL_ATTEMPTS: u32 = 2;

impl RemoteAccess {
    /// The ssh key files of the credentials: the git helper may read these (and only these of
    /// the host's secrets) when it talks to a remote.
    pub fn key_files(&self) -> Vec<&std::path::Path> {
        self.credentials
            .iter()
            .filter_map(|c| match &c.secret {
                Secret::SshKey { private_key, .. } => Some(private_key.as_path()),
                Secret::Token { .. } => None,
            })
            .collect()
    }

    /// The credential for `url`: the most specific rule (longest path, then a named ssh user)
    /// that covers it; the first configured among equals.
    fn credential_for(&self, url: &RemoteUrl) -> Option<&Credential> {
        self.credentials
            .iter()
            .rev()
            .filter_map(|c| Some((c, RemoteUrl::rule(&c.url_prefix, CREDENTIAL_RULE).ok()?)))
            .filter(|(_, rule)| rule.covers(url).is_ok())
            .max_by_key(|(_, rule)| (rule.segments.len(), rule.user.is_some()))
            .map(|(credential, _)| credential)
    }

    /// The credential for a request libgit2 makes while working on `checked` (a URL `check`
    /// passed). `asked` is the URL libgit2 is about to authenticate to: after an HTTP redirect it
    /// is another one, and gets a credential only if it is allowed and has its own.
    pub(super) fn credential_for_request(&self, checked: &str, asked: &str) -> Option<&Credential> {
        let checked = RemoteUrl::request(checked).ok()?;
        let target = if asked == checked.as_libgit2_formats_it() {
            checked
        } else {
            RemoteUrl::request(asked).ok()?
        };
        self.allows(&target).ok()?;
        self.credential_for(&target)
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
        callbacks.credentials(move |asked, username_from_url, allowed| {
            attempts.set(attempts.get() + 1);
            let Some(credential) = self.credential_for_request(url, asked) else {
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
