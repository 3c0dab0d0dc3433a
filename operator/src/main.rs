//! `ephemera-operator`: reconciles Ephemera Tasks into worker Pods. Finds the cluster the standard
//! way (in-cluster config, else `KUBECONFIG`/`~/.kube/config`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ephemera_operator::Config;

/// The Ephemera operator.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Worker image for Tasks that name none.
    #[arg(long, env = "EPHEMERA_WORKER_IMAGE", default_value = "ghcr.io/ephemera-dev/ephemera-worker:latest")]
    worker_image: String,
    /// Seconds a Pod may stay unstarted before its attempt fails (PodStuck).
    #[arg(long, env = "EPHEMERA_POD_START_TIMEOUT_SECONDS", default_value_t = 300)]
    pod_start_timeout_seconds: u64,
    /// Grace period for worker Pods on cancel, in seconds.
    #[arg(long, env = "EPHEMERA_TERMINATION_GRACE_SECONDS", default_value_t = 30)]
    termination_grace_seconds: u64,
    /// Non-root UID/GID for worker Pods.
    #[arg(long, env = "EPHEMERA_WORKER_UID", default_value_t = 65532)]
    worker_uid: i64,
    /// Namespace of the leader-election Lease (default: this Pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "EPHEMERA_LEASE_NAME", default_value = "ephemera-operator")]
    lease_name: String,
    /// This replica's identity (default: the Pod name from HOSTNAME).
    #[arg(long, env = "HOSTNAME", default_value = "ephemera-operator")]
    identity: String,
    /// Lease duration in seconds.
    #[arg(long, env = "EPHEMERA_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_seconds: u64,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "EPHEMERA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let a = Args::parse();
    let config = Config {
        worker_image: a.worker_image,
        pod_start_timeout: Duration::from_secs(a.pod_start_timeout_seconds),
        termination_grace: Duration::from_secs(a.termination_grace_seconds),
        worker_uid: a.worker_uid,
        lease_namespace: a.lease_namespace,
        lease_name: a.lease_name,
        identity: a.identity,
        lease_duration: Duration::from_secs(a.lease_seconds),
        default_queue_concurrency: 0,
        metrics_addr: Some(a.metrics_addr),
    };
    let client = kube::Client::try_default().await.context("finding the cluster (in-cluster config or KUBECONFIG)")?;
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
