//! Outgoing HTTP for tools the operator lets out (`wasi:http`), to an allow-list and nothing
//! else.
//!
//! A request leaves only if its `host:port` is on the tool's list. The host resolves the name
//! itself and refuses every address that is not public (loopback, private, link-local — the
//! cloud metadata address among them —, unique-local, shared, multicast, unspecified) unless the
//! list names that address literally; then it connects to the address it vetted, never
//! resolving again (a name that changes its answer between the check and the connection gets
//! nowhere), and TLS still verifies the name the tool asked for. Credential headers are dropped
//! unless granted. Every wait is bounded by the call's deadline, and a response body by a size
//! cap. No raw sockets: `wasi:sockets` stays off.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The most a response body may hold.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Headers that carry credentials: dropped from a tool's requests unless its grant says so.
const CREDENTIAL_HEADERS: [http::HeaderName; 3] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
];

/// One entry of an allow-list: `host:port`, where host may be `*.example.com` (any name below
/// it) or an IP literal (`127.0.0.1`, `[::1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: u16,
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not `host:port` (e.g. `api.example.com:443`)");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !name.is_empty()
            && port != 0
            && (name.parse::<IpAddr>().is_ok()
                || name.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }));
        match valid {
            true => Ok(Self { host, port }),
            false => Err(bad()),
        }
    }

    /// Whether this pattern lets `host:port` out.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if self.port != port {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        }
    }

    /// Whether this pattern covers everything `narrower` does (a grant covering a manifest).
    pub fn covers(&self, narrower: &HostPattern) -> bool {
        if self.port != narrower.port {
            return false;
        }
        match (
            self.host.strip_prefix("*."),
            narrower.host.strip_prefix("*."),
        ) {
            (None, None) => self.host == narrower.host,
            (Some(_), None) => self.allows(&narrower.host, narrower.port),
            (Some(outer), Some(inner)) => inner == outer || inner.ends_with(&format!(".{outer}")),
            (None, Some(_)) => false,
        }
    }

    /// The literal address this pattern names, if it names one.
    fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// A call's network: its allow-list, whether credentials may pass, and its deadline.
pub struct CallNetwork {
    allowed: Arc<Vec<HostPattern>>,
    credentials: bool,
    deadline: tokio::time::Instant,
}

impl CallNetwork {
    pub fn new(
        allowed: Arc<Vec<HostPattern>>,
        credentials: bool,
        deadline: tokio::time::Instant,
    ) -> Self {
        Self {
            allowed,
            credentials,
            deadline,
        }
    }
}

impl WasiHttpHooks for CallNetwork {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        drop(fut);
        if !self.credentials {
            for name in &CREDENTIAL_HEADERS {
                request.headers_mut().remove(name);
            }
        }
        let allowed = self.allowed.clone();
        let deadline = self.deadline;
        Box::new(async move {
            let uri = request.uri().clone();
            let (target, server_name, tls) = vet(&uri, &allowed).await?;
            let timeouts = Timeouts::within(options, deadline);
            let (response, io) = send_pinned(request, target, &server_name, tls, timeouts).await?;
            Ok((response, io))
        })
    }
}

/// Where a request may go: the address to connect to, the name TLS verifies, and whether it is
/// TLS — or why it may not go anywhere.
async fn vet(
    uri: &http::Uri,
    allowed: &[HostPattern],
) -> Result<(SocketAddr, String, bool), Error> {
    let tls = match uri.scheme() {
        Some(s) if *s == Scheme::HTTPS => true,
        Some(s) if *s == Scheme::HTTP => false,
        _ => return Err(Error::HttpProtocolError),
    };
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let Some(entry) = allowed.iter().find(|p| p.allows(&host, port)) else {
        tracing::info!(%host, port, "a tool's request to a host not on its list was refused");
        return Err(Error::HttpRequestDenied);
    };
    // An address the list names literally is the operator's explicit choice.
    if let Some(ip) = entry.literal() {
        return Ok((SocketAddr::new(ip, port), host, tls));
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| Error::DestinationNotFound)?
        .collect();
    // All public, or none used: a name that also points inside is not followed at all.
    if addresses.is_empty() || addresses.iter().any(|a| !is_public(a.ip())) {
        tracing::info!(%host, ?addresses, "a tool's request to a name resolving to a non-public address was refused");
        return Err(Error::DestinationIpProhibited);
    }
    Ok((addresses[0], host, tls))
}

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// A request's waits, each bounded by what the tool asked and by the call's deadline.
#[derive(Clone, Copy)]
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn within(options: Option<RequestOptions>, deadline: tokio::time::Instant) -> Self {
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(1));
        let cap = |asked: Option<Duration>| asked.unwrap_or(left).min(left);
        Self {
            connect: cap(options.and_then(|o| o.connect_timeout)),
            first_byte: cap(options.and_then(|o| o.first_byte_timeout)),
            between_bytes: cap(options.and_then(|o| o.between_bytes_timeout)),
        }
    }
}

type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Sends `request` over a connection to `target` (TLS verifying `server_name` when `tls`).
async fn send_pinned(
    mut request: http::Request<WasiBody>,
    target: SocketAddr,
    server_name: &str,
    tls: bool,
    timeouts: Timeouts,
) -> Result<(http::Response<WasiBody>, Io), Error> {
    let stream = tokio::time::timeout(timeouts.connect, tokio::net::TcpStream::connect(target))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let stream: Box<dyn Stream> = if tls {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let connector = tokio_rustls::TlsConnector::from(tls_config());
        let stream = tokio::time::timeout(timeouts.connect, connector.connect(name, stream))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(stream)
    } else {
        Box::new(stream)
    };
    let (mut sender, connection) = tokio::time::timeout(
        timeouts.connect,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(Error::from)?;
    // The connection is driven beside the request; its end is the request's `io` future.
    let driver = tokio::spawn(connection);
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(request.uri().path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let response = tokio::time::timeout(timeouts.first_byte, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let response = response.map(|incoming| {
        CappedBody {
            incoming,
            received: 0,
            idle: tokio::time::interval(timeouts.between_bytes),
            fresh: true,
        }
        .boxed_unsync()
    });
    let io: Io = Box::new(async move {
        match driver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Err(Error::InternalError(Some(
                "the connection task failed".into(),
            ))),
        }
    });
    Ok((response, io))
}

/// The TLS client configuration (the web's root certificates): made once, shared by every call.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::LazyLock<Arc<rustls::ClientConfig>> =
        std::sync::LazyLock::new(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        });
    CONFIG.clone()
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A response body that ends in an error past [`MAX_RESPONSE_BYTES`], or when the server stays
/// silent longer than the between-bytes timeout.
struct CappedBody {
    incoming: hyper::body::Incoming,
    received: u64,
    idle: tokio::time::Interval,
    fresh: bool,
}

impl http_body::Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        if self.fresh {
            self.fresh = false;
            self.idle.reset();
        }
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |d| d.len() as u64);
                self.received += size;
                if self.received > MAX_RESPONSE_BYTES {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                        MAX_RESPONSE_BYTES,
                    )))));
                }
                self.idle.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.idle.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_allow_what_they_name() {
        let exact = HostPattern::parse("api.example.com:443").unwrap();
        assert!(exact.allows("api.example.com", 443));
        assert!(!exact.allows("api.example.com", 80));
        assert!(!exact.allows("evil.api.example.com", 443));
        let wild = HostPattern::parse("*.example.com:443").unwrap();
        assert!(wild.allows("api.example.com", 443));
        assert!(!wild.allows("example.com", 443));
        assert!(!wild.allows("badexample.com", 443));
        assert!(wild.covers(&exact));
        assert!(!exact.covers(&wild));
        let ip = HostPattern::parse("127.0.0.1:8080").unwrap();
        assert_eq!(ip.literal(), Some(IpAddr::from([127, 0, 0, 1])));
        for bad in ["example.com", "example.com:0", ":443", "a b:1", "x:99999"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
