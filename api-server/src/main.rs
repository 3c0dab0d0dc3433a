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

/// The Ephemera API server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Namespace holding the API token Secrets (default: this Pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", global = true)]
    namespace: String,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
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
        Cmd::Serve { listen, config, rate_burst, rate_per_second, request_timeout_seconds } => {
            let oidc: OidcConfig = match config {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
                }
                None => OidcConfig::default(),
            };
            let tokens = Tokens::watch(client.clone(), &args.namespace).await;
            let state = Arc::new(AppState {
                client,
                tokens,
                oidc: Oidc::new(oidc),
                limiter: RateLimiter::new(rate_burst, rate_per_second),
                metrics: Default::default(),
                request_timeout: Duration::from_secs(request_timeout_seconds),
            });
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving the Ephemera API");
            axum::serve(listener, router(state))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    Ok(())
}
