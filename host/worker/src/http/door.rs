//! The fleet's door (see `fleet`): a request for a session this worker does not hold is
//! forwarded to the worker that owns it, streaming both ways with its headers (the token
//! included: the owner checks it), or — when the owner is gone — the session is taken over
//! here and the request served. It runs before authentication: the session's token is known
//! to its owner, so the door checks it against the hash the ownership record carries.
//!
//! A forwarded request says so (`x-hearth-forwarded-by`), and is never forwarded again: a
//! worker that receives one for a session it does not hold serves it (taking it over if it is
//! the owner) or answers 503 `owner_unreachable`, so two workers with different views can
//! never pass a request back and forth.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth_wire::ErrorCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::error::ApiError;
use super::middleware::{constant_time_eq, presented_token};
use super::relay;
use crate::app::App;
use crate::fleet::{Fleet, Route, TakeOverError, Terms};
use crate::sessions::SessionError;

/// The header a forwarded request carries: the id of the worker that forwarded it.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-hearth-forwarded-by");

/// Times a door asks the store again after losing a takeover race.
const RESOLVE_TRIES: usize = 3;

/// One pool of connections to the other workers, kept alive between requests.
static CLIENT: LazyLock<Client<HttpConnector, Body>> = LazyLock::new(|| {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
});

/// Where a request goes.
enum Entry {
    /// This worker serves it (it holds the session now, or nobody ever claimed it).
    Here,
    /// The owner at this URL serves it.
    There {
        url: String,
        lease_remaining_ms: u64,
    },
}

pub(super) async fn door(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(fleet) = app.fleet.clone() else {
        return next.run(request).await;
    };
    let Some(id) = session_of(request.uri().path()) else {
        return next.run(request).await;
    };
    // Held here (or parked here: the door asks where it went), or a draining worker, which
    // takes nothing (authentication answers 503 `draining`).
    let held = match app.sessions.get(&id) {
        Ok(session) if fleet.lease_in_doubt() => match still_mine(&app, &session).await {
            Ok(mine) => mine,
            Err(refused) => return refused.into_response(),
        },
        Ok(_) => true,
        Err(_) => false,
    };
    if held
        || app.draining.load(std::sync::atomic::Ordering::Acquire)
        || !crate::sessions::is_valid_id(&id)
    {
        return next.run(request).await;
    }
    let presented = presented_token(&request).unwrap_or("").to_owned();
    let forwarded = request.headers().contains_key(&FORWARDED_BY);
    match enter(&app, &fleet, &id, &presented, forwarded).await {
        Ok(Entry::Here) => next.run(request).await,
        Ok(Entry::There {
            url,
            lease_remaining_ms,
        }) => forward(&app, &fleet, &id, &url, lease_remaining_ms, request)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(refused) => refused.into_response(),
    }
}

/// Whether a session held here is still this worker's, asked of the store while this worker's
/// lease is in doubt (see `fleet::keeper`): one another worker took over is parked, and the
/// request goes where it is served now. A store that cannot say gets the request refused:
/// serving it could answer for a session another worker serves.
async fn still_mine(app: &App, session: &crate::sessions::Session) -> Result<bool, ApiError> {
    let owner = app.snapshots.snapshots.owner(&session.id).await.map_err(|e| {
        ApiError::new(
            ErrorCode::StoreUnavailable,
            format!(
                "this worker could not renew its lease, and the store cannot say whether it still owns the session: {e}"
            ),
        )
    })?;
    match owner {
        Some(owner) if owner.epoch > session.epoch() => {
            app.sessions
                .park(&session.id, &owner.worker, owner.epoch)
                .await?;
            Ok(false)
        }
        _ => Ok(true),
    }
}

/// The session a path is of: `/v1/sessions/{id}` and everything under it.
fn session_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/sessions/")?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// Decides where the request for session `id` goes, taking the session over if its owner is
/// gone.
async fn enter(
    app: &Arc<App>,
    fleet: &Fleet,
    id: &str,
    presented: &str,
    forwarded: bool,
) -> Result<Entry, ApiError> {
    for _ in 0..RESOLVE_TRIES {
        let route = fleet.resolve(id).await?;
        if let Some(terms) = route.terms() {
            authorize(app, presented, &terms)?;
        }
        match route {
            // The route itself answers (`session_not_found`).
            Route::Unknown => return Ok(Entry::Here),
            Route::Ended(ended) => return Err(ended_error(id, ended)),
            Route::Forward {
                url,
                worker,
                lease_remaining_ms,
                ..
            } => {
                if forwarded {
                    return Err(unreachable(
                        &worker,
                        lease_remaining_ms,
                        "ownership is moving",
                    ));
                }
                return Ok(Entry::There {
                    url,
                    lease_remaining_ms,
                });
            }
            Route::TakeOver(owner) => match fleet.take_over(app, id, owner).await {
                Ok(_) => return Ok(Entry::Here),
                Err(TakeOverError::Lost) => continue,
                Err(e) => return Err(takeover_error(e)),
            },
        }
    }
    Err(unreachable(
        "another worker",
        1_000,
        "ownership kept moving",
    ))
}

/// A request the door passes on or takes a session for must be one its owner would take: the
/// worker's token, the operator's, or the session's own (by the hash its record carries).
/// Without a configured token the worker is open (on loopback), as the routes are.
fn authorize(app: &App, presented: &str, terms: &Terms) -> Result<(), ApiError> {
    let Some(token) = &app.config.token else {
        return Ok(());
    };
    let operator = app.config.tools.operator_token.as_deref().unwrap_or("");
    let known = constant_time_eq(presented.as_bytes(), token.as_bytes())
        || (!operator.is_empty() && constant_time_eq(presented.as_bytes(), operator.as_bytes()))
        || (!presented.is_empty()
            && terms.token_sha256.as_deref().is_some_and(|hash| {
                constant_time_eq(crate::tokens::hash(presented).as_bytes(), hash.as_bytes())
            }));
    if known {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Passes the request on to the owner at `url` and its answer back.
async fn forward(
    app: &App,
    fleet: &Fleet,
    id: &str,
    url: &str,
    lease_remaining_ms: u64,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let upgrading = relay::is_upgrade(&parts.headers);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{url}{path}")
        .parse::<Uri>()
        .map_err(|_| ApiError::internal("a forwarding URI"))?;
    relay::drop_hop_by_hop(&mut parts.headers, upgrading);
    if let Ok(me) = HeaderValue::from_str(&fleet.me) {
        parts.headers.insert(FORWARDED_BY, me);
    }
    parts.version = axum::http::Version::HTTP_11;
    fleet
        .forwarded
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let wait = Duration::from_secs_f64(app.config.fleet.forward_timeout_s);
    let sent = tokio::time::timeout(wait, CLIENT.request(Request::from_parts(parts, body))).await;
    let mut answer = match sent {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            // Dead or unreachable: ask the store again next time.
            fleet.forget(id);
            tracing::warn!(session = %id, owner = %url, error = %e, "forwarding failed");
            return Err(unreachable(url, lease_remaining_ms, "it did not answer"));
        }
        Err(_) => {
            return Err(unreachable(
                url,
                lease_remaining_ms,
                "no answer in forward_timeout_s",
            ));
        }
    };
    if answer.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        relay::join_upgrade(client_upgrade, &mut answer)?;
    } else {
        relay::drop_hop_by_hop(answer.headers_mut(), false);
    }
    Ok(answer.map(Body::new))
}

fn unreachable(owner: &str, retry_after_ms: u64, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::OwnerUnreachable,
        format!(
            "the session's owner ({owner}) cannot take the request: {why}; retry in {retry_after_ms} ms (once its lease lapses, any worker takes the session over)"
        ),
    )
    .with_details(serde_json::json!({ "owner": owner, "retry_after_ms": retry_after_ms }))
}

fn ended_error(id: &str, ended: hearth_snapshots::Ended) -> ApiError {
    match (ended.reason.as_str(), ended.snapshot) {
        ("expired", Some(snapshot)) => SessionError::Expired {
            id: id.to_owned(),
            snapshot,
        }
        .into(),
        _ => SessionError::NotFound(id.to_owned()).into(),
    }
}

fn takeover_error(e: TakeOverError) -> ApiError {
    match e {
        TakeOverError::Snapshot(e) => e.into(),
        TakeOverError::Session(e) => e.into(),
        other => ApiError::internal(other),
    }
}
