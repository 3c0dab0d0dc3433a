//! `GET /api/v1/queues`: every queue's limit, depth and running count (from the TaskQueue status the
//! operator keeps current). Any authenticated caller may read it.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use ephemera_crds::TaskQueue;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use crate::auth::Identity;
use crate::error::{ApiError, Refusals};
use crate::tasks::model::QueueView;
use crate::AppState;

/// Lists queues.
#[utoipa::path(
    get,
    path = "/api/v1/queues",
    tag = "queues",
    responses(
        (status = 200, description = "Every queue", body = [QueueView]),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<Arc<AppState>>, _who: Identity) -> Result<Json<Vec<QueueView>>, ApiError> {
    let api: Api<TaskQueue> = Api::all(state.client.clone());
    let queues = api.list(&ListParams::default()).await.map_err(|e| ApiError::from_kube(e, "queues"))?;
    Ok(Json(
        queues
            .items
            .iter()
            .map(|q| {
                let st = q.status.clone().unwrap_or_default();
                QueueView {
                    name: q.name_any(),
                    concurrency: q.spec.concurrency,
                    running: st.running,
                    pending: st.pending,
                }
            })
            .collect(),
    ))
}
