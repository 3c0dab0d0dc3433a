//! `ephemera-devcluster`: runs the local Kubernetes API server until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ephemera_devcluster::{Config, DevCluster, KubeletSettings};

/// A local Kubernetes API server for Ephemera's tests and dev stack (not for production).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve on; port 0 picks a free port.
    #[arg(long, env = "DEVCLUSTER_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig (admin token, current context) here once serving.
    #[arg(long, env = "DEVCLUSTER_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Persist state here across restarts (default: memory only).
    #[arg(long, env = "DEVCLUSTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Changes kept for watches to resume from; older versions get 410 Gone.
    #[arg(long, env = "DEVCLUSTER_WATCH_HISTORY", default_value_t = 10_000)]
    watch_history: usize,
    /// Do not run the kubelet (Pods are stored but never run).
    #[arg(long, env = "DEVCLUSTER_NO_KUBELET")]
    no_kubelet: bool,
    /// Name of the local node.
    #[arg(long, env = "DEVCLUSTER_NODE_NAME", default_value = "devcluster-node")]
    node_name: String,
    /// Folder for Pod volumes, logs and termination messages (default: DATA_DIR/kubelet or a
    /// temporary folder).
    #[arg(long, env = "DEVCLUSTER_KUBELET_ROOT")]
    kubelet_root: Option<PathBuf>,
    /// A registry (`host:port`) spoken to over plain HTTP, e.g. the loopback one (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Send the pulls of one registry to another, as containerd's mirrors do, e.g.
    /// `docker.io=127.0.0.1:5000` (repeatable).
    #[arg(long = "registry-mirror", value_name = "REGISTRY=MIRROR")]
    registry_mirrors: Vec<String>,
    /// The node's image store (default: KUBELET_ROOT/images).
    #[arg(long, env = "DEVCLUSTER_IMAGE_STORE")]
    image_store: Option<PathBuf>,
    /// First container restart back-off in seconds (doubles per restart, capped at 300).
    #[arg(long, env = "DEVCLUSTER_RESTART_BACKOFF_SECONDS", default_value_t = 10)]
    restart_backoff_seconds: u64,
    /// Append one audit.k8s.io/v1 Event per request (JSON lines) to this file.
    #[arg(long, env = "DEVCLUSTER_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let kubelet = if args.no_kubelet {
        None
    } else {
        let mut k = KubeletSettings::default();
        for entry in &args.registry_mirrors {
            let (from, to) =
                entry.split_once('=').with_context(|| format!("--registry-mirror {entry:?} is not REGISTRY=MIRROR"))?;
            k.registries.mirrors.insert(from.to_string(), to.to_string());
        }
        k.registries.insecure.clone_from(&args.insecure_registries);
        k.image_store.clone_from(&args.image_store);
        k.node_name = args.node_name.clone();
        k.root = args.kubelet_root.clone();
        k.backoff_base = std::time::Duration::from_secs(args.restart_backoff_seconds);
        Some(k)
    };
    let cluster = DevCluster::start(Config {
        listen: args.listen,
        kubeconfig: args.kubeconfig.clone(),
        data_dir: args.data_dir,
        watch_history: args.watch_history,
        kubelet,
        audit_log: args.audit_log,
    })
    .await
    .context("starting the dev cluster")?;
    match &args.kubeconfig {
        Some(k) => println!("ready {} kubeconfig={}", cluster.url(), k.display()),
        None => println!("ready {}", cluster.url()),
    }
    shutdown_signal().await;
    cluster.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
