//! Absolute-form requests (`GET http://host/path`): forwarded in origin-form, bodies streamed.

use bytes::Bytes;
use hearth_egress::EgressPolicy;
use http::Request;
use http_body_util::BodyExt;

use crate::support::{Answer, Body, Client, Table, allow, echo_server, proxy};

#[tokio::test]
async fn an_allowed_request_arrives_in_origin_form_for_its_host() {
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    let target = format!("http://{upstream}/simple/requests/?page=2");
    let answer = client
        .get(
            &target,
            &[
                ("host", "metadata.google.internal"),
                ("accept", "text/html"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.echoed("method"), Some("GET"));
    assert_eq!(answer.echoed("target"), Some("/simple/requests/?page=2"));
    // The proxy names the host it vetted, whatever the program wrote (RFC 9112 §3.2.2).
    assert_eq!(answer.echoed("host"), Some(upstream.to_string().as_str()));
    assert_eq!(answer.echoed("accept"), Some("text/html"));
    // The connection stays open for the next request.
    let answer = client.get(&format!("http://{upstream}/"), &[]).await;
    assert_eq!(answer.echoed("target"), Some("/"));
}

#[tokio::test]
async fn bodies_stream_both_ways_while_the_request_is_under_way() {
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    let (chunks, body) = Body::channel();
    let request = Request::post(format!("http://{upstream}/upload"))
        .body(body)
        .unwrap();
    chunks.send(Bytes::from_static(b"first")).await.unwrap();
    // The response starts before the request body has ended: neither side is buffered whole.
    let response = client.send(request).await;
    assert_eq!(response.status(), 200);
    let mut echoed = response.into_body();
    for chunk in ["first", "second", "third"] {
        if chunk != "first" {
            chunks.send(Bytes::from(chunk)).await.unwrap();
        }
        let frame = echoed.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), chunk);
    }
    drop(chunks);
    let rest = echoed.collect().await.unwrap().to_bytes();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn proxy_and_hop_by_hop_headers_stay_with_the_proxy() {
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    let answer = client
        .get(
            &format!("http://{upstream}/"),
            &[
                ("proxy-authorization", "Basic dXNlcjpwYXNzd29yZA=="),
                ("proxy-connection", "keep-alive"),
                ("connection", "x-hop"),
                ("x-hop", "for the proxy only"),
                ("authorization", "Bearer the-program-own"),
                ("x-kept", "end to end"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    for gone in ["proxy-authorization", "proxy-connection", "x-hop"] {
        assert_eq!(answer.echoed(gone), None, "{gone} was forwarded");
    }
    // A header the program means for the service is the program's business.
    assert_eq!(
        answer.echoed("authorization"),
        Some("Bearer the-program-own")
    );
    assert_eq!(answer.echoed("x-kept"), Some("end to end"));
}

#[tokio::test]
async fn an_ipv6_literal_on_the_list_is_reached() {
    let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
        return; // no IPv6 loopback here
    };
    let upstream = listener.local_addr().unwrap();
    drop(listener);
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    // Nothing listens there any more: the proxy tried that very address.
    let answer: Answer = client.get(&format!("http://{upstream}/"), &[]).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(
        answer.body.contains(&format!("({upstream})")),
        "{}",
        answer.body
    );
}
