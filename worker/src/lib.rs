//! `ephemera-worker`: what runs in each task Pod, in two steps. `credentials` (an init container from
//! the operator's worker image) unwraps the one-time Vault token, reads only its Task's credentials,
//! mints provider tokens (Salesforce JWT bearer, GitHub App installation token) or takes static
//! secrets, and hands them off; `run` (the task container, any image) runs the task command with
//! them, forwards its output masked, then revokes and wipes everything and reports through the
//! termination message.

pub mod command;
pub mod handoff;
pub mod isolation;
pub mod jwt;
pub mod mask;
pub mod progress;
pub mod providers;
pub mod reporter;
pub mod session;
pub mod settings;
pub mod vault;
