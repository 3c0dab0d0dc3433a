//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Binds and serves in the background.
pub async fn spawn(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], m.render())
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        // Ready once running: a standby replica is ready too (it serves metrics and waits for the Lease).
        .route("/readyz", get(|| async { "ok" }))
        .with_state(metrics);
    let limits = ephemera_serve::ServeLimits {
        max_connections: 256,
        header_read_timeout: std::time::Duration::from_secs(10),
        drain: std::time::Duration::from_secs(1),
        max_per_peer: None,
    };
    let (drain_tx, _) = ephemera_serve::Stopping::new();
    tokio::spawn(async move {
        if let Err(e) =
            ephemera_serve::serve(listener, app, limits, drain_tx, std::future::pending(), || {}, || 0).await
        {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
