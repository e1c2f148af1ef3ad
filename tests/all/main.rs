//! Hearth's integration suite, through the real runtime and the real components.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test loudly"
)]

mod containment;
mod limits;
mod loading;
mod tools_files;
mod tools_search;
