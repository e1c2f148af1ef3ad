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

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hearth_egress::{Refusal, SystemResolver};
use http::uri::Scheme;
use http_body_util::BodyExt;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The allow-list's entries and what counts as public live in `hearth-egress`, shared with the
/// programs' egress proxy; they are re-exported here for the code that names them so.
pub use hearth_egress::{HostPattern, is_public};

/// The most a response body may hold.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Headers that carry credentials: dropped from a tool's requests unless its grant says so.
const CREDENTIAL_HEADERS: [http::HeaderName; 3] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
];

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
/// TLS — or why it may not go anywhere. The allow-list and the addresses are judged by
/// [`hearth_egress::vet()`], as for a program's traffic through the egress proxy.
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
    match hearth_egress::vet(&host, port, allowed, &SystemResolver).await {
        Ok(target) => Ok((target, host, tls)),
        Err(refusal) => {
            tracing::info!(%host, port, %refusal, "a tool's request was refused");
            Err(match refusal {
                Refusal::NotAllowed { .. } => Error::HttpRequestDenied,
                Refusal::NotPublic { .. } => Error::DestinationIpProhibited,
                Refusal::NotFound { .. } | Refusal::ResolveTimeout { .. } => {
                    Error::DestinationNotFound
                }
            })
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

    /// The allow-list is judged by `hearth-egress`; its refusals keep the wasi:http codes
    /// tools match on (`examples/tools/http_get`).
    #[test]
    fn refusals_keep_their_wasi_http_codes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let allowed = ["127.0.0.1:8080", "localhost:8080"].map(|p| HostPattern::parse(p).unwrap());
        let vetted = |url: &'static str| {
            let uri: http::Uri = url.parse().unwrap();
            runtime.block_on(vet(&uri, &allowed))
        };
        let (address, name, tls) = vetted("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!((name.as_str(), tls), ("127.0.0.1", false));
        assert!(matches!(
            vetted("https://example.com/"),
            Err(Error::HttpRequestDenied)
        ));
        // On the list by name, but the name leads to loopback.
        assert!(matches!(
            vetted("http://localhost:8080/"),
            Err(Error::DestinationIpProhibited)
        ));
        assert!(matches!(
            vetted("ftp://127.0.0.1:8080/"),
            Err(Error::HttpProtocolError)
        ));
    }
}
