//! Passing a request on to another HTTP server and its answer back, streaming both ways: what
//! the ports route (to a program's server in the session) and the fleet's door (to the
//! session's owner) share.

use axum::http::{HeaderMap, HeaderName, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;

/// Whether a request asks to switch protocols (a WebSocket).
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Removes the hop-by-hop headers (but `Connection: upgrade` and `Upgrade` on an upgrade,
/// which are the request).
pub(super) fn drop_hop_by_hop(headers: &mut HeaderMap, upgrading: bool) {
    for name in [
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if !upgrading {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Joins the client's connection and the server's once both have switched protocols (a
/// WebSocket), copying both ways until either closes. `answer` is the server's 101.
pub(super) fn join_upgrade(
    client: Option<hyper::upgrade::OnUpgrade>,
    answer: &mut Response<hyper::body::Incoming>,
) -> Result<(), super::error::ApiError> {
    let server = hyper::upgrade::on(answer);
    let Some(client) = client else {
        return Err(super::error::ApiError::internal(
            "an upgrade without the client's connection",
        ));
    };
    tokio::spawn(async move {
        if let (Ok(client), Ok(server)) = (client.await, server.await) {
            let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    });
    Ok(())
}
