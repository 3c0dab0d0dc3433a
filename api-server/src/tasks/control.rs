//! Changing Tasks: cancel (the operator stops the Pod and revokes credentials) and delete.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kube::api::{DeleteParams, Patch, PatchParams};

use super::model::TaskView;
use super::query::load;
use crate::auth::{Identity, Verb};
use crate::error::{ApiError, Problem, Refusals};
use crate::AppState;

/// Asks for a Task to be cancelled.
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}/cancel",
    tag = "tasks",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Task name")),
    responses(
        (status = 202, description = "Cancellation requested", body = TaskView),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already finished", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<(StatusCode, Json<TaskView>), ApiError> {
    let (api, t) = load(&state, &who, &ns, &name, Verb::Cancel).await?;
    let phase = t.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if phase.is_terminal() {
        return Err(ApiError::Conflict {
            kind: "task-finished",
            detail: format!("Task {name:?} already ended ({})", phase.as_str()),
        });
    }
    let patch = serde_json::json!({"spec": {"cancel": true}});
    let t = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ApiError::from_kube(e, &format!("Task {name:?}")))?;
    tracing::info!(namespace = %ns, task = %name, requester = %who.id, "cancel requested");
    Ok((StatusCode::ACCEPTED, Json(TaskView::from(&t))))
}

/// Deletes a Task (its Pods and credentials are cleaned up first).
#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}",
    tag = "tasks",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Task name")),
    responses(
        (status = 202, description = "Deletion started"),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<StatusCode, ApiError> {
    let (api, _) = load(&state, &who, &ns, &name, Verb::Delete).await?;
    api.delete(&name, &DeleteParams::background())
        .await
        .map_err(|e| ApiError::from_kube(e, &format!("Task {name:?}")))?;
    tracing::info!(namespace = %ns, task = %name, requester = %who.id, "delete requested");
    Ok(StatusCode::ACCEPTED)
}
