//! Operator settings (flags and environment; see `ephemera-operator --help`).

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the operator can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// The worker image: the install and credentials steps run it, and it holds the worker binary
    /// the Task's own container runs.
    pub worker_image: String,
    /// The image a Task's command runs in when the Task names none (None: the worker image, which
    /// has no shell: only commands it carries run there).
    pub default_task_image: Option<String>,
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
    /// Live progress reporting (None: workers keep only their last progress line).
    pub progress: Option<ProgressConfig>,
    /// Events kept in `status.progress` (phase changes and progress), at most 100.
    pub event_ring: usize,
    /// Also record the `Normal` Kubernetes Events that retell a phase change (Scheduled, Running,
    /// Succeeded): three writes per Task that its status and conditions already tell. Warnings and
    /// `CredentialsRevoked` are always recorded.
    pub normal_events: bool,
    /// Task reconciles in flight at once (at least 1). Each holds its Task, the Pod it builds and
    /// an API request, so this bounds the operator's memory and its load on the API server when
    /// thousands of Tasks arrive together.
    pub max_concurrent_reconciles: u16,
    /// Egress proxy for workers' own calls to Vault and the providers, and the hosts that bypass it.
    pub worker_proxy: Option<(String, String)>,
    /// The operator's own namespace: the per-attempt credential records live here (tenants must
    /// not be able to read Secrets in it).
    pub namespace: String,
    /// Where the credential hand-off is served (None: not served by this replica).
    pub handoff_addr: Option<SocketAddr>,
    /// The credential hand-off's base URL as worker Pods reach it (None: Tasks with credentials fail
    /// with `VaultNotConfigured`).
    pub handoff_url: Option<String>,
    /// Legacy: allow Salesforce / GitHub App Credentials whose private key is read from KV (weaker:
    /// the key leaves Vault and a stolen attempt token could read it). Off by default.
    pub allow_kv_private_keys: bool,
    /// Requests and limits a task container gets for each resource its Task says nothing about.
    pub default_resources: ephemera_crds::TaskResources,
}

/// Every default, once: the flags (`--help`, `docs/operator.md`) and [`Config::default`] use these.
pub mod defaults {
    /// `--worker-image`: the worker image of this operator's own release (never `latest`, so an
    /// upgrade of one never silently runs another's worker).
    pub const WORKER_IMAGE: &str = concat!("ghcr.io/ephemera-dev/ephemera-worker:", env!("CARGO_PKG_VERSION"));
    /// `--pod-start-timeout-seconds`.
    pub const POD_START_TIMEOUT_SECONDS: u64 = 300;
    /// `--termination-grace-seconds`.
    pub const TERMINATION_GRACE_SECONDS: u64 = 30;
    /// `--worker-uid` (the distroless `nonroot` user).
    pub const WORKER_UID: i64 = 65532;
    /// `--namespace`.
    pub const NAMESPACE: &str = "ephemera-system";
    /// `--lease-name`, and `--identity` when the Pod has no HOSTNAME.
    pub const LEASE_NAME: &str = "ephemera-operator";
    /// `--lease-seconds`.
    pub const LEASE_SECONDS: u64 = 15;
    /// `--event-ring` (and its upper bound).
    pub const EVENT_RING: usize = ephemera_crds::task::MAX_PROGRESS_EVENTS;
    /// `--worker-default-requests`: enough for the `sf` CLI.
    pub const WORKER_REQUESTS: &str = "cpu=100m,memory=256Mi";
    /// `--worker-default-limits`: bounded so one Task cannot take a node.
    pub const WORKER_LIMITS: &str = "memory=2Gi,ephemeral-storage=4Gi";
    /// `--max-concurrent-reconciles`: enough to keep the API server busy (a reconcile waits on one
    /// or two writes), few enough that a burst of Tasks is not thousands of requests at once.
    pub const MAX_CONCURRENT_RECONCILES: u16 = 32;
}

/// Why a `name=quantity,...` list is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not name=quantity")]
pub struct BadQuantity(pub String);

/// `cpu=100m,memory=256Mi` as a map.
pub fn quantities(text: &str) -> Result<std::collections::BTreeMap<String, String>, BadQuantity> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
            _ => Err(BadQuantity(p.into())),
        })
        .collect()
}

/// The defaults for task containers ([`defaults::WORKER_REQUESTS`], [`defaults::WORKER_LIMITS`]).
pub fn default_task_resources() -> ephemera_crds::TaskResources {
    ephemera_crds::TaskResources {
        requests: quantities(defaults::WORKER_REQUESTS).unwrap_or_default(),
        limits: quantities(defaults::WORKER_LIMITS).unwrap_or_default(),
    }
}

/// Where workers report progress and how their reporting tokens are signed.
#[derive(Clone)]
pub struct ProgressConfig {
    /// API server base URL as worker Pods reach it.
    pub url: String,
    /// HMAC key shared with the API servers.
    pub key: std::sync::Arc<secrecy::SecretSlice<u8>>,
}

impl std::fmt::Debug for ProgressConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressConfig").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            worker_image: defaults::WORKER_IMAGE.into(),
            default_task_image: None,
            pod_start_timeout: Duration::from_secs(defaults::POD_START_TIMEOUT_SECONDS),
            termination_grace: Duration::from_secs(defaults::TERMINATION_GRACE_SECONDS),
            worker_uid: defaults::WORKER_UID,
            lease_namespace: "default".into(),
            lease_name: defaults::LEASE_NAME.into(),
            identity: std::env::var("HOSTNAME").unwrap_or_else(|_| defaults::LEASE_NAME.into()),
            lease_duration: Duration::from_secs(defaults::LEASE_SECONDS),
            default_queue_concurrency: 0,
            metrics_addr: None,
            vault: None,
            progress: None,
            event_ring: defaults::EVENT_RING,
            normal_events: false,
            max_concurrent_reconciles: defaults::MAX_CONCURRENT_RECONCILES,
            worker_proxy: None,
            namespace: defaults::NAMESPACE.into(),
            handoff_addr: None,
            handoff_url: None,
            allow_kv_private_keys: false,
            default_resources: default_task_resources(),
        }
    }
}
