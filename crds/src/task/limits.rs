//! The bounds a Task spec keeps, in one place: the CRD schema (`crds/yaml`), the REST API's schema
//! and its validation all read them from here.

/// Longest image reference.
pub const IMAGE_MAX: usize = 512;
/// Most words of `command`.
pub const COMMAND_MAX: usize = 64;
/// Most `args`.
pub const ARGS_MAX: usize = 128;
/// Most `env` variables.
pub const ENV_MAX: usize = 64;
/// Longest `env` variable name.
pub const ENV_NAME_MAX: usize = 128;
/// Longest `env` value, in bytes.
pub const ENV_VALUE_MAX: usize = 4096;
/// Most credentials a Task names.
pub const CREDENTIALS_MAX: usize = 16;
/// Longest name of a Kubernetes object named by a DNS label (queues, credentials).
pub const DNS_LABEL_MAX: usize = 63;
/// Lowest `priority`.
pub const PRIORITY_MIN: i32 = -1000;
/// Highest `priority`.
pub const PRIORITY_MAX: i32 = 1000;
/// Shortest `timeoutSeconds`.
pub const TIMEOUT_MIN: i64 = 1;
/// Longest `timeoutSeconds` (a week).
pub const TIMEOUT_MAX: i64 = 604_800;
/// `timeoutSeconds` when none is given.
pub const TIMEOUT_DEFAULT: i64 = 3600;
/// Longest `ttlSecondsAfterFinished` (a year).
pub const TTL_MAX: i64 = 31_536_000;
/// Most `retry.maxAttempts`.
pub const ATTEMPTS_MAX: i32 = 10;
/// Longest `retry.backoffSeconds`.
pub const BACKOFF_MAX: i64 = 3600;
/// Longest `retry.maxBackoffSeconds`.
pub const MAX_BACKOFF_MAX: i64 = 86_400;

/// Longest Kubernetes object name (a DNS subdomain).
pub const DNS_SUBDOMAIN_MAX: usize = 253;

/// Whether `s` is a DNS subdomain (RFC 1123) of at most [`DNS_SUBDOMAIN_MAX`] characters: the
/// names Kubernetes gives most objects, templates and Tasks among them.
pub fn dns_subdomain(s: &str) -> bool {
    s.len() <= DNS_SUBDOMAIN_MAX
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Whether `s` is a DNS label of at most [`DNS_LABEL_MAX`] characters (queue and credential names).
pub fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS_LABEL_MAX
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_subdomains_as_kubernetes_checks_them() {
        for ok in ["a", "greet", "sf-deploy.v2", "0", &"a".repeat(253)] {
            assert!(dns_subdomain(ok), "{ok}");
        }
        for bad in ["", "Greet", "a..b", ".a", "a.", "-a", "a-.b", "a_b", "#\u{c6}", &"a".repeat(254)] {
            assert!(!dns_subdomain(bad), "{bad}");
        }
    }
}
