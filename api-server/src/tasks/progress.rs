//! `POST .../tasks/{name}/progress`: progress intake from workers. The bearer is the attempt's
//! reporting token (signed by the operator): it only allows this Task's current attempt, until it
//! expires. Events are numbered by the worker; anything at or below the last accepted number is a
//! retried delivery and ignored. Accepted events are appended to the Task's bounded event ring in one
//! status write (resourceVersion-guarded, retried on conflict).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ephemera_crds::attempt_token::{self, TokenError};
use ephemera_crds::worker::ProgressBatch;
use ephemera_crds::{EventKind, ProgressEvent, Task};
use kube::api::{Api, PostParams};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::AppState;

/// The bearer of a worker's request, checked for presence before the body is read (so a missing
/// credential is a 401 whatever the body).
pub struct ReportingToken(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ReportingToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        crate::auth::bearer_header(&parts.headers)
            .map(|t| ReportingToken(t.to_string()))
            .ok_or_else(|| ApiError::Unauthorized("a reporting token is required".into()))
    }
}

/// Events per batch at most.
const MAX_BATCH: usize = 100;

/// What was taken.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// New events stored.
    pub accepted: usize,
    /// The Task's last event sequence number.
    pub last_seq: i64,
}

/// Takes a batch of progress events from a worker.
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}/progress",
    tag = "workers",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Task name")),
    request_body(content = ProgressBatch, content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = Accepted),
        (status = 400, description = "Malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired reporting token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token is for another Task", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not the current attempt, or the Task ended", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Reporting too often for this attempt (the worker backs off)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("attempt" = []))
)]
pub async fn intake(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    ReportingToken(bearer): ReportingToken,
    ApiJson(batch): ApiJson<ProgressBatch>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let key = state.progress_key.as_ref().ok_or_else(|| ApiError::NotFound("progress intake is not enabled".into()))?;
    let claims = attempt_token::verify(key.expose_secret(), &bearer, jiff::Timestamp::now().as_second()).map_err(
        |e| match e {
            TokenError::Expired => ApiError::Unauthorized("the reporting token has expired".into()),
            TokenError::Invalid => ApiError::Unauthorized("invalid reporting token".into()),
        },
    )?;
    if claims.namespace != ns || claims.task != name {
        return Err(ApiError::Forbidden("this reporting token is for another Task".into()));
    }
    if batch.attempt != claims.attempt {
        return Err(ApiError::Forbidden("this reporting token is for another attempt".into()));
    }
    // Each status write costs the cluster a write: one chatty worker gets the same budget as a caller.
    state.limiter.check(&format!("attempt:{ns}/{name}/{}", claims.attempt))?;
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::Validation(vec![crate::error::FieldError {
            field: "events".into(),
            message: format!("at most {MAX_BATCH} per batch"),
        }]));
    }
    let api: Api<Task> = Api::namespaced(state.client.clone(), &ns);
    for _ in 0..8 {
        let task = api.get(&name).await.map_err(|e| ApiError::from_kube(e, &format!("Task {name:?}")))?;
        if task.metadata.uid.as_deref() != Some(claims.uid.as_str()) {
            return Err(ApiError::Forbidden("this reporting token is for another Task of that name".into()));
        }
        let mut status = task.status.clone().unwrap_or_default();
        if status.attempt != claims.attempt || status.phase.is_terminal() {
            return Err(ApiError::Conflict {
                kind: "attempt-over",
                detail: "this attempt is no longer running".into(),
            });
        }
        let fresh: Vec<_> = batch.events.iter().filter(|e| e.wseq > status.worker_seq).collect();
        let dropped = i64::try_from(batch.dropped).unwrap_or(i64::MAX);
        if fresh.is_empty() && dropped <= status.progress_dropped {
            return Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: 0, last_seq: status.last_seq })));
        }
        let accepted = fresh.len();
        status.worker_seq = fresh.iter().map(|e| e.wseq).max().unwrap_or(status.worker_seq);
        status.progress_dropped = status.progress_dropped.max(dropped);
        status.push_events(
            fresh.into_iter().map(|e| ProgressEvent {
                seq: 0,
                kind: EventKind::Progress,
                phase: None,
                attempt: claims.attempt,
                time: e.time.chars().take(40).collect(),
                percent: e.percent.map(|p| i32::from(p.min(100))),
                message: e.message.chars().take(1024).collect(),
            }),
            state.event_ring,
        );
        let last_seq = status.last_seq;
        let mut next = task.clone();
        next.status = Some(status);
        match api.replace_status(&name, &PostParams::default(), &next).await {
            Ok(_) => {
                state.metrics.progress_events.fetch_add(accepted as u64, std::sync::atomic::Ordering::Relaxed);
                return Ok((StatusCode::ACCEPTED, Json(Accepted { accepted, last_seq })));
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(ApiError::from_kube(e, &format!("Task {name:?}"))),
        }
    }
    Err(ApiError::Unavailable)
}
