//! Support for the full-stack tests in `tests/`: the local stack (dev cluster, CRDs, operator), test
//! doubles for Salesforce and GitHub, and a real OpenBao server prepared the way an admin prepares
//! Vault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod edge;
pub mod fakes;
pub mod openbao;
pub mod slow_registry;
pub mod stack;

/// Installs ring as the TLS provider for reqwest-based clients (they are built without one).
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
