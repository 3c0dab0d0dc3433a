//! `ephemera-cli`: the command line's decisions, apart from its effects. What a run's outcome means
//! as an exit code ([`exit`]), which idempotency key and OIDC token a CI job brings ([`ci`]), and
//! which live events a reconnecting follower has already shown ([`tracker`]), what a Task file asks the API for ([`manifest`]), which server and token a command uses ([`config`]), how answers print ([`output`]) and how refusals read ([`problem`]) are pure and
//! table-tested here; the commands that call the API build on them.

pub mod ci;
pub mod config;
pub mod exit;
pub mod manifest;
pub mod output;
pub mod problem;
pub mod tracker;
pub mod url;
