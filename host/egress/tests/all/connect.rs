//! `CONNECT`: the tunnels HTTPS leaves through.

use hearth_egress::EgressPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Table, allow, connect, proxy, read_head, tcp_echo_server};

#[tokio::test]
async fn a_tunnel_to_an_allowed_target_carries_bytes_both_ways() {
    let (upstream, _upstream) = tcp_echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let (mut stream, head) = connect(proxy, &upstream.to_string()).await;
    assert!(
        head.starts_with("HTTP/1.1 200 Connection established\r\n"),
        "{head}"
    );
    let large: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    for message in [b"ping".to_vec(), b"\0\xff\r\n\r\nHTTP/1.1".to_vec(), large] {
        let (mut read, mut write) = stream.split();
        let mut back = vec![0; message.len()];
        let (written, echoed) = tokio::join!(write.write_all(&message), read.read_exact(&mut back));
        written.unwrap();
        echoed.unwrap();
        assert!(back == message, "{} bytes came back altered", message.len());
    }
}

#[tokio::test]
async fn a_refused_tunnel_is_answered_and_the_connection_kept() {
    let (upstream, _upstream) = tcp_echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let (mut stream, head) = connect(proxy, "127.0.0.1:1").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    let body = String::from_utf8(body).unwrap();
    assert_eq!(
        body,
        "hearth egress: `127.0.0.1:1` is not on the allow-list of this session\n"
    );
    let again = format!("CONNECT {upstream} HTTP/1.1\r\nHost: {upstream}\r\n\r\n");
    stream.write_all(again.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    stream.write_all(b"still here").await.unwrap();
    let mut back = [0; 10];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still here");
}

#[tokio::test]
async fn a_tunnel_without_a_port_is_a_bad_request() {
    let (proxy, _proxy) = proxy(EgressPolicy::default(), Table::default()).await;
    let (_stream, head) = connect(proxy, "example.com").await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
}
