//! The `ephemera` binary's effects: the HTTP client, the live follower, the display and the
//! commands, on top of the library's pure decisions.

pub mod args;
pub mod client;
pub mod commands;
pub mod display;
pub mod follow;
pub mod live;
