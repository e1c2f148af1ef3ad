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

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::PathBuf;

use git2::{Cred, CredentialType, RemoteCallbacks};
use url::Host;

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
    fn credential_for_request(&self, checked: &str, asked: &str) -> Option<&Credential> {
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

const ALLOWED_ENTRY: &str = "allowed_remotes entry";
const CREDENTIAL_RULE: &str = "credential url_prefix";

/// The transports this libgit2 is built with; ssh's aliases are the same transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Git,
    Ssh,
    File,
}

impl Scheme {
    /// Case-insensitive, as libgit2 picks transports.
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "http" => Self::Http,
            "https" => Self::Https,
            "git" => Self::Git,
            "ssh" | "git+ssh" | "ssh+git" => Self::Ssh,
            "file" => Self::File,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Git => "git",
            Self::Ssh => "ssh",
            Self::File => "file",
        }
    }

    /// The port libgit2 connects to when the URL names none (`file:` has none).
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
            Self::Git => 9418,
            Self::Ssh => 22,
            Self::File => 0,
        }
    }
}

/// Why a string is not a remote URL the policy can compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Malformed {
    #[error("it is empty")]
    Empty,
    #[error("it contains whitespace or a control character")]
    Control,
    #[error("it contains a backslash")]
    Backslash,
    #[error("a query or fragment (`?`, `#`) is not allowed")]
    QueryOrFragment,
    #[error(
        "not a URL: write scheme://host[:port]/path (ssh as ssh://[user@]host/path; the \
         scp-like host:path form is not accepted)"
    )]
    NotUrl,
    #[error("a local path: write a local repository as file:///path")]
    LocalPath,
    #[error("scheme `{0}` is not supported (http, https, git, ssh, file)")]
    Scheme(String),
    #[error("write a file URL as file:///path, with no host")]
    FileUrl,
    #[error("the host is empty")]
    EmptyHost,
    #[error("the host is not a valid host name or address")]
    BadHost,
    #[error("an IPv6 address must be written in brackets, as [::1]")]
    BareIpv6,
    #[error("the port is empty: name it, or leave out the `:`")]
    EmptyPort,
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
    #[error("the path has an empty segment (`//`)")]
    EmptySegment,
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
    #[error("the path has a non-ASCII character: percent-encode it")]
    NonAscii,
    #[error("the path has a malformed percent-encoding")]
    BadPercent,
    #[error("the path has a percent-encoded `.`, `/`, `\\`, `%` or control character")]
    EncodedSeparator,
}

/// How far a rule got in matching a URL, in the order the policy compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mismatch {
    Host,
    Scheme,
    Port,
    User,
    Path,
}

/// A remote URL (or rule) as the policy compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteUrl {
    scheme: Scheme,
    /// An ssh login name: the only user info a rule may hold and a URL may repeat.
    user: Option<String>,
    /// The URL had other user info. Not kept: it may hold a password.
    other_userinfo: bool,
    /// Normalised by the WHATWG host parser (case, IDNA, percent-encoding, IPv4 forms);
    /// `None` for `file:`.
    host: Option<Host>,
    /// The host was written in its normal form, up to ASCII case: what libgit2 resolves is
    /// then what we compared.
    plain_host: bool,
    /// As written, or the scheme's default.
    port: u16,
    /// The path's segments, still percent-encoded; none is empty, `.` or `..`.
    segments: Vec<String>,
    trailing_slash: bool,
}

impl RemoteUrl {
    /// Splits `raw` as libgit2 does, refusing what it or a WHATWG parser could read otherwise.
    fn parse(raw: &str) -> Result<Self, Malformed> {
        if raw.is_empty() {
            return Err(Malformed::Empty);
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Malformed::Control);
        }
        // WHATWG reads `\` as `/` and ends the authority at `?` or `#`; libgit2 does neither.
        if raw.contains('\\') {
            return Err(Malformed::Backslash);
        }
        if raw.contains(['?', '#']) {
            return Err(Malformed::QueryOrFragment);
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            // libgit2 would take `host:path` for ssh, and anything else for a local path.
            return Err(if raw.contains(':') {
                Malformed::NotUrl
            } else {
                Malformed::LocalPath
            });
        };
        let scheme = match Scheme::parse(scheme) {
            Some(scheme) => scheme,
            None if is_token(scheme) => return Err(Malformed::Scheme(scheme.to_owned())),
            None => return Err(Malformed::NotUrl),
        };
        // libgit2 ends the authority at the first `/`, and its user info at the last `@`.
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (segments, trailing_slash) = parse_path(path)?;
        let mut url = Self {
            scheme,
            user: None,
            other_userinfo: false,
            host: None,
            plain_host: true,
            port: scheme.default_port(),
            segments,
            trailing_slash,
        };
        if scheme == Scheme::File {
            if !authority.is_empty() || path.is_empty() {
                return Err(Malformed::FileUrl);
            }
            return Ok(url);
        }
        let hostport = match authority.rsplit_once('@') {
            Some((user, hostport)) => {
                if scheme == Scheme::Ssh && is_user_name(user) {
                    url.user = Some(user.to_owned());
                } else {
                    url.other_userinfo = true;
                }
                hostport
            }
            None => authority,
        };
        let (raw_host, port) = split_host_port(hostport)?;
        let host = Host::parse(raw_host).map_err(|_| Malformed::BadHost)?;
        if matches!(&host, Host::Domain(name) if name.starts_with('-')) {
            return Err(Malformed::BadHost);
        }
        url.plain_host = host.to_string() == raw_host.to_ascii_lowercase();
        url.host = Some(host);
        if let Some(port) = port {
            url.port = parse_port(port)?;
        }
        Ok(url)
    }

    /// A URL a session asks for: it must parse, carry no user info but an ssh user name, and
    /// name its host in normal form. The error is the refusal's message, free of user info.
    fn request(raw: &str) -> Result<Self, String> {
        let url = Self::parse(raw).map_err(|why| format!("{}: {why}", scrub(raw)))?;
        if url.other_userinfo {
            return Err(format!(
                "{url}: user info (`…@` before the host) is not allowed in a remote URL, the \
                 worker supplies credentials; mind that this URL points at host {}, port {}",
                url.host_label(),
                url.port
            ));
        }
        if !url.plain_host {
            return Err(format!(
                "{url}: write the host in its normal form, {}",
                url.host_label()
            ));
        }
        Ok(url)
    }

    /// An operator's rule (`what` names the setting): any host form the parser normalises,
    /// and user info only as an ssh user name.
    fn rule(raw: &str, what: &'static str) -> Result<Self, RemoteRuleError> {
        let bad = |reason: String| RemoteRuleError {
            what,
            rule: scrub(raw),
            reason,
        };
        let url = Self::parse(raw).map_err(|why| bad(why.to_string()))?;
        if url.other_userinfo {
            return Err(bad(
                "user info is not allowed here (secrets go in the credentials); \
                 an ssh rule may name a plain user, as in ssh://git@host/"
                    .into(),
            ));
        }
        Ok(url)
    }

    /// Whether this rule covers `url`; if not, how far the match got.
    fn covers(&self, url: &Self) -> Result<(), Mismatch> {
        if self.host != url.host {
            Err(Mismatch::Host)
        } else if self.scheme != url.scheme {
            Err(Mismatch::Scheme)
        } else if self.port != url.port {
            Err(Mismatch::Port)
        } else if url.other_userinfo || (url.user.is_some() && url.user != self.user) {
            Err(Mismatch::User)
        } else if !url.segments.starts_with(&self.segments) {
            Err(Mismatch::Path)
        } else {
            Ok(())
        }
    }

    /// Why no rule covers this URL, given how far the closest one got.
    fn refusal(&self, closest: Option<Mismatch>) -> String {
        let host = self.host_label();
        match closest {
            None => "no remote is allowed on this worker".into(),
            Some(Mismatch::Host) if self.host.is_none() => {
                "local repositories are not allowed".into()
            }
            Some(Mismatch::Host) => format!("host {host} is not allowed"),
            Some(Mismatch::Scheme) => {
                format!(
                    "scheme {} is not allowed for host {host}",
                    self.scheme.name()
                )
            }
            Some(Mismatch::Port) => format!("port {} is not allowed for host {host}", self.port),
            Some(Mismatch::User) => "this ssh user is not allowed: leave it out, the worker's \
                 credential names the user"
                .into(),
            Some(Mismatch::Path) => {
                format!("path {} is not under an allowed path", self.path())
            }
        }
    }

    fn host_label(&self) -> String {
        self.host
            .as_ref()
            .map_or_else(|| "(local)".into(), ToString::to_string)
    }

    fn path(&self) -> String {
        let slash = if self.trailing_slash && !self.segments.is_empty() {
            "/"
        } else {
            ""
        };
        format!("/{}{slash}", self.segments.join("/"))
    }

    /// This URL as libgit2 hands it to the credential callback of its HTTP transport: the
    /// port only if not the default, an IPv6 host without its brackets.
    fn as_libgit2_formats_it(&self) -> String {
        let host = self.host_label();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = if self.port == self.scheme.default_port() {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        format!("{}://{host}{port}{}", self.scheme.name(), self.path())
    }
}

/// Shown in refusals: the URL as parsed, with the port spelt out and no user info.
impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(
                f,
                "{}://{host}:{}{}",
                self.scheme.name(),
                self.port,
                self.path()
            ),
            None => write!(f, "{}://{}", self.scheme.name(), self.path()),
        }
    }
}

/// `host[:port]` or `[v6][:port]`, split; the port as written.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), Malformed> {
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport.find(']').ok_or(Malformed::BadHost)? + 1;
        let (host, rest) = hostport.split_at(end);
        if rest.is_empty() {
            (host, None)
        } else {
            (
                host,
                Some(rest.strip_prefix(':').ok_or(Malformed::BadHost)?),
            )
        }
    } else if hostport.matches(':').count() > 1 {
        return Err(Malformed::BareIpv6);
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(Malformed::EmptyHost);
    }
    Ok((host, port))
}

/// An explicit port; an empty one is refused rather than read as the default (`host:` used
/// to mean "any port" to the old prefix match).
fn parse_port(port: &str) -> Result<u16, Malformed> {
    if port.is_empty() {
        return Err(Malformed::EmptyPort);
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::BadPort);
    }
    port.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or(Malformed::BadPort)
}

/// The segments of `path` (empty, or starting with `/`), and whether it ends with a `/`.
/// Dot segments and encoded separators are refused: the server, not us, would resolve them.
fn parse_path(path: &str) -> Result<(Vec<String>, bool), Malformed> {
    let Some(body) = path.strip_prefix('/').filter(|body| !body.is_empty()) else {
        return Ok((Vec::new(), false));
    };
    let (body, trailing_slash) = match body.strip_suffix('/') {
        Some(body) => (body, true),
        None => (body, false),
    };
    let segments = body
        .split('/')
        .map(|segment| check_segment(segment).map(|()| segment.to_owned()))
        .collect::<Result<_, _>>()?;
    Ok((segments, trailing_slash))
}

fn check_segment(segment: &str) -> Result<(), Malformed> {
    match segment {
        "" => return Err(Malformed::EmptySegment),
        "." | ".." => return Err(Malformed::DotSegment),
        _ if !segment.is_ascii() => return Err(Malformed::NonAscii),
        _ => {}
    }
    let bytes = segment.as_bytes();
    let digit = |i: usize| bytes.get(i).and_then(|&b| char::from(b).to_digit(16));
    for (i, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'%') {
        let (Some(high), Some(low)) = (digit(i + 1), digit(i + 2)) else {
            return Err(Malformed::BadPercent);
        };
        let decoded = char::from_u32(high * 16 + low).ok_or(Malformed::BadPercent)?;
        if matches!(decoded, '.' | '/' | '\\' | '%') || decoded.is_ascii_control() {
            return Err(Malformed::EncodedSeparator);
        }
    }
    Ok(())
}

/// A plain ssh login name: the only user info a rule may pin and a URL may repeat.
fn is_user_name(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Looks like a scheme name, so it is safe to echo.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// `raw`, which did not parse, fit to show: everything before its last `@` (but a scheme)
/// dropped, since it may be user info with a password, and control characters escaped.
fn scrub(raw: &str) -> String {
    let shown = match raw.rsplit_once('@') {
        None => raw.to_owned(),
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) if is_token(scheme) => format!("{scheme}://…@{after}"),
            _ => format!("…@{after}"),
        },
    };
    shown.escape_debug().to_string()
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

    const TOKEN: &str = "s3cret-token";

    fn token(url_prefix: &str, token: &str) -> Credential {
        Credential {
            url_prefix: url_prefix.into(),
            secret: Secret::Token {
                username: "x-access-token".into(),
                token: token.into(),
            },
        }
    }

    fn access() -> RemoteAccess {
        RemoteAccess {
            allowed: vec![
                "https://git.example/acme".into(),
                "git://127.0.0.1:9418".into(),
            ],
            credentials: vec![token("https://git.example/acme/", TOKEN)],
        }
    }

    /// The review's setup: one allowed origin, and a credential for it.
    fn review() -> RemoteAccess {
        RemoteAccess {
            allowed: vec!["http://git.allowed.invalid".into()],
            credentials: vec![token("http://git.allowed.invalid", TOKEN)],
        }
    }

    fn allowed(access: &RemoteAccess, url: &str) -> bool {
        access.check(url).is_ok()
    }

    /// The refusal's message; panics if `url` is allowed.
    fn refusal(access: &RemoteAccess, url: &str) -> String {
        match access.check(url) {
            Err(GitError::RemoteNotAllowed(message)) => message,
            other => panic!("{url}: {other:?}"),
        }
    }

    /// The token the host would present for `url`, which `check` has passed.
    fn token_for<'a>(access: &'a RemoteAccess, url: &str) -> Option<&'a str> {
        access
            .credential_for_request(url, url)
            .map(|c| match &c.secret {
                Secret::Token { token, .. } => token.as_str(),
                Secret::SshKey { username, .. } => username.as_str(),
            })
    }

    #[test]
    fn the_reviews_empty_user_info_trick_is_refused_and_shown_for_what_it_is() {
        let a = review();
        let url = "http://git.allowed.invalid:@127.0.0.1:4242/acme/repo.git";
        let message = refusal(&a, url);
        assert!(message.contains("user info"), "{message}");
        assert!(
            message.starts_with("http://127.0.0.1:4242/acme/repo.git"),
            "{message}"
        );
        assert!(message.contains("host 127.0.0.1, port 4242"), "{message}");
        assert!(!message.contains("git.allowed.invalid"), "{message}");
        assert_eq!(token_for(&a, url), None);
        // The credential is still there for the real thing.
        assert!(allowed(&a, "http://git.allowed.invalid/acme/repo.git"));
        assert_eq!(
            token_for(&a, "http://git.allowed.invalid/acme/repo.git"),
            Some(TOKEN)
        );
    }

    #[test]
    fn user_info_is_refused_in_every_form_without_echoing_it() {
        let a = review();
        for url in [
            "http://git.allowed.invalid@127.0.0.1/x",
            "http://user:hunter2@git.allowed.invalid/x",
            "http://:@git.allowed.invalid/x",
            "http://@git.allowed.invalid/x",
            "http://a@b@git.allowed.invalid/x",
        ] {
            let message = refusal(&a, url);
            assert!(message.contains("user info"), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(
                !message.contains("@git") && !message.contains("@127"),
                "{message}"
            );
            assert_eq!(token_for(&a, url), None, "{url}");
        }
        let message = refusal(&a, "http://git.allowed.invalid@127.0.0.1/x");
        assert!(message.contains("host 127.0.0.1, port 80"), "{message}");
        assert!(!message.contains("git.allowed.invalid"), "{message}");
        // Unparseable, with a password in it: the user info is still dropped.
        let message = refusal(&a, "http://bob:hun ter2@git.allowed.invalid/x");
        assert!(!message.contains("hun"), "{message}");
    }

    #[test]
    fn hosts_and_ports_must_be_exactly_allowed() {
        let a = review();
        let message = refusal(&a, "http://git.allowed.invalid.evil.com/x");
        assert!(
            message.contains("host git.allowed.invalid.evil.com is not allowed"),
            "{message}"
        );
        let message = refusal(&a, "http://git.allowed.invalid:8080/x");
        assert!(message.contains("port 8080 is not allowed"), "{message}");
        assert_eq!(token_for(&a, "http://git.allowed.invalid:8080/x"), None);
        let message = refusal(&a, "https://git.allowed.invalid/x");
        assert!(message.contains("scheme https is not allowed"), "{message}");
        for bad in [
            "http://evil.git.allowed.invalid/x",
            "http://git.allowed.invalid./x",
            "http://127.0.0.1/git.allowed.invalid/x",
        ] {
            assert!(!allowed(&a, bad), "{bad}");
        }
        // The default port, explicit or not; any case in scheme and host.
        for ok in [
            "http://git.allowed.invalid:80/x",
            "http://git.allowed.invalid",
            "http://git.allowed.invalid/",
            "HTTP://GIT.ALLOWED.INVALID/acme/x",
            "Http://Git.Allowed.Invalid:80/acme/x",
        ] {
            assert!(allowed(&a, ok), "{ok}: {:?}", a.check(ok));
            assert_eq!(token_for(&a, ok), Some(TOKEN), "{ok}");
        }
    }

    #[test]
    fn paths_match_on_segment_boundaries_only() {
        let a = access();
        for ok in [
            "https://git.example/acme",
            "https://git.example/acme/",
            "https://git.example/acme/repo.git",
            "https://git.example:443/acme/sub/repo.git",
            "https://git.example/acme/a%20b.git",
        ] {
            assert!(allowed(&a, ok), "{ok}: {:?}", a.check(ok));
        }
        for bad in [
            "https://git.example/acme-evil/x",
            "https://git.example/acmex",
            "https://git.example/ACME/x",
            "https://git.example/other",
            "https://git.example/",
            "https://git.example//acme/x",
            "https://git.example/acme//x",
            "https://git.example/acme/../other",
            "https://git.example/acme/./x",
            "https://git.example/acme/..",
            "https://git.example/acme/%2e%2e/other",
            "https://git.example/acme/%2E%2e",
            "https://git.example/acme/.%2e/other",
            "https://git.example/acme%2Fother",
            "https://git.example/acme%2f..%2fother",
            "https://git.example/acme/%5c..",
            "https://git.example/acme/%252e%252e",
            "https://git.example/acme/%00x",
            "https://git.example/acme/%zz",
            "https://git.example/acme/x%2",
            "https://git.example/acme/é",
        ] {
            assert!(!allowed(&a, bad), "{bad}");
        }
        let message = refusal(&a, "https://git.example/acme-evil/x");
        assert!(message.contains("path /acme-evil/x"), "{message}");
        let message = refusal(&a, "https://git.example/acme/../other");
        assert!(message.contains("`..`"), "{message}");
    }

    #[test]
    fn a_trailing_slash_in_a_rule_changes_nothing() {
        for rule in ["https://git.example/acme/", "https://git.example/acme"] {
            let a = RemoteAccess {
                allowed: vec![rule.into()],
                credentials: Vec::new(),
            };
            assert!(allowed(&a, "https://git.example/acme"), "{rule}");
            assert!(allowed(&a, "https://git.example/acme/x.git"), "{rule}");
            assert!(!allowed(&a, "https://git.example/acmex/x.git"), "{rule}");
            assert!(!allowed(&a, "https://git.example/acme-evil"), "{rule}");
        }
    }

    #[test]
    fn ipv6_literals_are_compared_as_addresses_and_written_plainly() {
        let a = RemoteAccess {
            allowed: vec!["git://[0:0::1]/".into()],
            credentials: vec![token("http://[::1]:8080/acme", TOKEN)],
        };
        assert!(allowed(&a, "git://[::1]/x.git"));
        assert!(allowed(&a, "git://[::1]:9418/x.git"));
        for bad in [
            "git://[::2]/x.git",
            "git://[::1]:9419/x.git",
            "git://[0:0::1]/x.git",
            "git://[::1%25lo]/x.git",
            "git://[::1/x.git",
            "git://[::1]x/x.git",
            "git://::1/x.git",
            "git://[::ffff:127.0.0.1]/x.git",
        ] {
            assert!(!allowed(&a, bad), "{bad}");
        }
        let message = refusal(&a, "git://::1/x.git");
        assert!(message.contains("brackets"), "{message}");
        let message = refusal(&a, "git://[::2]/x.git");
        assert!(message.contains("host [::2]"), "{message}");
        // libgit2 writes the URL without brackets for the HTTP credential callback.
        let b = RemoteAccess {
            allowed: vec!["http://[::1]:8080/".into()],
            ..a
        };
        let url = "http://[::1]:8080/acme/x.git";
        assert!(allowed(&b, url));
        let asked = b.credential_for_request(url, "http://::1:8080/acme/x.git");
        assert!(asked.is_some());
    }

    #[test]
    fn hosts_must_be_written_in_normal_form() {
        let a = RemoteAccess {
            allowed: vec!["http://127.0.0.1/".into(), "https://bücher.example/".into()],
            credentials: Vec::new(),
        };
        assert!(allowed(&a, "http://127.0.0.1/x"));
        assert!(allowed(&a, "https://xn--bcher-kva.example/x"));
        assert!(allowed(&a, "https://XN--BCHER-KVA.example/x"));
        for bad in [
            "http://0x7f.0.0.1/x",
            "http://2130706433/x",
            "http://127.1/x",
            "http://0177.0.0.1/x",
            "http://127%2e0.0.1/x",
            "https://bücher.example/x",
            "https://BÜCHER.example/x",
        ] {
            let message = refusal(&a, bad);
            assert!(message.contains("normal form"), "{bad}: {message}");
        }
        let message = refusal(&a, "http://0x7f.0.0.1/x");
        assert!(message.contains("127.0.0.1"), "{message}");
    }

    #[test]
    fn backslashes_whitespace_controls_and_other_syntax_are_refused() {
        let a = review();
        for bad in [
            "http://git.allowed.invalid\\@127.0.0.1/x",
            "http://git.allowed.invalid/acme\\..\\x",
            " http://git.allowed.invalid/x",
            "http://git.allowed.invalid/x ",
            "http://git.allowed.invalid/x\n",
            "http://git.allowed.invalid/a b",
            "http://git.allowed.invalid/a\tb",
            "http://git.allowed.invalid/a\0b",
            "http://git.allowed.invalid/a\u{7f}b",
            "http://git.allowed.invalid/a\u{a0}b",
            "http://git.allowed.invalid?@127.0.0.1/x",
            "http://127.0.0.1#@git.allowed.invalid/x",
            "http://git.allowed.invalid/x?y",
            "http:///git.allowed.invalid/x",
            "http:/git.allowed.invalid/x",
            "http:git.allowed.invalid/x",
            "//git.allowed.invalid/x",
            "-http://git.allowed.invalid/x",
            "ftp://git.allowed.invalid/x",
            "",
        ] {
            assert!(!allowed(&a, bad), "{bad:?}");
            assert_eq!(token_for(&a, bad), None, "{bad:?}");
        }
        let message = refusal(&a, "http://git.allowed.invalid/x\n");
        assert!(
            message.contains("\\n"),
            "control characters are escaped: {message}"
        );
        assert!(refusal(&a, "http://a\\@b/").contains("backslash"));
    }

    #[test]
    fn empty_hosts_and_ports_are_refused() {
        let a = review();
        for (bad, why) in [
            ("http:///x", "host is empty"),
            ("http://", "host is empty"),
            ("http://:80/x", "host is empty"),
            ("http://git.allowed.invalid:/x", "port is empty"),
            ("http://git.allowed.invalid:0/x", "port is not a number"),
            ("http://git.allowed.invalid:65536/x", "port is not a number"),
            ("http://git.allowed.invalid:+80/x", "port is not a number"),
            (
                "http://git.allowed.invalid:000080/x",
                "port is not a number",
            ),
        ] {
            let message = refusal(&a, bad);
            assert!(message.contains(why), "{bad}: {message}");
        }
    }

    #[test]
    fn scp_like_addresses_and_local_paths_are_refused_with_a_hint() {
        let a = RemoteAccess {
            allowed: vec![
                "ssh://git@github.com/acme/".into(),
                "file:///srv/git".into(),
            ],
            credentials: Vec::new(),
        };
        assert!(refusal(&a, "git@github.com:acme/x.git").contains("ssh://"));
        assert!(refusal(&a, "/srv/git/x.git").contains("file:///path"));
        assert!(allowed(&a, "file:///srv/git/x.git"));
        for bad in [
            "file:///srv/gitx",
            "file:///srv/git/../x",
            "file://localhost/srv/git/x",
            "file:////srv/git/x",
            "file://",
        ] {
            assert!(!allowed(&a, bad), "{bad}");
        }
        assert!(refusal(&a, "file:///etc").contains("path /etc"));
        let closed = review();
        assert!(refusal(&closed, "file:///etc").contains("local repositories"));
    }

    #[test]
    fn an_ssh_user_is_allowed_only_as_the_rule_names_it() {
        let a = RemoteAccess {
            allowed: vec!["ssh://git@github.com/acme/".into()],
            credentials: Vec::new(),
        };
        for ok in [
            "ssh://git@github.com/acme/x.git",
            "ssh://github.com/acme/x.git",
            "git+ssh://git@github.com:22/acme/x.git",
        ] {
            assert!(allowed(&a, ok), "{ok}: {:?}", a.check(ok));
        }
        assert!(refusal(&a, "ssh://root@github.com/acme/x.git").contains("ssh user"));
        for bad in [
            "ssh://git:pw@github.com/acme/x.git",
            "ssh://git@evil@github.com/acme/x.git",
            "ssh://@github.com/acme/x.git",
            "ssh://-oProxyCommand=x@github.com/acme/x.git",
        ] {
            assert!(refusal(&a, bad).contains("user info"), "{bad}");
        }
        assert!(!allowed(&a, "ssh://-oproxycommand=x/acme/x.git"));
    }

    #[test]
    fn credentials_follow_the_same_rules() {
        let mut a = access();
        a.allowed.push("https://git.example:8443/acme".into());
        a.allowed.push("http://git.example/acme".into());
        a.credentials
            .push(token("https://git.example/acme/special", "special"));
        assert_eq!(token_for(&a, "https://git.example/acme/r.git"), Some(TOKEN));
        assert_eq!(token_for(&a, "https://git.example/acme"), Some(TOKEN));
        assert_eq!(
            token_for(&a, "HTTPS://GIT.EXAMPLE:443/acme/r.git"),
            Some(TOKEN)
        );
        assert_eq!(
            token_for(&a, "https://git.example/acme/special/r.git"),
            Some("special"),
            "the most specific rule wins"
        );
        assert_eq!(
            token_for(&a, "https://git.example/acme/specialx/r.git"),
            Some(TOKEN)
        );
        for none in [
            "https://git.example:8443/acme/r.git",
            "http://git.example/acme/r.git",
            "https://git.example/acme-evil/r.git",
            "https://git.example/acme/../r.git",
            "https://x@git.example/acme/r.git",
            "https://git.example.evil/acme/r.git",
            "git://127.0.0.1:9418/acme/r.git",
        ] {
            assert_eq!(token_for(&a, none), None, "{none}");
        }
        // After a redirect libgit2 asks for the URL it was sent to: only its own credential.
        let checked = "https://git.example/acme/r.git";
        let asks = |asked: &str| a.credential_for_request(checked, asked).is_some();
        assert!(asks(checked));
        assert!(asks("https://git.example/acme/moved.git/info/refs"));
        assert!(!asks("https://evil.example/acme/r.git"));
        assert!(!asks("https://git.example:8443/acme/r.git"));
        assert!(!asks("https://git.example/other/r.git"));
        assert!(!asks("https://git.example/acme/../r.git"));
        assert!(!asks("https://u:p@git.example/acme/r.git"));
        assert!(!asks("::1"));
    }

    #[test]
    fn bad_rules_are_config_errors_that_say_why() {
        assert_eq!(access().validate(), Ok(()));
        assert_eq!(RemoteAccess::default().validate(), Ok(()));
        for (rule, why) in [
            ("git://127.0.0.1:", "port is empty"),
            ("https://user:pw@git.example/", "user info"),
            ("https://tok@git.example/", "user info"),
            ("ftp://git.example/", "scheme `ftp` is not supported"),
            ("https://git.example/a/../b", "`..`"),
            ("git@github.com:acme/", "scp-like"),
            ("/srv/git", "file:///path"),
            ("", "empty"),
            ("https://", "host is empty"),
            ("https://git.example/?x", "query"),
            (" https://git.example/", "whitespace"),
        ] {
            let a = RemoteAccess {
                allowed: vec![rule.into()],
                credentials: Vec::new(),
            };
            let error = a.validate().expect_err(rule).to_string();
            assert!(error.starts_with("allowed_remotes entry"), "{error}");
            assert!(error.contains(why), "{rule}: {error}");
            assert!(!error.contains("pw") && !error.contains("tok@"), "{error}");
            // A broken list allows nothing.
            assert!(!allowed(&a, "https://git.example/a"), "{rule}");
        }
        let a = RemoteAccess {
            allowed: Vec::new(),
            credentials: vec![token("https://git.example/a/%2e%2e", TOKEN)],
        };
        let error = a.validate().expect_err("bad credential rule").to_string();
        assert!(error.starts_with("credential url_prefix"), "{error}");
        // Rules may be written in any form the parser normalises.
        let a = RemoteAccess {
            allowed: vec![
                "HTTPS://Git.Example:443/acme/".into(),
                "https://bücher.example".into(),
                "http://127.1".into(),
                "ssh://git@github.com/".into(),
                "file:///srv/git/".into(),
            ],
            credentials: Vec::new(),
        };
        assert_eq!(a.validate(), Ok(()));
        assert!(allowed(&a, "https://git.example/acme/x"));
        assert!(allowed(&a, "http://127.0.0.1/x"));
    }

    #[test]
    fn remotes_are_matched_at_boundaries() {
        let a = access();
        for ok in [
            "https://git.example/acme",
            "https://git.example/acme/repo.git",
            "git://127.0.0.1:9418/repo.git",
            "git://127.0.0.1/repo.git",
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
            "git://127.0.0.1:9419/x",
            "https://git.example/acme/ x",
        ] {
            assert!(
                matches!(a.check(bad), Err(GitError::RemoteNotAllowed(_))),
                "{bad}"
            );
        }
        assert!(RemoteAccess::default().check("https://x/").is_err());
        assert!(refusal(&RemoteAccess::default(), "https://x/").contains("no remote"));
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
