//! Keeps the Task's environment from steering the worker's own connections.
//!
//! The worker talks to Vault and to the providers with long-lived secrets in hand (a Vault token, a
//! connected app's or GitHub App's private key). The Pod's environment comes partly from the Task
//! author (spec `env`, the image's `ENV`), so a proxy, an extra CA bundle or a Vault client variable
//! set there could send those calls through a machine the author controls. The worker therefore
//! removes such variables from its own environment before any client exists, and hands them back to
//! the task command, which may legitimately need a proxy. The only proxy the worker itself uses is
//! the admin's, from the operator (`EPHEMERA_WORKER_PROXY`).

use std::ffi::OsString;

use ephemera_crds::worker::{ENV_WORKER_NO_PROXY, ENV_WORKER_PROXY};

/// Exact names (compared case-insensitively) that change where or how HTTP clients connect.
const NETWORK_NAMES: [&str; 11] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "ssl_cert_file",
    "ssl_cert_dir",
    "sslkeylogfile",
    "curl_ca_bundle",
    // glibc's resolver: search domains, options and host aliases could redirect `vault.vault.svc`.
    "localdomain",
    "res_options",
    "hostaliases",
];

/// Whether `name` could redirect or weaken the worker's own HTTP connections.
pub fn steers_connections(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // vaultrs reads VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY, VAULT_NAMESPACE, ... by itself.
    NETWORK_NAMES.contains(&lower.as_str()) || lower.starts_with("vault_")
}

/// Removes every connection-steering variable from this process's environment and returns them, for
/// the task command, then sets the admin's worker proxy, if any. Call before any thread or HTTP
/// client exists.
pub fn take_connection_overrides() -> Vec<(OsString, OsString)> {
    let taken: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(steers_connections)).collect();
    for (k, _) in &taken {
        std::env::remove_var(k);
    }
    if let Some(proxy) = std::env::var_os(ENV_WORKER_PROXY).filter(|p| !p.is_empty()) {
        for name in ["HTTPS_PROXY", "HTTP_PROXY"] {
            std::env::set_var(name, &proxy);
        }
        std::env::set_var("NO_PROXY", std::env::var_os(ENV_WORKER_NO_PROXY).unwrap_or_default());
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_ca_bundles_and_vault_variables_are_recognised_in_any_case() {
        for name in
            ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "VAULT_CACERT", "VAULT_ADDR"]
        {
            assert!(steers_connections(name), "{name}");
        }
        for name in ["PATH", "SF_ACCESS_TOKEN", "PROXY_MODE", "MY_VAULT_PATH", "EPHEMERA_VAULT_ADDR"] {
            assert!(!steers_connections(name), "{name}");
        }
    }
}
