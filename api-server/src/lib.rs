//! `ephemera-api`: the REST API through which CI systems and tools create and follow Tasks without
//! kubectl. Stateless: every Task it accepts is a `Task` resource in the Kubernetes API; API tokens
//! are Secrets it watches. Every request is authenticated (API token or OIDC), authorised per
//! namespace and verb, rate limited per identity, bounded in body size and time, traced, and
//! counted; every error is a problem document.

pub mod auth;
pub mod dashboard;
pub mod drain;
pub mod error;
pub mod extract;
pub mod forwarded;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod queues;
pub mod schedules;
pub use ephemera_serve as serve;
pub mod stream;
pub mod tasks;
pub mod templates;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use crate::auth::oidc::Oidc;
use crate::auth::tokens::Tokens;
use crate::error::ApiError;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything handlers share.
pub struct AppState {
    /// Kubernetes client.
    pub client: kube::Client,
    /// API tokens.
    pub tokens: Arc<Tokens>,
    /// OIDC verifier.
    pub oidc: Oidc,
    /// Per-identity limits.
    pub limiter: RateLimiter,
    /// Counters.
    pub metrics: Metrics,
    /// Longest a request may take before its response starts.
    pub request_timeout: Duration,
    /// Key shared with the operator and the other replicas: verifies reporting tokens and signs
    /// stream tickets (None: progress intake and tickets are off).
    pub progress_key: Option<Arc<secrecy::SecretSlice<u8>>>,
    /// Events kept per Task.
    pub event_ring: usize,
    /// Live channels.
    pub hub: Arc<stream::hub::Hub>,
    /// Flips when the server drains (SIGTERM): live streams end cleanly.
    pub stopping: serve::Stopping,
    /// Status writes progress intake may make, per Task and per namespace.
    pub intake: tasks::progress::IntakeLimiter,
    /// Triggers and the delivery log of the webhook endpoint.
    pub webhooks: webhooks::Webhooks,
    /// Proxies (the edge) whose X-Forwarded-For and X-Request-Id are believed.
    pub trusted_proxies: forwarded::TrustedProxies,
}

/// The header carrying a request's id (set by the edge, answered on every response).
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let headers = req.headers();
    let xff = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let client = peer.map(|p| state.trusted_proxies.client_ip(p, xff));
    let request_id = state.trusted_proxies.request_id(peer, headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()));
    let span = tracing::info_span!(
        "request",
        %method,
        %route,
        request_id = %request_id,
        client = client.map(|c| c.to_string()).unwrap_or_default(),
        status = tracing::field::Empty
    );
    let mut resp = async {
        match tokio::time::timeout(state.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Timeout.into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let status = resp.status().as_u16();
    span.record("status", status);
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    state.metrics.observe(&route, &method, status, started.elapsed());
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], openapi::json()).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render()).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.client.apiserver_version()).await {
        Ok(Ok(_)) => "ok".into_response(),
        _ => ApiError::Unavailable.into_response(),
    }
}

/// A listening socket whose connections get at most `send_buffer` bytes of kernel send buffer each
/// (accepted sockets inherit it), so a client that stops reading blocks its own connection quickly
/// instead of parking megabytes in the kernel.
pub fn listener(addr: std::net::SocketAddr, send_buffer: Option<u32>) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if let Some(size) = send_buffer {
        socket.set_send_buffer_size(size)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// `/metrics`, `/healthz` and `/readyz` for the metrics listener (not the public port: request
/// counts by route are for the cluster's monitoring, not for every client).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The documented endpoints: the router and its OpenAPI paths from the same handler annotations.
pub fn documented() -> utoipa_axum::router::OpenApiRouter<Arc<AppState>> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .merge(tasks::routes())
        .routes(routes!(queues::list))
        .routes(routes!(templates::list))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::get, schedules::delete))
        .routes(routes!(schedules::suspend))
        .routes(routes!(schedules::resume))
        .routes(routes!(stream::sse::events))
        .routes(routes!(stream::tickets::issue))
        // Deliveries are read by the handler itself, with each source's own limit.
        .routes(routes!(webhooks::deliver::deliver))
        .routes(routes!(webhooks::listing::list))
}

/// The whole API.
pub fn router(state: Arc<AppState>) -> Router {
    let (api, _) = documented().split_for_parts();
    api.route("/api/v1/stream", get(stream::ws::stream))
        .merge(dashboard::routes())
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(catch_panics())
        // Refusals that come before the body is read still read it, so the connection stays usable.
        .layer(axum::middleware::from_fn(drain::drain_unread))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        // Credentials are marked sensitive before anything could log a request's headers.
        .layer(tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .with_state(state)
}

/// A handler that panics answers 500 with a problem document (and is counted and traced by `track`)
/// instead of dropping the client's connection; the panic's message is logged, never sent.
fn catch_panics() -> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send>) -> Response> {
    fn answer(panic: Box<dyn std::any::Any + Send>) -> Response {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        tracing::error!(panic = %what, "a handler panicked");
        ApiError::Internal.into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer as fn(_) -> _)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_problem_document_without_its_message() {
        use tower::ServiceExt as _;
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let app: Router = Router::new().route("/boom", get(boom)).layer(catch_panics());
        let req = axum::http::Request::builder().uri("/boom").body(axum::body::Body::empty()).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("secret detail"), "{text}");
    }
}
