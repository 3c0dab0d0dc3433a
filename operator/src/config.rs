//! Operator settings (flags and environment; see `ephemera-operator --help`).

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the operator can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker image used when a Task names none.
    pub worker_image: String,
    /// A Pod that has not started its container after this long fails the attempt (`PodStuck`).
    pub pod_start_timeout: Duration,
    /// Grace period given to a worker Pod on cancel/timeout before it is killed.
    pub termination_grace: Duration,
    /// UID/GID the worker runs as (non-root, per the restricted Pod Security profile).
    pub worker_uid: i64,
    /// Lease for leader election: namespace and name.
    pub lease_namespace: String,
    /// Lease name.
    pub lease_name: String,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub lease_duration: Duration,
    /// Concurrency of the `default` queue when the operator has to create it (0 = unlimited).
    pub default_queue_concurrency: i32,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (None: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// Vault, for Tasks that name credentials (None: such Tasks fail with `VaultNotConfigured`).
    pub vault: Option<crate::vault::VaultConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            worker_image: "ghcr.io/ephemera-dev/ephemera-worker:latest".into(),
            pod_start_timeout: Duration::from_secs(300),
            termination_grace: Duration::from_secs(30),
            worker_uid: 65532,
            lease_namespace: "default".into(),
            lease_name: "ephemera-operator".into(),
            identity: std::env::var("HOSTNAME").unwrap_or_else(|_| "ephemera-operator".into()),
            lease_duration: Duration::from_secs(15),
            default_queue_concurrency: 0,
            metrics_addr: None,
            vault: None,
        }
    }
}
