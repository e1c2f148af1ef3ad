//! What every test stands on: upstream services on loopback, a proxy in front of them, a
//! resolver that says whatever a test wants, and clients that speak to the proxy the way
//! curl and pip do.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hearth_egress::{Credential, EgressPolicy, HostPattern, Proxy, Resolution, Resolve};
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A task aborted when the test lets go of it.
pub struct Running(JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An HTTP server on loopback that answers every request with the request itself: its head
/// as `x-echo-*` headers (`x-echo-method`, `x-echo-target`, `x-echo-<header>` for each header
/// it received, values of a repeated header joined by `, `) and its body as the body, streamed
/// back frame by frame as it arrives.
pub async fn echo_server() -> (SocketAddr, Running) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    Ok::<_, Infallible>(echo(request))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, Running(task))
}

fn echo(request: Request<Incoming>) -> Response<Incoming> {
    let (parts, body) = request.into_parts();
    let mut response = Response::new(body);
    let echoed = response.headers_mut();
    echoed.insert("x-echo-method", parts.method.as_str().parse().unwrap());
    echoed.insert("x-echo-target", parts.uri.to_string().parse().unwrap());
    for name in parts.headers.keys() {
        let joined: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let echo_name = HeaderName::try_from(format!("x-echo-{name}")).unwrap();
        echoed.insert(echo_name, joined.join(", ").parse().unwrap());
    }
    response
}

/// A TCP server on loopback that writes back whatever it reads.
pub async fn tcp_echo_server() -> (SocketAddr, Running) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (address, Running(task))
}

/// A TCP server on loopback that keeps the first bytes of the first connection it gets and
/// then hangs up: what a client sent before it got any answer.
pub async fn recording_server() -> (SocketAddr, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = vec![0; 4096];
        let n = stream.read(&mut received).await.unwrap();
        received.truncate(n);
        let _ = tx.send(received);
    });
    (address, rx)
}

/// Resolves names from a table; any other name does not exist.
#[derive(Default)]
pub struct Table(HashMap<String, Vec<IpAddr>>);

impl Table {
    pub fn with(mut self, name: &str, addresses: &[&str]) -> Self {
        let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
        self.0.insert(name.into(), addresses);
        self
    }
}

impl Resolve for Table {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolution<'a> {
        Box::pin(async move {
            self.0.get(host).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such name in the table")
            })
        })
    }
}

/// A session's allow-list from its entries.
pub fn allow(entries: &[&str]) -> Vec<HostPattern> {
    entries
        .iter()
        .flat_map(|e| HostPattern::parse_entry(e).unwrap())
        .collect()
}

pub fn credential(host: &str, port: u16, value: &'static str, tls: bool) -> Credential {
    Credential {
        host: host.into(),
        port,
        header: http::header::AUTHORIZATION,
        value: HeaderValue::from_static(value),
        tls,
    }
}

/// A proxy for `policy` on a loopback port, resolving names with `resolver`.
pub async fn proxy(policy: EgressPolicy, resolver: Table) -> (SocketAddr, Running) {
    install_logging();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let proxy = Proxy::new("s-test".into(), Arc::new(policy)).with_resolver(Arc::new(resolver));
    (address, Running(tokio::spawn(proxy.serve(listener))))
}

/// An HTTP/1.1 connection to the proxy, as a program's HTTP client holds one.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    _connection: Running,
}

impl Client {
    pub async fn connect(proxy: SocketAddr) -> Self {
        let stream = TcpStream::connect(proxy).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Self {
            sender,
            _connection: Running(connection),
        }
    }

    /// Sends `request` (the target written as given: absolute-form for a proxy request).
    pub async fn send(&mut self, request: Request<Body>) -> Response<Incoming> {
        self.sender.ready().await.unwrap();
        self.sender.send_request(request).await.unwrap()
    }

    /// `GET target` with `headers`; the status, the headers and the whole body.
    pub async fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::get(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.send(request.body(Body::empty()).unwrap()).await;
        Answer::read(response).await
    }
}

/// A response, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn read(response: Response<Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Self {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// The value of `x-echo-<name>`: what the upstream received as `name`.
    pub fn echoed(&self, name: &str) -> Option<&str> {
        self.headers
            .get(format!("x-echo-{name}"))
            .map(|v| v.to_str().unwrap())
    }
}

/// A request body the test writes frame by frame, while the request is under way.
pub struct Body(tokio::sync::mpsc::Receiver<Bytes>);

impl Body {
    pub fn empty() -> Self {
        Self(tokio::sync::mpsc::channel(1).1)
    }

    pub fn channel() -> (tokio::sync::mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        (tx, Self(rx))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Sends `CONNECT target` on a fresh connection to the proxy; the connection and the answer's
/// head (status line and headers).
pub async fn connect(proxy: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    (stream, head)
}

/// Reads an answer's head, up to and including the blank line, and nothing past it.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.unwrap();
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

/// Everything logged on this thread while the capture lives (the proxy's tasks run on the
/// test's thread under `#[tokio::test]`).
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub fn start() -> Self {
        install_logging();
        let logs = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
        Self(logs)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// One global subscriber for the whole test binary, installed before any proxy runs, writing
/// to the capture of the thread an event happens on, if any. (A subscriber per test, set as
/// the thread's default, misses events: tracing caches whether a call site is wanted, and a
/// test on another thread may decide it first.)
fn install_logging() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
