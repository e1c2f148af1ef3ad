//! The forwarding half of the proxy: a program's request made fit to send on (origin-form,
//! its hop-by-hop and proxy headers gone, the credential set), and sent over the connection
//! the proxy opened to the vetted address — TLS verifying the name the program asked for
//! when the target speaks it.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::proxy::{Answer, CONNECT_TIMEOUT, Credential, RESPONSE_TIMEOUT};

/// Why a forwarded request got no response, phrased for the program's `502`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("TLS failed: {0}")]
    Tls(std::io::Error),
    #[error("`{0}` is not a name TLS can verify")]
    TlsName(String),
    #[error("no TLS configuration: {0}")]
    TlsConfig(rustls::Error),
    #[error("the TLS handshake did not finish within {} s", CONNECT_TIMEOUT.as_secs())]
    TlsTimeout,
    #[error("HTTP failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("no response within {} s", RESPONSE_TIMEOUT.as_secs())]
    ResponseTimeout,
}

/// Headers that belong to one hop (RFC 9110 §7.6.1) or to the proxy itself, never sent on:
/// among them `Proxy-Authorization`, which is the program's word to this proxy, not to the
/// service. `Expect` is answered by this proxy's own server.
const HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Removes the hop-by-hop headers, and those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// The program's request as it goes to `host:port`: origin-form, `Host` naming the target
/// (RFC 9112 §3.2.2: a proxy replaces it), hop-by-hop headers gone, and the credential's
/// header set, replacing the program's own.
pub(crate) fn prepare(
    request: Request<Incoming>,
    host: &str,
    port: u16,
    tls: bool,
    credential: Option<&Credential>,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = Version::HTTP_11;
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_owned(),
    };
    let authority = match (tls, port) {
        (false, 80) | (true, 443) => host,
        _ => format!("{host}:{port}"),
    };
    if let Ok(value) = HeaderValue::try_from(authority) {
        parts.headers.insert(header::HOST, value);
    }
    if let Some(credential) = credential {
        let mut value = credential.value.clone();
        value.set_sensitive(true);
        parts.headers.insert(credential.header.clone(), value);
    }
    Request::from_parts(parts, body)
}

/// Sends `request` over `stream` (TLS verifying `host` when `tls`) and gives back the
/// response, its body streamed to the program as it arrives.
pub(crate) async fn send(
    request: Request<Incoming>,
    stream: TcpStream,
    host: &str,
    tls: bool,
) -> Result<Answer, UpstreamError> {
    let stream: Box<dyn Stream> = match tls {
        true => Box::new(tls_connect(stream, host).await?),
        false => Box::new(stream),
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven beside the exchange and ends with it: when the program's side
    // lets go of the response body (done, or its connection gone), the upstream one closes.
    let driver = AbortOnDrop(tokio::spawn(connection).abort_handle());
    let response = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| UpstreamError::ResponseTimeout)??;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = body
        .map_err(move |error| {
            let _driven_by = &driver;
            error
        })
        .boxed();
    Ok(Answer::from_parts(parts, body))
}

async fn tls_connect(
    stream: TcpStream,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, UpstreamError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| UpstreamError::TlsName(host.to_owned()))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config()?);
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| UpstreamError::TlsTimeout)?
        .map_err(UpstreamError::Tls)
}

/// The TLS client configuration: the web's root certificates and ring, named explicitly
/// (another crate in the process may enable a second provider, and rustls then refuses to
/// guess). Made once, shared by every connection.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, UpstreamError> {
    static CONFIG: std::sync::LazyLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> =
        std::sync::LazyLock::new(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        });
    CONFIG.clone().map_err(UpstreamError::TlsConfig)
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_proxy_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic cHJveHk6cHc="),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("authorization", "Bearer program-own"),
            ("accept", "*/*"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["authorization", "accept"]);
    }
}
