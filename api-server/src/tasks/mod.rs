//! The Task endpoints under `/api/v1/namespaces/{namespace}/tasks`.

pub mod control;
pub mod create;
pub mod logs;
pub mod model;
pub mod progress;
pub mod query;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// The Task routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/namespaces/{namespace}/tasks", post(create::create).get(query::list))
        .route("/api/v1/namespaces/{namespace}/tasks/{name}", get(query::get).delete(control::delete))
        .route("/api/v1/namespaces/{namespace}/tasks/{name}/result", get(query::result))
        .route("/api/v1/namespaces/{namespace}/tasks/{name}/cancel", post(control::cancel))
        .route("/api/v1/namespaces/{namespace}/tasks/{name}/logs", get(logs::logs))
}
