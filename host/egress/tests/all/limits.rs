//! The proxy's bound: a program that opens connection after connection gets no more than
//! [`MAX_CONNECTIONS`] served at once.

use std::time::Duration;

use hearth_egress::EgressPolicy;
use hearth_egress::proxy::MAX_CONNECTIONS;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{Table, allow, echo_server, proxy, read_head};

#[tokio::test]
async fn past_the_limit_a_connection_waits_for_one_to_close() {
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let request = format!("GET http://{upstream}/ HTTP/1.1\r\nHost: {upstream}\r\n\r\n");
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        open.push(stream);
    }
    let mut extra = TcpStream::connect(proxy).await.unwrap();
    extra.write_all(request.as_bytes()).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(500), read_head(&mut extra)).await;
    assert!(
        waited.is_err(),
        "connection {} was served",
        MAX_CONNECTIONS + 1
    );
    drop(open.pop());
    let head = read_head(&mut extra).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}
