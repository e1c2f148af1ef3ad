//! The egress proxy, tried from a program's side: every test sends what a program inside a
//! session could send, and checks what crossed to the other side — and what did not.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod connect;
mod credentials;
mod forward;
mod limits;
mod refusals;
mod support;
