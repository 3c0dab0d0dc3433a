//! `ephemera-worker`: what runs inside each task Pod. It unwraps its one-time Vault token, reads only
//! its Task's credentials, mints provider tokens (Salesforce JWT bearer, GitHub App installation
//! token) or delivers static secrets, runs the task command with them, forwards its output masked,
//! then revokes and wipes everything and reports through the termination message.

pub mod command;
pub mod isolation;
pub mod jwt;
pub mod mask;
pub mod progress;
pub mod providers;
pub mod reporter;
pub mod session;
pub mod settings;
pub mod vault;
