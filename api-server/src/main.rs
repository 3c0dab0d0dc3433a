//! `ephemera-api serve` runs the REST API; `ephemera-api token create|revoke` manages API tokens
//! (an admin runs it with kubectl-like access to the API server's namespace).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ephemera_api::auth::oidc::{Oidc, OidcConfig};
use ephemera_api::auth::tokens::{self, NewToken, Tokens};
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::{router, AppState};

/// As the operator's: every replica caches every Task and holds thousands of connections, and
/// glibc's per-thread arenas keep what a burst freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Ephemera API server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Namespace holding the API token Secrets (default: this Pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", global = true)]
    namespace: String,
    /// Log format: `text` or `json` (one object per line), to stderr.
    #[arg(long, env = "EPHEMERA_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    log_format: ephemera_serve::logging::LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the API.
    Serve {
        /// Listen address.
        #[arg(long, env = "EPHEMERA_API_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// YAML file with `issuers:` (OIDC issuers and their rules).
        #[arg(long, env = "EPHEMERA_API_CONFIG")]
        config: Option<PathBuf>,
        /// Requests a caller may make at once.
        #[arg(long, env = "EPHEMERA_API_RATE_BURST", default_value_t = 50)]
        rate_burst: u32,
        /// Sustained requests per second per caller.
        #[arg(long, env = "EPHEMERA_API_RATE_PER_SECOND", default_value_t = 20.0)]
        rate_per_second: f64,
        /// Seconds before a request without a response fails with 503.
        #[arg(long, env = "EPHEMERA_API_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
        request_timeout_seconds: u64,
        /// HMAC key shared with the operator and the other replicas (progress intake, stream tickets).
        #[arg(long, env = "EPHEMERA_PROGRESS_KEY_FILE")]
        progress_key_file: Option<PathBuf>,
        #[command(flatten)]
        event_ring: ephemera_serve::flags::EventRing,
        /// Updates a live subscriber may fall behind before it is cut off (close code 4008).
        #[arg(long, env = "EPHEMERA_STREAM_BUFFER", default_value_t = 1024)]
        stream_buffer: usize,
        /// Subscriptions per WebSocket connection.
        #[arg(long, env = "EPHEMERA_STREAM_SUBSCRIPTIONS", default_value_t = 100)]
        stream_subscriptions: usize,
        /// Live connections per identity (per replica).
        #[arg(long, env = "EPHEMERA_STREAM_CONNECTIONS", default_value_t = 20)]
        stream_connections: usize,
        /// Kernel send buffer per connection, bytes.
        #[arg(long, env = "EPHEMERA_SEND_BUFFER", default_value_t = 262144)]
        send_buffer: u32,
        /// Status writes progress intake makes per Task per second at most (workers coalesce events
        /// into bigger batches when limited).
        #[arg(long, env = "EPHEMERA_PROGRESS_WRITES_PER_SECOND", default_value_t = 1.0)]
        progress_writes_per_second: f64,
        /// Status writes progress intake makes per namespace per second at most (all its Tasks).
        #[arg(long, env = "EPHEMERA_PROGRESS_NAMESPACE_WRITES_PER_SECOND", default_value_t = 20.0)]
        progress_namespace_writes_per_second: f64,
        /// Where `/metrics` (and `/healthz`, `/readyz`) are served, apart from the public port.
        #[arg(long, env = "EPHEMERA_API_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
        metrics_listen: SocketAddr,
        /// Open connections at most; more are closed at accept.
        #[arg(long, env = "EPHEMERA_API_MAX_CONNECTIONS", default_value_t = 4096)]
        max_connections: usize,
        /// Seconds a client has to send a request's headers; also the longest a kept-alive
        /// connection may sit idle.
        #[arg(long, env = "EPHEMERA_API_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
        header_timeout_seconds: u64,
        /// Seconds a SIGTERM drain waits for open requests and streams (keep it under the Pod's
        /// terminationGracePeriodSeconds).
        #[arg(long, env = "EPHEMERA_API_DRAIN_SECONDS", default_value_t = 20)]
        drain_seconds: u64,
        /// Proxies whose X-Forwarded-For and X-Request-Id are believed: comma-separated addresses or
        /// CIDR ranges (the edge's). Empty: nobody's.
        #[arg(long, env = "EPHEMERA_API_TRUSTED_PROXIES", default_value = "")]
        trusted_proxies: ephemera_api::forwarded::TrustedProxies,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Create a token and print it (only once: only its hash is stored).
    Create {
        /// Namespaces it may act in (comma-separated; `*` for all).
        #[arg(long, value_delimiter = ',', required = true)]
        namespaces: Vec<String>,
        /// Verbs: create, read, cancel, delete (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        verbs: Vec<String>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// Who or what it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The id (the part after `eph_`, before the next `_`).
        id: String,
    },
}

/// SIGTERM (how Kubernetes stops a Pod) or Ctrl-C.
async fn shutdown_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ephemera_serve::logging::init(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await.context("finding the cluster (in-cluster config or KUBECONFIG)")?;
    match args.command {
        Cmd::Token { action: TokenCmd::Create { namespaces, verbs, days, description } } => {
            let verbs = verbs
                .iter()
                .map(|v| Verb::parse(v).with_context(|| format!("unknown verb {v:?} (create, read, cancel, delete)")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let expires = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(24 * days.clamp(1, 3650)))
                .context("expiry out of range")?;
            let new = NewToken { namespaces, verbs, expires, description };
            let (id, token) =
                tokens::create(client, &args.namespace, &new).await.context("creating the token Secret")?;
            eprintln!("token {id} created, valid until {expires}; it is shown once:");
            println!("{token}");
        }
        Cmd::Token { action: TokenCmd::Revoke { id } } => {
            tokens::revoke(client, &args.namespace, &id).await.context("deleting the token Secret")?;
            eprintln!("token {id} revoked");
        }
        Cmd::Serve {
            listen,
            config,
            rate_burst,
            rate_per_second,
            request_timeout_seconds,
            progress_key_file,
            event_ring,
            stream_buffer,
            stream_subscriptions,
            stream_connections,
            send_buffer,
            metrics_listen,
            progress_writes_per_second,
            progress_namespace_writes_per_second,
            max_connections,
            header_timeout_seconds,
            drain_seconds,
            trusted_proxies,
        } => {
            let progress_key = match progress_key_file {
                Some(file) => Some(Arc::new(ephemera_serve::flags::read_key(&file)?)),
                None => None,
            };
            let limits = ephemera_api::stream::hub::Limits {
                buffer: stream_buffer,
                subscriptions_per_connection: stream_subscriptions,
                connections_per_identity: stream_connections,
            };
            let hub = ephemera_api::stream::hub::Hub::start(client.clone(), limits);
            // Subscribers get snapshots from the watch cache: fill it before serving.
            hub.ready().await;
            let oidc: OidcConfig = match config {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
                }
                None => OidcConfig::default(),
            };
            let tokens = Tokens::watch(client.clone(), &args.namespace).await;
            let webhooks = ephemera_api::webhooks::Webhooks::start(client.clone());
            webhooks.triggers.ready().await;
            let (drain_tx, stopping) = ephemera_api::serve::Stopping::new();
            let state = Arc::new(AppState {
                client,
                tokens,
                oidc: Oidc::new(oidc).context("the OIDC issuers in --config")?,
                limiter: RateLimiter::new(rate_burst, rate_per_second),
                metrics: Default::default(),
                request_timeout: Duration::from_secs(request_timeout_seconds),
                progress_key,
                event_ring: event_ring.size(),
                hub,
                stopping,
                intake: ephemera_api::tasks::progress::IntakeLimiter::new(
                    progress_writes_per_second,
                    progress_namespace_writes_per_second,
                ),
                webhooks,
                trusted_proxies,
            });
            let metrics_listener = tokio::net::TcpListener::bind(metrics_listen)
                .await
                .with_context(|| format!("listening on {metrics_listen}"))?;
            let metrics_app = ephemera_api::metrics_router(state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(metrics_listener, metrics_app).await {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            });
            let listener =
                ephemera_api::listener(listen, Some(send_buffer)).with_context(|| format!("listening on {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, metrics = %metrics_listen, "serving the Ephemera API");
            let limits = ephemera_api::serve::ServeLimits {
                max_connections,
                header_read_timeout: Duration::from_secs(header_timeout_seconds),
                drain: Duration::from_secs(drain_seconds),
                // Behind the edge every client has the proxy's address: no per-address cap here.
                max_per_peer: None,
            };
            let (counted, hub) = (state.clone(), state.hub.clone());
            let refused = move || {
                counted.metrics.connections_refused.inc();
            };
            let streams_open = move || hub.open_streams();
            ephemera_api::serve::serve(
                listener,
                router(state),
                limits,
                drain_tx,
                shutdown_signal(),
                refused,
                streams_open,
            )
            .await?;
        }
    }
    Ok(())
}
