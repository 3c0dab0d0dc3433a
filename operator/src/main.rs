//! `ephemera-operator`: reconciles Ephemera Tasks into worker Pods. Finds the cluster the standard
//! way (in-cluster config, else `KUBECONFIG`/`~/.kube/config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephemera_operator::config::defaults;
use ephemera_operator::vault::{PolicyMode, VaultAuth, VaultConfig};
use ephemera_operator::Config;

/// glibc's allocator keeps what a burst of Tasks freed in its per-thread arenas (RSS at three times
/// the heap in use after 10,000 Tasks, `bench reconcile`); mimalloc returns it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How the operator logs in to Vault.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AuthMethod {
    /// Kubernetes auth with the operator's ServiceAccount token (in a cluster).
    Kubernetes,
    /// AppRole (role id + secret id file).
    Approle,
    /// A token from a file (development, or a Vault Agent sink).
    Token,
}

/// One-off admin commands (without one, the operator runs).
#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Write the per-Credential Vault policies for every Credential, with this command's own Vault
    /// identity (a Vault admin's, or one with policy `ephemera-policy-sync`), for operators running
    /// with `--vault-policies external`. Uses the same --vault-* flags; run again after changing
    /// Credentials.
    SyncVaultPolicies,
}

/// Who owns the per-Credential policies.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PolicyArg {
    /// The operator writes them.
    Managed,
    /// An admin does; the operator only reads them.
    External,
}

/// The Ephemera operator.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Log format: `text` or `json` (one object per line), to stderr.
    #[arg(long, env = "EPHEMERA_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    log_format: ephemera_serve::logging::LogFormat,
    /// The worker image (its install and credentials steps; the worker binary Tasks run with).
    #[arg(long, env = "EPHEMERA_WORKER_IMAGE", default_value = defaults::WORKER_IMAGE)]
    worker_image: String,
    /// The image Tasks that name none run their command in (default: the worker image, which has
    /// no shell).
    #[arg(long, env = "EPHEMERA_DEFAULT_TASK_IMAGE")]
    default_task_image: Option<String>,
    /// Seconds a Pod may stay unstarted before its attempt fails (PodStuck).
    #[arg(long, env = "EPHEMERA_POD_START_TIMEOUT_SECONDS", default_value_t = defaults::POD_START_TIMEOUT_SECONDS)]
    pod_start_timeout_seconds: u64,
    /// Grace period for worker Pods on cancel, in seconds.
    #[arg(long, env = "EPHEMERA_TERMINATION_GRACE_SECONDS", default_value_t = defaults::TERMINATION_GRACE_SECONDS)]
    termination_grace_seconds: u64,
    /// Non-root UID/GID for worker Pods.
    #[arg(long, env = "EPHEMERA_WORKER_UID", default_value_t = defaults::WORKER_UID)]
    worker_uid: i64,
    /// The operator's own namespace (this Pod's): per-attempt credential records live here, so no
    /// tenant may read Secrets in it.
    #[arg(long, env = "POD_NAMESPACE", default_value = defaults::NAMESPACE)]
    namespace: String,
    /// Namespace of the leader-election Lease (default: --namespace).
    #[arg(long, env = "EPHEMERA_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "EPHEMERA_LEASE_NAME", default_value = defaults::LEASE_NAME)]
    lease_name: String,
    /// This replica's identity (default: the Pod name from HOSTNAME).
    #[arg(long, env = "HOSTNAME", default_value = defaults::LEASE_NAME)]
    identity: String,
    /// Lease duration in seconds.
    #[arg(long, env = "EPHEMERA_LEASE_SECONDS", default_value_t = defaults::LEASE_SECONDS, value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_seconds: u64,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "EPHEMERA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Egress proxy for the worker's own calls to Vault, Salesforce and GitHub (the Task's proxy
    /// variables never apply to them).
    #[arg(long, env = "EPHEMERA_WORKER_PROXY")]
    worker_proxy: Option<String>,
    /// Hosts the worker reaches without --worker-proxy (NO_PROXY syntax, e.g. `.svc,.cluster.local`).
    #[arg(long, env = "EPHEMERA_WORKER_NO_PROXY", default_value = "")]
    worker_no_proxy: String,
    /// Vault address; without it, Tasks that name credentials fail with VaultNotConfigured.
    #[arg(global = true, long, env = "EPHEMERA_VAULT_ADDR")]
    vault_addr: Option<String>,
    /// Vault address as worker Pods reach it (default: --vault-addr).
    #[arg(long, env = "EPHEMERA_VAULT_WORKER_ADDR")]
    vault_worker_addr: Option<String>,
    /// How the operator logs in to Vault.
    #[arg(global = true, long, env = "EPHEMERA_VAULT_AUTH", value_enum, default_value = "kubernetes")]
    vault_auth: AuthMethod,
    /// Mount of the auth method (default: `kubernetes` or `approle`).
    #[arg(global = true, long, env = "EPHEMERA_VAULT_AUTH_MOUNT")]
    vault_auth_mount: Option<String>,
    /// Vault role for Kubernetes auth.
    #[arg(global = true, long, env = "EPHEMERA_VAULT_ROLE", default_value = "ephemera-operator")]
    vault_role: String,
    /// ServiceAccount token for Kubernetes auth.
    #[arg(
        global = true,
        long,
        env = "EPHEMERA_VAULT_JWT_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    vault_jwt_file: PathBuf,
    /// AppRole role id.
    #[arg(global = true, long, env = "EPHEMERA_VAULT_ROLE_ID")]
    vault_role_id: Option<String>,
    /// File holding the AppRole secret id.
    #[arg(global = true, long, env = "EPHEMERA_VAULT_SECRET_ID_FILE")]
    vault_secret_id_file: Option<PathBuf>,
    /// File holding a Vault token (re-read when Vault refuses the current one).
    #[arg(global = true, long, env = "EPHEMERA_VAULT_TOKEN_FILE")]
    vault_token_file: Option<PathBuf>,
    /// Token role per-attempt tokens are created through.
    #[arg(long, env = "EPHEMERA_VAULT_TOKEN_ROLE", default_value = "ephemera-task")]
    vault_token_role: String,
    /// Prefix of the per-Credential policies the operator writes (the token role allows only these).
    #[arg(global = true, long, env = "EPHEMERA_VAULT_POLICY_PREFIX", default_value = "ephemera-cred-")]
    vault_policy_prefix: String,
    /// Seconds a wrapping token stays unwrappable (must cover Pod start-up, image pulls included).
    #[arg(long, env = "EPHEMERA_VAULT_WRAP_TTL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=3600))]
    vault_wrap_ttl_seconds: u64,
    /// API server URL as worker Pods reach it, for live progress (needs --progress-key-file).
    #[arg(long, env = "EPHEMERA_PROGRESS_URL", requires = "progress_key_file")]
    progress_url: Option<String>,
    /// File with the HMAC key for reporting tokens (the same file the API servers read).
    #[arg(long, env = "EPHEMERA_PROGRESS_KEY_FILE")]
    progress_key_file: Option<PathBuf>,
    /// Address the credential hand-off listens on (every replica serves it).
    #[arg(long, env = "EPHEMERA_HANDOFF_ADDR", default_value = "0.0.0.0:8082")]
    handoff_addr: SocketAddr,
    /// The credential hand-off's base URL as worker Pods reach it (e.g. the operator Service's
    /// `http://ephemera-operator.ephemera-system.svc:8082`); required for Tasks with credentials.
    #[arg(long, env = "EPHEMERA_HANDOFF_URL")]
    handoff_url: Option<String>,
    /// Legacy: allow Salesforce / GitHub App Credentials without spec.signingKey, whose private key is
    /// read from KV. Weaker: the key leaves Vault, and a stolen per-attempt token could read it.
    #[arg(long, env = "EPHEMERA_ALLOW_KV_PRIVATE_KEYS")]
    allow_kv_private_keys: bool,
    /// Who writes the per-Credential Vault policies: `managed` (the operator) or `external` (an admin
    /// or `sync-vault-policies` with its own Vault identity; the operator only checks them).
    #[arg(long, env = "EPHEMERA_VAULT_POLICIES", value_enum, default_value = "managed")]
    vault_policies: PolicyArg,
    /// Requests a task container gets for each resource its Task names neither a request nor a limit
    /// for (`name=quantity`, comma-separated; empty for none).
    #[arg(long, env = "EPHEMERA_WORKER_DEFAULT_REQUESTS", default_value = defaults::WORKER_REQUESTS)]
    worker_default_requests: String,
    /// Limits a task container gets for each resource its Task names neither a request nor a limit
    /// for (`name=quantity`, comma-separated; empty for none).
    #[arg(long, env = "EPHEMERA_WORKER_DEFAULT_LIMITS", default_value = defaults::WORKER_LIMITS)]
    worker_default_limits: String,
    /// Also record Normal Kubernetes Events for each Task's progress (Scheduled, Running, Succeeded):
    /// three more writes per Task; the Task's status and conditions say the same. Warnings (failures,
    /// refusals, retries) and CredentialsRevoked are always recorded.
    #[arg(long, env = "EPHEMERA_NORMAL_EVENTS")]
    normal_events: bool,
    /// Task reconciles in flight at once: bounds the operator's memory and its load on the API
    /// server when many Tasks arrive together (1 to 1024).
    #[arg(long, env = "EPHEMERA_MAX_CONCURRENT_RECONCILES", default_value_t = defaults::MAX_CONCURRENT_RECONCILES, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_concurrent_reconciles: u16,
    #[command(flatten)]
    event_ring: ephemera_serve::flags::EventRing,
}

/// `cpu=100m,memory=256Mi` as a map, or an error naming the flag.
fn quantities(flag: &str, text: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    ephemera_operator::config::quantities(text).with_context(|| format!("{flag}: not a name=quantity list"))
}

fn vault_config(a: &Args) -> anyhow::Result<Option<VaultConfig>> {
    let Some(addr) = a.vault_addr.clone() else { return Ok(None) };
    let auth = match a.vault_auth {
        AuthMethod::Kubernetes => VaultAuth::Kubernetes {
            mount: a.vault_auth_mount.clone().unwrap_or_else(|| "kubernetes".into()),
            role: a.vault_role.clone(),
            jwt_file: a.vault_jwt_file.clone(),
        },
        AuthMethod::Approle => VaultAuth::AppRole {
            mount: a.vault_auth_mount.clone().unwrap_or_else(|| "approle".into()),
            role_id: a.vault_role_id.clone().context("--vault-auth approle needs --vault-role-id")?,
            secret_id_file: a
                .vault_secret_id_file
                .clone()
                .context("--vault-auth approle needs --vault-secret-id-file")?,
        },
        AuthMethod::Token => {
            VaultAuth::TokenFile(a.vault_token_file.clone().context("--vault-auth token needs --vault-token-file")?)
        }
    };
    let mut v = VaultConfig::new(&addr, auth);
    if let Some(w) = &a.vault_worker_addr {
        v.worker_addr = w.clone();
    }
    v.token_role = a.vault_token_role.clone();
    v.policy_prefix = a.vault_policy_prefix.clone();
    v.wrap_ttl = Duration::from_secs(a.vault_wrap_ttl_seconds);
    v.policies = match a.vault_policies {
        PolicyArg::Managed => PolicyMode::Managed,
        PolicyArg::External => PolicyMode::External,
    };
    Ok(Some(v))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    ephemera_serve::logging::init(a.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let vault = vault_config(&a)?;
    let config = Config {
        worker_image: a.worker_image,
        default_task_image: a.default_task_image,
        pod_start_timeout: Duration::from_secs(a.pod_start_timeout_seconds),
        termination_grace: Duration::from_secs(a.termination_grace_seconds),
        worker_uid: a.worker_uid,
        lease_namespace: a.lease_namespace.unwrap_or_else(|| a.namespace.clone()),
        namespace: a.namespace,
        handoff_addr: Some(a.handoff_addr),
        handoff_url: a.handoff_url,
        allow_kv_private_keys: a.allow_kv_private_keys,
        default_resources: ephemera_crds::TaskResources {
            requests: quantities("--worker-default-requests", &a.worker_default_requests)?,
            limits: quantities("--worker-default-limits", &a.worker_default_limits)?,
        },
        lease_name: a.lease_name,
        identity: a.identity,
        lease_duration: Duration::from_secs(a.lease_seconds),
        default_queue_concurrency: 0,
        metrics_addr: Some(a.metrics_addr),
        vault,
        progress: match (&a.progress_url, &a.progress_key_file) {
            (Some(url), Some(file)) => {
                let key = ephemera_serve::flags::read_key(file)?;
                Some(ephemera_operator::ProgressConfig { url: url.clone(), key: std::sync::Arc::new(key) })
            }
            _ => None,
        },
        event_ring: a.event_ring.size(),
        normal_events: a.normal_events,
        max_concurrent_reconciles: a.max_concurrent_reconciles,
        worker_proxy: a.worker_proxy.map(|p| (p, a.worker_no_proxy)),
    };
    let client = kube::Client::try_default().await.context("finding the cluster (in-cluster config or KUBECONFIG)")?;
    if let Some(Cmd::SyncVaultPolicies) = a.command {
        let mut vault = config.vault.clone().context("sync-vault-policies needs --vault-addr")?;
        vault.policies = PolicyMode::Managed;
        let issuer = ephemera_operator::vault::Issuer::new(vault)?;
        let creds: kube::Api<ephemera_crds::Credential> = kube::Api::all(client);
        for c in creds.list(&Default::default()).await.context("listing Credentials")? {
            let name = issuer.ensure_policy(&c).await?;
            println!("{name}");
        }
        return Ok(());
    }
    // Kubernetes stops Pods with SIGTERM; Ctrl-C for local runs.
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    ephemera_operator::run(client, config, shutdown).await.context("operator stopped")?;
    Ok(())
}
