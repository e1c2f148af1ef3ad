//! The jail, through the real `hearth-jail` helper: what works inside it, and an escape suite
//! where every attempt must fail and leave the host untouched.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod support;

mod escapes;
mod functional;
mod limits;
mod live;
mod modes;
mod results;
