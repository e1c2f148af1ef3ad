//! The CLI's subcommands that are more than a call or two: the tool author's loop, and the MCP
//! stdio bridge.

pub mod mcp;
pub mod process;
pub mod templates;
pub mod tool;
