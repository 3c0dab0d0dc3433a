//! The API server in-process against a test stack, and API tokens for it.

use std::sync::Arc;
use std::time::Duration;

use ephemera_api::auth::oidc::{Oidc, OidcConfig};
use ephemera_api::auth::tokens::{self, NewToken, Tokens};
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::stream::hub::{Hub, Limits};
use ephemera_api::{router, AppState};

use crate::stack::Stack;

/// A running API server (tokens in the `default` namespace).
pub struct ApiServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
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
        crate::tls();
        let limits = live.as_ref().map(|l| l.limits.clone()).unwrap_or_default();
        let hub = Hub::start(s.client.clone(), limits);
        hub.ready().await;
        let state = Arc::new(AppState {
            client: s.client.clone(),
            tokens: Tokens::watch(s.client.clone(), "default").await,
            oidc: Oidc::new(oidc),
            limiter,
            metrics: Default::default(),
            request_timeout: Duration::from_secs(30),
            progress_key: live.as_ref().map(|l| Arc::new(secrecy::SecretSlice::from(l.key.clone()))),
            event_ring: live.as_ref().map(|l| l.ring).unwrap_or(100),
            hub,
        });
        let send_buffer = live.as_ref().and_then(|l| l.send_buffer);
        let listener = ephemera_api::listener("127.0.0.1:0".parse().expect("addr"), send_buffer).expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(state)).await;
        });
        ApiServer { url }
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
