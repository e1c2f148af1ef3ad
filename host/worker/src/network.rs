//! A session's network: the namespace its runs share (loopback only), the egress proxy that
//! listens in it when the session may reach out, and connections into it for forwarded ports.
//! No socket of a session is ever on the host's own network: the worker makes them from a
//! thread inside the namespace (`hearth_python_runner::netns`) and uses them from outside.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_egress::{Credential, EgressPolicy, HostPattern, Proxy};
use hearth_python_runner::netns;
use serde::Deserialize;

/// Connections all sessions' egress proxies hold together (each proxy also has its own bound,
/// `hearth_egress::proxy::MAX_CONNECTIONS`).
pub const PROXIED_CONNECTIONS: usize = 1024;

/// Where the egress proxy listens inside every session namespace that has one.
pub const PROXY_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), PROXY_PORT);
const PROXY_PORT: u16 = 3128;

/// `[egress]`: what sessions' programs may reach through the worker's proxy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// What every session may reach unless it asks for less at create: `host` (ports 80 and
    /// 443), `host:port`, `*.domain`, or an IP literal — the only way to let a program reach a
    /// loopback, private or link-local address. Empty (the default): no egress at all.
    pub allow: Vec<String>,
    /// Headers the proxy adds to plain-HTTP requests for one service (see
    /// `hearth_egress::Credential`): the program never sees them.
    pub credentials: Vec<EgressCredential>,
}

/// One `[[egress.credentials]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressCredential {
    /// The service's host, exactly.
    pub host: String,
    /// Its port [default: 443 with `tls`, else 80].
    pub port: Option<u16>,
    /// e.g. `Authorization`.
    pub header: String,
    /// The header's value; or `value_env`, the variable of the worker's environment holding it.
    pub value: Option<String>,
    pub value_env: Option<String>,
    /// Speak TLS to the service (the program still asks in plain HTTP, to the proxy).
    #[serde(default)]
    pub tls: bool,
}

impl EgressConfig {
    /// The operator's policy, or why the configuration is wrong.
    pub fn policy(&self) -> Result<EgressPolicy, String> {
        let allow = parse_allow(&self.allow)?;
        let credentials = self
            .credentials
            .iter()
            .map(EgressCredential::credential)
            .collect::<Result<_, _>>()?;
        Ok(EgressPolicy { allow, credentials })
    }

    /// The policy of a session that asked for `asked` (`None`: the operator's list): each entry
    /// must be covered by one of the operator's.
    pub fn session_policy(&self, asked: Option<&[String]>) -> Result<EgressPolicy, String> {
        let operator = self.policy()?;
        let Some(asked) = asked else {
            return Ok(operator);
        };
        let allow = parse_allow(asked)?;
        if let Some(outside) = allow
            .iter()
            .find(|pattern| !operator.allow.iter().any(|outer| outer.covers(pattern)))
        {
            return Err(format!(
                "`{outside}` is not within the worker's egress allow-list ({})",
                match self.allow.is_empty() {
                    true => "empty: this worker gives programs no network".to_owned(),
                    false => self.allow.join(", "),
                }
            ));
        }
        Ok(EgressPolicy {
            allow,
            credentials: operator.credentials,
        })
    }
}

fn parse_allow(entries: &[String]) -> Result<Vec<HostPattern>, String> {
    let mut patterns = Vec::new();
    for entry in entries {
        patterns.extend(HostPattern::parse_entry(entry)?);
    }
    Ok(patterns)
}

impl EgressCredential {
    fn credential(&self) -> Result<Credential, String> {
        let value = match (&self.value, &self.value_env) {
            (Some(value), None) => value.clone(),
            (None, Some(name)) => std::env::var(name)
                .map_err(|_| format!("credentials for {}: ${name} is not set", self.host))?,
            _ => {
                return Err(format!(
                    "credentials for {}: give exactly one of `value` or `value_env`",
                    self.host
                ));
            }
        };
        let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
            format!(
                "credentials for {}: the value is not a header value",
                self.host
            )
        })?;
        value.set_sensitive(true);
        Ok(Credential {
            host: self.host.to_ascii_lowercase(),
            port: self.port.unwrap_or(if self.tls { 443 } else { 80 }),
            header: http::HeaderName::from_bytes(self.header.as_bytes()).map_err(|_| {
                format!(
                    "credentials for {}: `{}` is not a header name",
                    self.host, self.header
                )
            })?,
            value,
            tls: self.tls,
        })
    }
}

/// A session's namespace, with its proxy when it has one. Dropping it stops the proxy and
/// removes the namespace (what still runs in it keeps it until it ends).
pub struct SessionNetwork {
    path: PathBuf,
    proxy: Option<tokio::task::AbortHandle>,
}

impl SessionNetwork {
    /// Makes the namespace bound at `path`, and the proxy in it when `policy` allows anything.
    /// Blocking; call from a thread that may spawn on the worker's runtime.
    pub fn open(
        path: PathBuf,
        session: &str,
        policy: EgressPolicy,
        shared: Arc<tokio::sync::Semaphore>,
    ) -> Result<Self, netns::NetnsError> {
        netns::create(&path)?;
        let mut network = Self { path, proxy: None };
        if !policy.allow.is_empty() {
            let listener = netns::listen(&network.path, PROXY_ADDRESS)?;
            listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map(|listener| {
                    let local = Arc::new(SessionLoopback(network.path.clone()));
                    let proxy = Proxy::new(session.to_owned(), Arc::new(policy))
                        .with_local(local)
                        .with_shared_limit(shared);
                    network.proxy = Some(tokio::spawn(proxy.serve(listener)).abort_handle());
                })
                .map_err(|error| netns::NetnsError::Io {
                    what: "serving the egress proxy",
                    error,
                })?;
        }
        Ok(network)
    }

    /// The namespace's file, which a run joins.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What a run's environment gets: the usual proxy variables, when there is a proxy.
    pub fn proxy_env(&self) -> BTreeMap<String, String> {
        let Some(_) = self.proxy else {
            return BTreeMap::new();
        };
        let url = format!("http://{PROXY_ADDRESS}");
        let mut env = BTreeMap::new();
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.insert(name.to_owned(), url.clone());
        }
        // `localhost` is the session's own, reached directly. An address goes through the
        // proxy, which takes loopback the operator did not name to the session's own too.
        for name in ["NO_PROXY", "no_proxy"] {
            env.insert(name.to_owned(), "localhost".to_owned());
        }
        env
    }

    /// A connection to `port` on the namespace's loopback.
    pub async fn connect(&self, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        connect_inside(self.path.clone(), port).await
    }
}

/// The proxy's way to the session's own loopback.
struct SessionLoopback(PathBuf);

impl hearth_egress::LocalConnect for SessionLoopback {
    fn connect(
        &self,
        port: u16,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>> + Send + '_>>
    {
        Box::pin(connect_inside(self.0.clone(), port))
    }
}

/// A connection to `port` on the loopback of the namespace bound at `path`.
async fn connect_inside(path: PathBuf, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let stream = tokio::task::spawn_blocking(move || {
        netns::connect(&path, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(|e| match e {
        netns::NetnsError::Io { error, .. } => error,
        other => std::io::Error::other(other),
    })?;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    tokio::net::TcpStream::from_std(stream)
}

impl Drop for SessionNetwork {
    fn drop(&mut self) {
        if let Some(proxy) = &self.proxy {
            proxy.abort();
        }
        netns::remove(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allow: &[&str]) -> EgressConfig {
        EgressConfig {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            credentials: Vec::new(),
        }
    }

    #[test]
    fn a_session_narrows_the_operators_list_and_never_widens_it() {
        let operator = config(&["pypi.org", "*.pythonhosted.org", "127.0.0.1:8080"]);
        let narrowed = |asked: &[&str]| {
            let asked: Vec<String> = asked.iter().map(|s| (*s).to_owned()).collect();
            operator.session_policy(Some(&asked)).map(|p| p.allow.len())
        };
        assert_eq!(narrowed(&["pypi.org:443"]), Ok(1));
        assert_eq!(narrowed(&["files.pythonhosted.org"]), Ok(2));
        assert_eq!(narrowed(&[]), Ok(0));
        for wider in [
            "example.com",
            "pypi.org:8443",
            "127.0.0.1:9090",
            "*.org",
            "10.0.0.1",
        ] {
            assert!(narrowed(&[wider]).is_err(), "{wider}");
        }
        assert!(narrowed(&["not a host"]).is_err());
        assert_eq!(operator.session_policy(None).map(|p| p.allow.len()), Ok(5));
        assert!(
            config(&[])
                .session_policy(Some(&["pypi.org".into()]))
                .is_err()
        );
    }
}
