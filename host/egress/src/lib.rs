//! Who a session's programs may reach, and the proxy that lets them.
//!
//! A program runs in a network namespace whose only interface is loopback; the one way out is
//! the session's [`Proxy`], listening in that namespace. Deny by default: the proxy reaches
//! only what the session's allow-list names ([`HostPattern`]), and a name only at public
//! addresses ([`is_public`]) — a name that also points at loopback, the private networks or
//! the cloud's metadata address is refused outright, unless the list names that address
//! itself. The address is chosen once ([`vet()`]) and connected to, never resolved again.
//!
//! The same allow-list and the same [`vet()`] serve the tools' `wasi:http` (in
//! `hearth-runtime`), so a tool and a program with the same list reach the same places.
//!
//! ```no_run
//! use std::sync::Arc;
//! use hearth_egress::{EgressPolicy, HostPattern, Proxy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = EgressPolicy { allow: HostPattern::parse_entry("pypi.org")?, credentials: vec![] };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3128").await?;
//! let proxy = tokio::spawn(Proxy::new("s1".into(), Arc::new(policy)).serve(listener));
//! // … and when the session ends:
//! proxy.abort();
//! # Ok(())
//! # }
//! ```

pub mod policy;
pub mod proxy;
mod upstream;
pub mod vet;

pub use policy::{HostPattern, is_public};
pub use proxy::{Credential, EgressPolicy, LocalConnect, Proxy};
pub use vet::{RESOLVE_TIMEOUT, Refusal, Resolution, Resolve, SystemResolver, vet};
