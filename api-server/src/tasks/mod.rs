//! The Task endpoints under `/api/v1/namespaces/{namespace}/tasks`.

pub mod control;
pub mod create;
pub mod logs;
pub mod model;
pub mod progress;
pub mod query;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The Task routes, each registered from its handler's `#[utoipa::path]` (path, method and OpenAPI
/// description in one place).
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create::create, query::list))
        .routes(routes!(query::get, control::delete))
        .routes(routes!(query::result))
        .routes(routes!(control::cancel))
        .routes(routes!(logs::logs))
        .routes(routes!(progress::intake))
}
