//! Remote URLs as the policy compares them: parsed the way libgit2 splits them (the authority
//! ends at the first `/`, user info at its last `@`), refusing whatever libgit2 and a WHATWG
//! parser could read differently, and compared by scheme, host, port and path segments — never
//! as strings. A refusal says which part did not match, without echoing user info.

use std::fmt;

use url::Host;

use super::RemoteRuleError;

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
pub(super) enum Mismatch {
    Host,
    Scheme,
    Port,
    User,
    Path,
}

/// A remote URL (or rule) as the policy compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteUrl {
    scheme: Scheme,
    /// An ssh login name: the only user info a rule may hold and a URL may repeat.
    pub(super) user: Option<String>,
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
    pub(super) segments: Vec<String>,
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
    pub(super) fn request(raw: &str) -> Result<Self, String> {
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
    pub(super) fn rule(raw: &str, what: &'static str) -> Result<Self, RemoteRuleError> {
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
    pub(super) fn covers(&self, url: &Self) -> Result<(), Mismatch> {
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
    pub(super) fn refusal(&self, closest: Option<Mismatch>) -> String {
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
    pub(super) fn as_libgit2_formats_it(&self) -> String {
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
