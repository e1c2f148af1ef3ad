//! What an allow-list says: its entries ([`HostPattern`]), and which addresses count as the
//! public internet ([`is_public`]).
//!
//! An entry names a port as well as a host, because "may reach `example.com`" is not "may
//! reach every service `example.com` runs". A name is matched as the program wrote it,
//! lowercased; an address is matched only when the entry names that very address, so a list
//! that names `127.0.0.1:8080` lets that one service in and nothing else on the host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of an allow-list: `host:port`, where host may be `*.example.com` (any name below
/// it, not `example.com` itself) or an IP literal (`127.0.0.1`, `[::1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase, without brackets; `*.` first for a wildcard.
    host: String,
    port: u16,
}

impl HostPattern {
    /// Parses `host:port` (`api.example.com:443`, `*.example.com:443`, `[::1]:8080`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not `host:port` (e.g. `api.example.com:443`)");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !name.is_empty()
            && port != 0
            && (name.parse::<IpAddr>().is_ok()
                || name.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }));
        match valid {
            true => Ok(Self { host, port }),
            false => Err(bad()),
        }
    }

    /// Parses one entry of an operator's list, where a port is optional: `host:port` gives
    /// that one pattern, and a bare host (`pypi.org`, `*.example.com`, `10.0.0.5`, `[::1]`,
    /// `::1`) gives two, ports 80 and 443, since "let it reach pypi.org" means the web.
    ///
    /// An IPv6 address with a port needs its brackets (`[::1]:8080`): unbracketed, `::1:8080`
    /// is itself an address and is read as one.
    pub fn parse_entry(text: &str) -> Result<Vec<Self>, String> {
        let text = text.trim();
        let bare = match text.strip_prefix('[') {
            Some(rest) => rest.ends_with(']').then_some(text),
            None if text.parse::<Ipv6Addr>().is_ok() => Some(text),
            None => (!text.contains(':')).then_some(text),
        };
        match bare {
            Some(host) => {
                let host = match host.parse::<Ipv6Addr>() {
                    Ok(_) => format!("[{host}]"),
                    Err(_) => host.to_owned(),
                };
                let bad = |_| format!("`{text}` is not `host` or `host:port` (e.g. `pypi.org`)");
                Ok(vec![
                    Self::parse(&format!("{host}:80")).map_err(bad)?,
                    Self::parse(&format!("{host}:443")).map_err(bad)?,
                ])
            }
            None => Ok(vec![Self::parse(text)?]),
        }
    }

    /// Whether this pattern lets `host:port` out (`host` lowercase, without brackets).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if self.port != port {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        }
    }

    /// Whether this pattern covers everything `narrower` does (a grant covering a manifest).
    pub fn covers(&self, narrower: &HostPattern) -> bool {
        if self.port != narrower.port {
            return false;
        }
        match (
            self.host.strip_prefix("*."),
            narrower.host.strip_prefix("*."),
        ) {
            (None, None) => self.host == narrower.host,
            (Some(_), None) => self.allows(&narrower.host, narrower.port),
            (Some(outer), Some(inner)) => inner == outer || inner.ends_with(&format!(".{outer}")),
            (None, Some(_)) => false,
        }
    }

    /// The literal address this pattern names, if it names one: the operator's explicit
    /// choice, reached even when it is not public.
    pub fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The host as matched: lowercase, without brackets, `*.` first for a wildcard.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Whether `ip` is on the public internet: not loopback, private, link-local (the cloud
/// metadata address `169.254.169.254` among them), unique-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking or reserved — and, for an
/// IPv6 address that carries an IPv4 one (mapped, or NAT64's well-known prefix), whether that
/// one is.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = v6.segments();
    // NAT64's well-known prefix reaches the IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(s[..6] == [0; 6] // `::`, `::1` and the deprecated IPv4-compatible addresses
        || v6.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_allow_what_they_name() {
        let exact = HostPattern::parse("api.example.com:443").unwrap();
        assert!(exact.allows("api.example.com", 443));
        assert!(!exact.allows("api.example.com", 80));
        assert!(!exact.allows("evil.api.example.com", 443));
        let wild = HostPattern::parse("*.example.com:443").unwrap();
        assert!(wild.allows("api.example.com", 443));
        assert!(!wild.allows("example.com", 443));
        assert!(!wild.allows("badexample.com", 443));
        assert!(wild.covers(&exact));
        assert!(!exact.covers(&wild));
        let ip = HostPattern::parse("127.0.0.1:8080").unwrap();
        assert_eq!(ip.literal(), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(exact.literal(), None);
        for bad in ["example.com", "example.com:0", ":443", "a b:1", "x:99999"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_entry_without_a_port_means_the_web() {
        let shown = |text: &str| -> Vec<String> {
            HostPattern::parse_entry(text)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(shown("pypi.org:8443"), ["pypi.org:8443"]);
        assert_eq!(shown(" PyPI.org "), ["pypi.org:80", "pypi.org:443"]);
        assert_eq!(
            shown("*.example.com"),
            ["*.example.com:80", "*.example.com:443"]
        );
        assert_eq!(shown("10.0.0.5"), ["10.0.0.5:80", "10.0.0.5:443"]);
        assert_eq!(shown("[::1]"), ["[::1]:80", "[::1]:443"]);
        assert_eq!(shown("::1"), ["[::1]:80", "[::1]:443"]);
        assert_eq!(shown("[fd00::1]:8080"), ["[fd00::1]:8080"]);
        assert_eq!(shown("127.0.0.1:3000"), ["127.0.0.1:3000"]);
        let literal = HostPattern::parse_entry("[::1]").unwrap();
        assert_eq!(literal[0].literal(), Some("::1".parse().unwrap()));
        for bad in [
            "",
            "a b",
            "host:",
            "host:0",
            "host:x",
            "[::1",
            "*.",
            "x..y",
            "*.a:99999",
        ] {
            assert!(HostPattern::parse_entry(bad).is_err(), "{bad:?}");
        }
        let error = HostPattern::parse_entry("a b").unwrap_err();
        assert!(error.contains("`a b`"), "{error}");
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::127.0.0.1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
