//! Support for the full-stack tests in `tests/`: the local stack (dev cluster, CRDs, operator), test
//! doubles for Salesforce and GitHub, and a real OpenBao server prepared the way an admin prepares
//! Vault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod audit;
pub mod edge;
pub mod fakes;
pub mod helm;
pub mod openbao;
pub mod slow_registry;
pub mod stack;

/// Installs ring as the TLS provider for reqwest-based clients (they are built without one).
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A tool binary the test command installs (`e2e/scripts/tools.sh`): `$env` when set, else
/// `target/tools/<rel>`, installed by the script's `need` function when missing.
pub fn tool_binary(env: &str, rel: &str, need: &str) -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    if let Ok(b) = std::env::var(env) {
        return PathBuf::from(b);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tools = std::env::var("EPHEMERA_TOOLS").map(PathBuf::from).unwrap_or_else(|_| repo.join("target/tools"));
    let bin = tools.join(rel);
    if !bin.exists() {
        let script = format!("source {}/e2e/scripts/tools.sh && {need}", repo.display());
        let ok = std::process::Command::new("bash").arg("-c").arg(script).status().expect("bash");
        assert!(ok.success(), "could not install {rel} (e2e/scripts/tools.sh {need})");
    }
    bin
}
