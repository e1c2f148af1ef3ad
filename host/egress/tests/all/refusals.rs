//! What the proxy will not do, and how it says so: every refusal is an answer with a reason.

use hearth_egress::EgressPolicy;

use crate::support::{Client, Table, allow, connect, echo_server, proxy};

/// Addresses a name must never lead to: loopback, the private networks, the cloud metadata
/// service, shared (CGNAT), unique-local and link-local IPv6.
const NOT_PUBLIC: [&str; 9] = [
    "127.0.0.1",
    "::1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "fd00::1",
    "fe80::1",
];

#[tokio::test]
async fn a_target_not_on_the_list_is_refused_and_the_connection_kept() {
    let (listed, _listed) = echo_server().await;
    let (unlisted, _unlisted) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&listed.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default().with("localhost", &["127.0.0.1"])).await;
    let mut client = Client::connect(proxy).await;
    for target in [
        format!("http://{unlisted}/"),
        format!("http://localhost:{}/", listed.port()),
        format!("http://{}/", listed.ip()),
    ] {
        let answer = client.get(&target, &[]).await;
        assert_eq!(answer.status, 403, "{target}: {}", answer.body);
        assert!(
            answer.body.contains("is not on the allow-list"),
            "{}",
            answer.body
        );
        assert_eq!(
            answer.echoed("method"),
            None,
            "{target} reached the upstream"
        );
    }
    let answer = client.get(&format!("http://{listed}/"), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_name_leading_to_a_non_public_address_is_refused() {
    // The list allows the name on the port a real service listens on (at 127.0.0.1): were the
    // name followed to loopback, the request would arrive.
    let (upstream, _upstream) = echo_server().await;
    let port = upstream.port();
    for address in NOT_PUBLIC {
        let policy = EgressPolicy {
            allow: allow(&[&format!("sneaky.example:{port}")]),
            credentials: vec![],
        };
        let resolver = Table::default().with("sneaky.example", &[address]);
        let (proxy, _proxy) = proxy(policy, resolver).await;
        let answer = Client::connect(proxy)
            .await
            .get(&format!("http://sneaky.example:{port}/"), &[])
            .await;
        assert_eq!(answer.status, 403, "{address}: {}", answer.body);
        assert_eq!(
            answer.body,
            format!(
                "hearth egress: `sneaky.example` resolves to a non-public address ({address})\n"
            )
        );
        let (_, head) = connect(proxy, &format!("sneaky.example:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 403 "), "{address}: {head}");
    }
}

#[tokio::test]
async fn a_name_with_one_public_and_one_private_address_is_refused() {
    let (upstream, _upstream) = echo_server().await;
    let port = upstream.port();
    let policy = EgressPolicy {
        allow: allow(&[&format!("mixed.example:{port}")]),
        credentials: vec![],
    };
    for addresses in [
        ["93.184.216.34", "127.0.0.1"],
        ["127.0.0.1", "93.184.216.34"],
    ] {
        let resolver = Table::default().with("mixed.example", &addresses);
        let (proxy, _proxy) = proxy(policy.clone(), resolver).await;
        let answer = Client::connect(proxy)
            .await
            .get(&format!("http://mixed.example:{port}/"), &[])
            .await;
        assert_eq!(answer.status, 403, "{addresses:?}: {}", answer.body);
        assert!(
            answer.body.contains("non-public address (127.0.0.1)"),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn an_unknown_name_is_answered_with_why() {
    let policy = EgressPolicy {
        allow: allow(&["nowhere.example"]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let answer = Client::connect(proxy)
        .await
        .get("http://nowhere.example/", &[])
        .await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(
        answer
            .body
            .starts_with("hearth egress: `nowhere.example` could not be resolved: "),
        "{}",
        answer.body
    );
    let (_, head) = connect(proxy, "nowhere.example:443").await;
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bad_gateway() {
    // A port nothing listens on: bound, then let go.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let policy = EgressPolicy {
        allow: allow(&[&closed.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let answer = Client::connect(proxy)
        .await
        .get(&format!("http://{closed}/"), &[])
        .await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(
        answer.body.contains("could not be reached"),
        "{}",
        answer.body
    );
    let (_, head) = connect(proxy, &closed.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
}

#[tokio::test]
async fn a_request_that_is_not_a_proxy_request_is_a_bad_request() {
    let (upstream, _upstream) = echo_server().await;
    let policy = EgressPolicy {
        allow: allow(&[&upstream.to_string()]),
        credentials: vec![],
    };
    let (proxy, _proxy) = proxy(policy, Table::default()).await;
    let mut client = Client::connect(proxy).await;
    // Origin-form: a request meant for a server, sent to the proxy.
    let answer = client
        .get("/latest/meta-data/", &[("host", &upstream.to_string())])
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("is not a proxy request"),
        "{}",
        answer.body
    );
    let answer = client.get(&format!("ftp://{upstream}/"), &[]).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
}
