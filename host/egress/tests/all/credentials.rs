//! Credentials the proxy adds for the program, which the program never sees — and never
//! gives away to anyone else.

use hearth_egress::EgressPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Capture, Client, Table, allow, connect, credential, echo_server, proxy, recording_server,
    tcp_echo_server,
};

const SECRET: &str = "Bearer operator-secret";

#[tokio::test]
async fn the_credential_replaces_what_the_program_sent() {
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![credential("127.0.0.1", upstream.port(), SECRET, false)],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    let target = format!("http://{upstream}/simple/");
    let answer = client.get(&target, &[]).await;
    assert_eq!(answer.echoed("authorization"), Some(SECRET));
    let answer = client
        .get(&target, &[("authorization", "Bearer forged")])
        .await;
    assert_eq!(answer.echoed("authorization"), Some(SECRET));
    // Nor does it come back to the program any other way than through the upstream's echo.
    assert!(!answer.body.contains("operator-secret"));
}

#[tokio::test]
async fn the_credential_goes_to_its_own_service_only() {
    let (upstream, _upstream) = echo_server().await;
    let (other, _other) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[
            &upstream.to_string(),
            &format!("localhost:{}", upstream.port()),
        ]),
        credentials: vec![
            // The same host on another port, and another name for the same address.
            credential("127.0.0.1", other.port(), SECRET, false),
            credential("localhost", upstream.port(), SECRET, false),
        ],
    };
    let resolver = Table::default().with("localhost", &["127.0.0.1"]);
    let (proxy, _proxy) = proxy(policy, resolver).await;
    let answer = Client::connect(proxy)
        .await
        .get(
            &format!("http://{upstream}/"),
            &[("authorization", "Bearer the-program-own")],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.echoed("authorization"),
        Some("Bearer the-program-own")
    );
}

#[tokio::test]
async fn a_tls_credential_is_sent_only_inside_tls() {
    let (upstream, received) = recording_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![credential("127.0.0.1", upstream.port(), SECRET, true)],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let answer = Client::connect(proxy)
        .await
        .get(&format!("http://{upstream}/simple/"), &[])
        .await;
    let received = received.await.unwrap();
    // A TLS handshake record (content type 22), not the request in the clear.
    assert_eq!(received.first(), Some(&0x16), "{received:?}");
    let text = String::from_utf8_lossy(&received);
    assert!(
        !text.contains("operator-secret") && !text.contains("GET "),
        "{text}"
    );
    // The server hung up instead of answering the handshake.
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(answer.body.contains("TLS failed"), "{}", answer.body);
}

#[tokio::test]
async fn a_tunnel_carries_the_program_bytes_and_no_credential() {
    let (upstream, _upstream) = tcp_echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![credential("127.0.0.1", upstream.port(), SECRET, false)],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let (mut stream, head) = connect(proxy, &upstream.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut back = vec![0; request.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, request);
}

#[tokio::test]
async fn every_attempt_is_logged_and_no_credential_is() {
    let logs = Capture::start();
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![credential("127.0.0.1", upstream.port(), SECRET, false)],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    let answer = client.get(&format!("http://{upstream}/"), &[]).await;
    assert_eq!(answer.echoed("authorization"), Some(SECRET));
    let answer = client.get("http://127.0.0.1:1/", &[]).await;
    assert_eq!(answer.status, 403);
    let logs = logs.text();
    let egress: Vec<&str> = logs.lines().filter(|l| l.contains(" egress: ")).collect();
    assert_eq!(egress.len(), 2, "{logs}");
    for (line, port, outcome) in [
        (egress[0], upstream.port(), "outcome=allowed"),
        (egress[1], 1, "is not on the allow-list"),
    ] {
        assert!(line.contains("session=\"s-test\""), "{line}");
        assert!(line.contains(&format!("port={port}")), "{line}");
        assert!(line.contains(outcome), "{line}");
    }
    assert!(!logs.contains("operator-secret"), "{logs}");
}
