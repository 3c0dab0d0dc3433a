//! `ephemera-worker`: what runs in each task Pod, in two steps. `credentials` (an init container from
//! the operator's worker image) claims the one-time Vault token from the operator's hand-off with its
//! Pod-bound identity, unwraps it, reads only its Task's credentials, has Vault Transit sign the
//! provider assertions,
//! mints provider tokens (Salesforce JWT bearer, GitHub App installation token) or takes static
//! secrets, and hands them off; `run` (the task container, any image) runs the task command with
//! them, forwards its output masked, then revokes and wipes everything and reports through the
//! termination message.

pub mod claim;
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
pub mod trust;
pub mod vault;
