//! The CLI's subcommands that are more than a call or two: the tool author's loop.

pub mod templates;
pub mod tool;
