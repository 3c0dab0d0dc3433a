//! The API server in-process against a test stack, and API tokens for it.

use std::sync::Arc;
use std::time::Duration;

use ephemera_api::auth::oidc::{Oidc, OidcConfig};
use ephemera_api::auth::tokens::{self, NewToken, Tokens};
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::serve::{serve, ServeLimits, Stopping};
use ephemera_api::stream::hub::{Hub, Limits};
use ephemera_api::{router, AppState};

use crate::stack::Stack;

/// A running API server (tokens in the `default` namespace).
pub struct ApiServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where `/metrics` is served (not the public port).
    pub metrics_url: String,
    /// Sending `true` starts the drain a SIGTERM would.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// Resolves when the server has drained and stopped.
    pub stopped: tokio::task::JoinHandle<()>,
}

/// Live-status settings of a test API server.
pub struct Live {
    /// The shared key (progress intake, tickets).
    pub key: Vec<u8>,
    /// Events kept per Task.
    pub ring: usize,
    /// Stream limits.
    pub limits: Limits,
    /// Kernel send buffer per connection.
    pub send_buffer: Option<u32>,
}

impl ApiServer {
    /// Serves the API for `s` until the test ends.
    pub async fn start(s: &Stack, oidc: OidcConfig, limiter: RateLimiter) -> ApiServer {
        Self::start_live(s, oidc, limiter, None).await
    }

    /// Same, with live status (progress intake, WebSocket, SSE) when `live` is given.
    pub async fn start_live(s: &Stack, oidc: OidcConfig, limiter: RateLimiter, live: Option<Live>) -> ApiServer {
        Self::start_with(s, oidc, limiter, live, ServeLimits::default()).await
    }

    /// Same, with the given connection limits and timeouts.
    pub async fn start_with(
        s: &Stack,
        oidc: OidcConfig,
        limiter: RateLimiter,
        live: Option<Live>,
        serve_limits: ServeLimits,
    ) -> ApiServer {
        crate::tls();
        let limits = live.as_ref().map(|l| l.limits.clone()).unwrap_or_default();
        let hub = Hub::start(s.client.clone(), limits);
        hub.ready().await;
        let (drain_tx, stopping) = Stopping::new();
        let state = Arc::new(AppState {
            client: s.client.clone(),
            tokens: Tokens::watch(s.client.clone(), "default").await,
            oidc: Oidc::new(oidc).expect("a valid OIDC configuration"),
            limiter,
            metrics: Default::default(),
            request_timeout: Duration::from_secs(30),
            progress_key: live.as_ref().map(|l| Arc::new(secrecy::SecretSlice::from(l.key.clone()))),
            event_ring: live.as_ref().map(|l| l.ring).unwrap_or(100),
            hub,
            stopping,
            intake: Default::default(),
            webhooks: {
                let w = ephemera_api::webhooks::Webhooks::start(s.client.clone());
                w.triggers.ready().await;
                w
            },
            // The edge in the edge tests runs on loopback, like every test client.
            trusted_proxies: "127.0.0.1,::1".parse().expect("loopback"),
        });
        let send_buffer = live.as_ref().and_then(|l| l.send_buffer);
        let listener = ephemera_api::listener("127.0.0.1:0".parse().expect("addr"), send_buffer).expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metrics_url = format!("http://{}", metrics.local_addr().expect("addr"));
        let metrics_app = ephemera_api::metrics_router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(metrics, metrics_app).await;
        });
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let (hub, counted) = (state.hub.clone(), state.clone());
        let stopped = tokio::spawn(async move {
            // Only an explicit stop drains (a dropped sender does not).
            let shutdown = async move {
                if stop_rx.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let refused = move || {
                counted.metrics.connections_refused.inc();
            };
            let _ =
                serve(listener, router(state), serve_limits, drain_tx, shutdown, refused, move || hub.open_streams())
                    .await;
        });
        ApiServer { url, metrics_url, stop, stopped }
    }
}

/// Creates an API token valid for `hours` (negative: already expired).
pub async fn api_token(s: &Stack, namespaces: &[&str], verbs: &[Verb], hours: i64) -> String {
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(hours)).expect("time");
    let new = NewToken {
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        verbs: verbs.to_vec(),
        expires,
        description: "test".into(),
    };
    tokens::create(s.client.clone(), "default", &new).await.expect("token").1
}
