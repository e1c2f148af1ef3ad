//! Session tokens: a token that opens one session's routes and nothing else — what a controller
//! hands to an MCP client, a browser or a sub-agent instead of the operator's token.
//!
//! A session gets one at create, answered once (`token` in the create answer); the operator can
//! replace it (`POST /v1/sessions/{id}/token`), which revokes the old one. Only its SHA-256 is
//! kept, in the session's record, so a copy of the data dir opens nothing. Tokens are 256 bits
//! from the OS's random source: comparing their hashes through a map leaks nothing an attacker
//! could use to guess one.

use sha2::{Digest, Sha256};

/// What a session token looks like: a prefix that says what it is (and lets secret scanners
/// find it), then 43 characters of base64url.
const PREFIX: &str = "hst_";

/// A new token and the hash to keep of it.
pub fn mint() -> (String, String) {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash(&token);
    (token, hash)
}

/// The hash a session's record keeps of its token (hex SHA-256).
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `path` is one of session `id`'s routes that a session token may use: the session
/// itself and everything under it, except minting its token (the operator's). The id is
/// compared with the path's own segment, as the router will read it.
pub fn opens(id: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/sessions/") else {
        return false;
    };
    let (segment, below) = rest.split_once('/').unwrap_or((rest, ""));
    segment == id && below != "token"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_kept_as_hashes() {
        let (a, hash_a) = mint();
        let (b, _) = mint();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{a}");
        assert_eq!(hash(&a), hash_a);
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a[PREFIX.len()..]));
    }

    #[test]
    fn a_token_opens_its_own_sessions_routes_only() {
        for path in [
            "/v1/sessions/abc",
            "/v1/sessions/abc/",
            "/v1/sessions/abc/tools/ls",
            "/v1/sessions/abc/files/workspace/x",
            "/v1/sessions/abc/git/status",
        ] {
            assert!(opens("abc", path), "{path}");
        }
        for path in [
            "/v1/sessions",
            "/v1/sessions/",
            "/v1/sessions/abcd",
            "/v1/sessions/ab",
            "/v1/sessions/%61bc/tools/ls",
            "/v1/sessions/other/tools/ls",
            "/v1/sessions/abc/token",
            "/v1/snapshots/gc",
            "/v1/tools",
            "/metrics",
            "/v1/sessionsabc",
        ] {
            assert!(!opens("abc", path), "{path}");
        }
    }
}
