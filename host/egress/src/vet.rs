//! The one step every outgoing connection goes through, the proxy's and the tools' alike:
//! from the `host:port` a program asked for to the one address it may connect to, or the
//! reason it may not connect anywhere.
//!
//! The address is chosen here, once. The caller connects to exactly that address and never
//! resolves the name again, so a name whose answer changes between the check and the
//! connection (DNS rebinding) gets nowhere.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use crate::policy::{HostPattern, is_public};

/// The longest a name may take to resolve: a resolver that never answers must not hold a
/// connection (and one of the proxy's slots) forever.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a resolution returns: the addresses a name has.
pub type Resolution<'a> = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a name into addresses. The system's resolver in production ([`SystemResolver`]); a
/// table in tests, so a test can make a name point wherever an attacker's DNS would.
pub trait Resolve: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolution<'a>;
}

/// The host's resolver (`getaddrinfo`, through `tokio::net::lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolution<'a> {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host, 0)).await?;
            Ok(addresses.map(|a| a.ip()).collect())
        })
    }
}

/// Why a connection may not be made. Each message names what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No entry of the allow-list lets `host:port` out.
    #[error("`{}` is not on the allow-list", Target(host, *port))]
    NotAllowed { host: String, port: u16 },
    /// The name has no address (or the resolver failed).
    #[error("`{host}` could not be resolved: {reason}")]
    NotFound { host: String, reason: String },
    /// The resolver did not answer within [`RESOLVE_TIMEOUT`].
    #[error("`{host}` did not resolve within {} s", RESOLVE_TIMEOUT.as_secs())]
    ResolveTimeout { host: String },
    /// The name resolves to at least one address that is not public; `addresses` are those.
    #[error(
        "`{host}` resolves to a non-public address ({})",
        addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    NotPublic {
        host: String,
        addresses: Vec<IpAddr>,
    },
}

impl Refusal {
    /// Whether the policy refused (as opposed to the name not resolving): the difference
    /// between "you may not" and "it could not be found".
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::NotAllowed { .. } | Self::NotPublic { .. })
    }
}

/// Where a connection to `host:port` may go under `allowed`, resolving names with `resolver`.
///
/// In order: `host` (lowercased, brackets dropped) must be allowed by some entry; if an entry
/// that allows it names an address literally, that address is the answer, public or not (the
/// operator named it). Otherwise the name is resolved, within [`RESOLVE_TIMEOUT`], and every
/// address it has must be public — all of them, or none is used: a name that also points
/// inside is not followed at all. The first address is the answer.
pub async fn vet(
    host: &str,
    port: u16,
    allowed: &[HostPattern],
    resolver: &dyn Resolve,
) -> Result<SocketAddr, Refusal> {
    let host = normalize(host);
    if !allowed.iter().any(|p| p.allows(&host, port)) {
        return Err(Refusal::NotAllowed { host, port });
    }
    let literal = allowed
        .iter()
        .filter(|p| p.allows(&host, port))
        .find_map(HostPattern::literal);
    if let Some(ip) = literal {
        return Ok(SocketAddr::new(ip, port));
    }
    let addresses = match host.parse::<IpAddr>() {
        // An address allowed through a wildcard, not named: it is vetted like any other.
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(&host)).await {
            Err(_) => return Err(Refusal::ResolveTimeout { host }),
            Ok(Err(e)) => {
                let reason = e.to_string();
                return Err(Refusal::NotFound { host, reason });
            }
            Ok(Ok(addresses)) => addresses,
        },
    };
    let hidden: Vec<IpAddr> = addresses
        .iter()
        .copied()
        .filter(|a| !is_public(*a))
        .collect();
    if !hidden.is_empty() {
        return Err(Refusal::NotPublic {
            host,
            addresses: hidden,
        });
    }
    match addresses.first() {
        Some(ip) => Ok(SocketAddr::new(*ip, port)),
        None => Err(Refusal::NotFound {
            host,
            reason: "it has no address".into(),
        }),
    }
}

/// A host as allow-lists match it: lowercase, an IPv6 address without its brackets.
pub(crate) fn normalize(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// `host:port` as a URL would write it (brackets around an IPv6 address).
pub(crate) struct Target<'a>(pub &'a str, pub u16);

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.contains(':') {
            true => write!(f, "[{}]:{}", self.0, self.1),
            false => write!(f, "{}:{}", self.0, self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves every name to the same addresses.
    struct Fixed(Vec<IpAddr>);

    impl Resolve for Fixed {
        fn resolve<'a>(&'a self, _host: &'a str) -> Resolution<'a> {
            Box::pin(async move { Ok(self.0.clone()) })
        }
    }

    fn list(entries: &[&str]) -> Vec<HostPattern> {
        entries
            .iter()
            .map(|e| HostPattern::parse(e).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_literal_entry_is_reached_and_a_name_only_at_public_addresses() {
        let public = Fixed(vec!["93.184.216.34".parse().unwrap()]);
        let allowed = list(&["127.0.0.1:8080", "[::1]:8080", "example.com:443"]);
        assert_eq!(
            vet("127.0.0.1", 8080, &allowed, &public).await,
            Ok("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            vet("[::1]", 8080, &allowed, &public).await,
            Ok("[::1]:8080".parse().unwrap())
        );
        assert_eq!(
            vet("EXAMPLE.com", 443, &allowed, &public).await,
            Ok("93.184.216.34:443".parse().unwrap())
        );
        let refusal = vet("example.com", 80, &allowed, &public).await.unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "`example.com:80` is not on the allow-list"
        );
        let inside = Fixed(vec![
            "1.1.1.1".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
        ]);
        let refusal = vet("example.com", 443, &allowed, &inside)
            .await
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "`example.com` resolves to a non-public address (10.0.0.1)"
        );
    }

    #[tokio::test]
    async fn an_address_let_in_by_a_wildcard_is_vetted_like_a_name() {
        let allowed = list(&["*.0.1:80"]);
        let refusal = vet("127.0.0.1", 80, &allowed, &Fixed(vec![])).await;
        assert!(
            matches!(refusal, Err(Refusal::NotPublic { .. })),
            "{refusal:?}"
        );
    }

    #[tokio::test]
    async fn a_name_without_addresses_is_not_found() {
        let allowed = list(&["example.com:443"]);
        let refusal = vet("example.com", 443, &allowed, &Fixed(vec![])).await;
        assert!(
            matches!(refusal, Err(Refusal::NotFound { .. })),
            "{refusal:?}"
        );
    }
}
