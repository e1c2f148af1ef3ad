//! The session's egress proxy: the only way a program's traffic leaves its network namespace.
//!
//! One proxy serves one session, on a listener the worker creates inside that session's
//! namespace and hands over; programs find it through `HTTP_PROXY`/`HTTPS_PROXY`. It speaks
//! HTTP/1.1 and understands two requests:
//!
//! - `CONNECT host:port` opens a tunnel: the target is vetted ([`crate::vet()`]), connected to at
//!   the vetted address, and bytes are copied both ways. This is how HTTPS leaves; what flows
//!   inside is TLS the proxy neither reads nor changes.
//! - An absolute-form request (`GET http://host/path`) is forwarded: vetted the same way, sent
//!   in origin-form over a fresh connection to the vetted address, bodies streamed both ways.
//!   Because the proxy sees this request in the clear, it can add the operator's credential
//!   for that service ([`Credential`]) — and speak TLS to it — without the program ever
//!   holding the secret.
//!
//! Everything else is answered, never dropped: `400` for a request that is not a proxy
//! request, `403` with the reason for a target the session may not reach, `502` for one that
//! cannot be reached. Every connection attempt is logged under the `egress` target.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] program connections at once (the rest wait in the
//! listener's backlog), request heads within hyper's limits, an idle connection closed after
//! hyper's header-read timeout (30 s), and every wait on an upstream timed.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::policy::HostPattern;
use crate::upstream;
use crate::vet::{Refusal, Resolve, SystemResolver, Target, normalize, vet};

/// The most program connections one proxy serves at once. Each holds a socket and a task on
/// the worker; a program that opens thousands must not take them from other sessions. The
/// next connection waits in the listener's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 64;

/// The longest a connection to an upstream (TCP, then TLS) may take before the program gets
/// a `502`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a forwarded request may wait for its response head: an upstream that never
/// answers must not hold one of the [`MAX_CONNECTIONS`] forever. Generous, because the time
/// includes sending the request body.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a session's programs may reach, and with which credentials.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// The allow-list: nothing else is reached.
    pub allow: Vec<HostPattern>,
    /// Headers the proxy adds to plain-http requests for particular services.
    pub credentials: Vec<Credential>,
}

/// A header the proxy sets on requests to one service, so a program can use a private index
/// or API without seeing its secret: the program asks for `http://pypi.internal/simple`, and
/// the proxy sends `Authorization: …` there (over TLS when `tls`).
///
/// It applies to an absolute-form request for exactly `host:port`, and — for a TLS service on
/// 443 — also to one for `host:80`, since a program asking `http://pypi.internal/…` means that
/// service: the request goes to `host:443` over TLS, the URL's scheme upgraded. The target
/// must still be on the allow-list. It replaces whatever value of `header` the program sent.
/// A tunnel (`CONNECT`) never gets it: the proxy cannot write inside TLS.
#[derive(Clone)]
pub struct Credential {
    /// The service's host, exactly, lowercase.
    pub host: String,
    pub port: u16,
    pub header: HeaderName,
    /// Marked sensitive whenever the proxy sends it; never logged, never shown by `Debug`.
    pub value: HeaderValue,
    /// Whether the proxy speaks TLS to the service (verifying `host` against the web's roots).
    pub tls: bool,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("header", &self.header)
            .field("value", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}

impl Credential {
    /// The port a request for `host:port` goes to under this credential, if it is for this
    /// service.
    pub(crate) fn upstream_port(&self, host: &str, port: u16) -> Option<u16> {
        if self.host != host {
            return None;
        }
        match port == self.port || (self.tls && self.port == 443 && port == 80) {
            true => Some(self.port),
            false => None,
        }
    }
}

/// One session's proxy. Nothing is reached unless its policy allows it.
pub struct Proxy {
    session: Arc<str>,
    policy: Arc<EgressPolicy>,
    resolver: Arc<dyn Resolve>,
    local: Option<Arc<dyn LocalConnect>>,
    /// Connections all the worker's proxies may hold together, when it bounds them.
    shared: Option<Arc<Semaphore>>,
}

/// Connects to a port on the session's own loopback (inside its network namespace).
pub trait LocalConnect: Send + Sync {
    fn connect(
        &self,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send + '_>>;
}

/// Whether `host` names loopback: `localhost`, or an address of 127.0.0.0/8 or `::1`.
fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Proxy {
    /// A proxy for `session` (the name its log lines carry), resolving with the system's
    /// resolver.
    pub fn new(session: String, policy: Arc<EgressPolicy>) -> Self {
        Self {
            session: session.into(),
            policy,
            resolver: Arc::new(SystemResolver),
            local: None,
            shared: None,
        }
    }

    /// The same proxy also taking one of `shared`'s permits per connection: the bound of all
    /// of a worker's sessions together, so that many sessions cannot take every descriptor.
    pub fn with_shared_limit(self, shared: Arc<Semaphore>) -> Self {
        Self {
            shared: Some(shared),
            ..self
        }
    }

    /// The same proxy taking a loopback target the allow-list does not name (`localhost:3000`,
    /// `127.0.0.1:8000`) to the session's own loopback through `local`: a program that sends
    /// everything through its proxy still reaches the servers its session runs. A loopback
    /// target the list names is the worker host's, as the operator said.
    pub fn with_local(self, local: Arc<dyn LocalConnect>) -> Self {
        Self {
            local: Some(local),
            ..self
        }
    }

    /// The same proxy resolving names with `resolver` (tests point names wherever they like).
    pub fn with_resolver(self, resolver: Arc<dyn Resolve>) -> Self {
        Self { resolver, ..self }
    }

    /// Serves the connections `listener` accepts until this future is dropped (the task
    /// aborted), which also ends every connection and tunnel it serves.
    pub async fn serve(self, listener: TcpListener) {
        let proxy = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut connections = JoinSet::new();
        loop {
            // A slot first, then the connection: past the limit, programs wait in the backlog.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let shared = match &proxy.shared {
                Some(shared) => match shared.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => return,
                },
                None => None,
            };
            while connections.try_join_next().is_some() {}
            match listener.accept().await {
                Ok((stream, _)) => {
                    let proxy = proxy.clone();
                    connections.spawn(async move {
                        proxy.serve_connection(stream).await;
                        drop((slot, shared));
                    });
                }
                Err(error) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!(
                        target: "egress",
                        session = &*proxy.session,
                        %error,
                        "the egress proxy could not accept a connection"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Serves one program connection: its requests, then the tunnel it may turn into.
    async fn serve_connection(self: Arc<Self>, stream: TcpStream) {
        // A CONNECT's handler leaves its tunnel here; the tunnel runs once hyper has handed
        // the connection over, in this task, so aborting the proxy ends it too.
        let (tunnels, mut tunnel) = mpsc::channel::<Tunnel>(1);
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let proxy = proxy.clone();
            let tunnels = tunnels.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, &tunnels).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
        if let Err(error) = served {
            tracing::debug!(
                target: "egress",
                session = &*self.session,
                %error,
                "a program connection ended in an error"
            );
        }
        if let Ok(Tunnel {
            upgrade,
            mut upstream,
        }) = tunnel.try_recv()
        {
            match upgrade.await {
                Ok(upgraded) => {
                    let mut program = TokioIo::new(upgraded);
                    let _ = tokio::io::copy_bidirectional(&mut program, &mut upstream).await;
                }
                Err(error) => {
                    tracing::debug!(
                        target: "egress",
                        session = &*self.session,
                        %error,
                        "a tunnel was never opened"
                    );
                }
            }
        }
    }

    /// One request: a tunnel asked for, or a request to forward.
    async fn handle(&self, request: Request<Incoming>, tunnels: &mpsc::Sender<Tunnel>) -> Answer {
        match *request.method() == Method::CONNECT {
            true => self.tunnel(request, tunnels).await,
            false => self.forward(request).await,
        }
    }

    /// `CONNECT host:port`: vet, connect, and answer `200` for the tunnel to start.
    async fn tunnel(&self, request: Request<Incoming>, tunnels: &mpsc::Sender<Tunnel>) -> Answer {
        let target = request
            .uri()
            .authority()
            .and_then(|a| Some((normalize(a.host()), a.port_u16()?)));
        let Some((host, port)) = target else {
            let message = format!("`CONNECT {}` needs a `host:port` target", request.uri());
            return answer(StatusCode::BAD_REQUEST, &message);
        };
        let upstream = match self.open(&host, port).await {
            Ok((_, upstream)) => upstream,
            Err(refused) => return refused,
        };
        let upgrade = hyper::upgrade::on(request);
        if tunnels.try_send(Tunnel { upgrade, upstream }).is_err() {
            // One CONNECT per connection: hyper upgrades on the first.
            return answer(StatusCode::BAD_REQUEST, "a tunnel is already open");
        }
        let mut established = Response::new(empty());
        established
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                b"Connection established",
            ));
        established
    }

    /// An absolute-form request: vet, connect (over TLS for `https://` or a TLS credential),
    /// and send it on in origin-form with its credential, if any.
    async fn forward(&self, request: Request<Incoming>) -> Answer {
        let uri = request.uri();
        let tls = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(_)) => false,
            (Some("https"), Some(_)) => true,
            (None, None) => {
                let method = request.method();
                let message = format!(
                    "`{method} {uri}` is not a proxy request: \
                     send `{method} http://host{uri}` or `CONNECT host:port`"
                );
                return answer(StatusCode::BAD_REQUEST, &message);
            }
            _ => {
                let message = format!("`{uri}` is not an http:// or https:// URL");
                return answer(StatusCode::BAD_REQUEST, &message);
            }
        };
        let Some(authority) = uri.authority() else {
            return answer(StatusCode::BAD_REQUEST, "the request has no host");
        };
        let host = normalize(authority.host());
        let asked = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let credential = self
            .policy
            .credentials
            .iter()
            .find_map(|c| Some((c, c.upstream_port(&host, asked)?)));
        let (port, tls) = match credential {
            Some((credential, port)) => (port, tls || credential.tls),
            None => (asked, tls),
        };
        let (address, stream) = match self.open(&host, port).await {
            Ok(opened) => opened,
            Err(refused) => return refused,
        };
        let request = upstream::prepare(request, &host, port, tls, credential.map(|(c, _)| c));
        match upstream::send(request, stream, &host, tls).await {
            Ok(response) => response,
            Err(error) => {
                let message = format!("`{}` ({address}): {error}", Target(&host, port));
                self.log(&host, port, Some(address), &message);
                answer(StatusCode::BAD_GATEWAY, &message)
            }
        }
    }

    /// Vets `host:port` and connects to the vetted address; the answer to give the program
    /// if either fails. Logs the attempt either way.
    async fn open(&self, host: &str, port: u16) -> Result<(SocketAddr, TcpStream), Answer> {
        if let Some(local) = &self.local
            && is_loopback_name(host)
            && !self.policy.allow.iter().any(|p| p.allows(host, port))
        {
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            return match local.connect(port).await {
                Ok(stream) => {
                    self.log(host, port, Some(address), &"the session's own loopback");
                    Ok((address, stream))
                }
                Err(error) => {
                    let failure = format!("nothing in the session answers on port {port}: {error}");
                    self.log(host, port, Some(address), &failure);
                    Err(answer(StatusCode::BAD_GATEWAY, &failure))
                }
            };
        }
        let address = match vet(host, port, &self.policy.allow, &*self.resolver).await {
            Ok(address) => address,
            Err(refusal) => {
                self.log(host, port, None, &refusal);
                return Err(refused(&refusal));
            }
        };
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await;
        let failure = match connected {
            Ok(Ok(stream)) => {
                self.log(host, port, Some(address), &"allowed");
                return Ok((address, stream));
            }
            Ok(Err(error)) => format!(
                "`{}` ({address}) could not be reached: {error}",
                Target(host, port)
            ),
            Err(_) => format!(
                "`{}` ({address}) did not answer within {} s",
                Target(host, port),
                CONNECT_TIMEOUT.as_secs()
            ),
        };
        self.log(host, port, Some(address), &failure);
        Err(answer(StatusCode::BAD_GATEWAY, &failure))
    }

    /// Logs one attempt to reach `host:port`: the line an operator reads to see what a
    /// session reached, or tried to. Never a header: credentials stay out of the logs.
    fn log(&self, host: &str, port: u16, address: Option<SocketAddr>, outcome: &dyn Display) {
        let address = address.map_or_else(|| "none".to_owned(), |a| a.to_string());
        tracing::info!(
            target: "egress",
            session = &*self.session,
            host,
            port,
            address,
            outcome = %outcome,
            "connection attempt"
        );
    }
}

/// A CONNECT that was answered `200`: the program's side, once hyper lets go of it, and the
/// upstream connection already open.
struct Tunnel {
    upgrade: OnUpgrade,
    upstream: TcpStream,
}

/// What the proxy answers a program with: a forwarded response, streamed, or its own.
pub(crate) type Answer = Response<BoxBody<Bytes, hyper::Error>>;

/// The answer to a refused target: `403` when the policy says no, `502` when the name could
/// not be resolved.
fn refused(refusal: &Refusal) -> Answer {
    let status = match refusal.is_forbidden() {
        true => StatusCode::FORBIDDEN,
        false => StatusCode::BAD_GATEWAY,
    };
    let message = match refusal {
        Refusal::NotAllowed { .. } => format!("{refusal} of this session"),
        _ => refusal.to_string(),
    };
    answer(status, &message)
}

/// The proxy's own answer: `status` and a one-line plain-text reason.
fn answer(status: StatusCode, message: &str) -> Answer {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("hearth egress: {message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty() -> BoxBody<Bytes, hyper::Error> {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(host: &str, port: u16, tls: bool) -> Credential {
        Credential {
            host: host.into(),
            port,
            header: header::AUTHORIZATION,
            value: HeaderValue::from_static("Bearer s3cret"),
            tls,
        }
    }

    #[test]
    fn a_credential_serves_its_service_and_no_other() {
        let plain = credential("index.internal", 8080, false);
        assert_eq!(plain.upstream_port("index.internal", 8080), Some(8080));
        assert_eq!(plain.upstream_port("index.internal", 80), None);
        assert_eq!(plain.upstream_port("other.internal", 8080), None);
        let tls = credential("pypi.internal", 443, true);
        assert_eq!(tls.upstream_port("pypi.internal", 80), Some(443));
        assert_eq!(tls.upstream_port("pypi.internal", 443), Some(443));
        assert_eq!(tls.upstream_port("pypi.internal", 8080), None);
        assert_eq!(tls.upstream_port("sub.pypi.internal", 80), None);
        let odd = credential("pypi.internal", 8443, true);
        assert_eq!(odd.upstream_port("pypi.internal", 80), None);
    }

    #[test]
    fn a_credential_never_shows_its_value() {
        let shown = format!("{:?}", credential("pypi.internal", 443, true));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
