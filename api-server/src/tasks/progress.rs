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

use crate::error::{ApiError, BodyProblems, Problem};
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
/// Bytes of a progress message kept (the worker's documented limit, enforced here too: a command
/// can read its reporting token and post directly).
pub const MAX_MESSAGE_BYTES: usize = 200;

/// How often one Task's status may be written by progress intake, and a namespace's share of it:
/// every write costs the cluster a full status replace and every watcher a copy of the Task.
pub struct IntakeLimiter {
    per_task: crate::limits::RateLimiter,
    per_namespace: crate::limits::RateLimiter,
}

impl IntakeLimiter {
    /// `task_per_second` writes per Task (a burst of two), `namespace_per_second` per namespace (a
    /// burst of twice that).
    pub fn new(task_per_second: f64, namespace_per_second: f64) -> Self {
        let burst = |r: f64| u32::try_from((r * 2.0).ceil() as i64).unwrap_or(u32::MAX).max(2);
        Self {
            per_task: crate::limits::RateLimiter::new(2, task_per_second),
            per_namespace: crate::limits::RateLimiter::new(burst(namespace_per_second), namespace_per_second),
        }
    }

    /// Takes one write for `task` of `namespace`, or says how long to wait (the worker then sends a
    /// bigger batch later: writes are coalesced, nothing is lost).
    fn check(&self, namespace: &str, task: &str) -> Result<(), ApiError> {
        self.per_task.check(&format!("{namespace}/{task}"))?;
        self.per_namespace.check(namespace)
    }
}

impl Default for IntakeLimiter {
    fn default() -> Self {
        Self::new(1.0, 20.0)
    }
}

/// Text as it may be stored and streamed: no control characters (terminal escapes, NUL, line
/// breaks) or bidirectional overrides, at most `max` bytes, cut at a character boundary.
pub fn clean_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        // Format characters that reorder, hide or break text: bidi marks and overrides, zero-width
        // characters, line and paragraph separators, the byte-order mark, interlinear annotations.
        let invisible = matches!(c,
            '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}');
        if c.is_control() || invisible {
            continue;
        }
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

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
        (status = 401, description = "Missing, invalid or expired reporting token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token is for another Task", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not the current attempt, or the Task ended", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Reporting too often for this attempt (the worker backs off)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable", body = Problem, content_type = "application/problem+json"),
        BodyProblems,
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
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::Validation(vec![crate::error::FieldError {
            field: "events".into(),
            message: format!("at most {MAX_BATCH} per batch"),
        }]));
    }
    // Every request costs a read of the Task: a replayed or refused batch is still limited, per
    // attempt, like any caller's requests (the write budget below is much tighter).
    state.limiter.check(&format!("attempt:{ns}/{name}/{}", claims.attempt))?;
    let api: Api<Task> = Api::namespaced(state.client.clone(), &ns);
    let mut charged = false;
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
        // At most about one status write per Task per second (and a budget per namespace), whoever
        // posts; only a write that would happen counts (a conflict retry is the same write).
        if !charged {
            state.intake.check(&ns, &name)?;
            charged = true;
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
                time: clean_text(&e.time, 40),
                percent: e.percent.map(|p| i32::from(p.min(100))),
                message: clean_text(&e.message, MAX_MESSAGE_BYTES),
            }),
            state.event_ring,
        );
        let last_seq = status.last_seq;
        let mut next = task.clone();
        next.status = Some(status);
        match api.replace_status(&name, &PostParams::default(), &next).await {
            Ok(_) => {
                state.metrics.progress_events.inc_by(accepted as u64);
                return Ok((StatusCode::ACCEPTED, Json(Accepted { accepted, last_seq })));
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(ApiError::from_kube(e, &format!("Task {name:?}"))),
        }
    }
    Err(ApiError::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_are_bounded_and_free_of_control_characters() {
        assert_eq!(clean_text("deploying \u{1b}[31mred\u{1b}[0m\r\n\0done", 200), "deploying [31mred[0mdone");
        assert_eq!(clean_text("abc\u{202e}def\u{2066}", 200), "abcdef", "no bidi overrides");
        assert_eq!(clean_text("a\u{2028}b\u{200b}c\u{feff}d\u{061c}e", 200), "abcde", "no separators or zero-width");
        let long = "é".repeat(300);
        let cut = clean_text(&long, MAX_MESSAGE_BYTES);
        assert_eq!(cut.len(), 200, "cut at a character boundary within 200 bytes");
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(clean_text(&"\u{7}".repeat(1024), 200), "", "1 KiB of control characters stores nothing");
    }

    #[test]
    fn intake_writes_are_limited_per_task_and_per_namespace() {
        let l = IntakeLimiter::new(1.0, 3.0);
        assert!(l.check("ns", "a").is_ok() && l.check("ns", "a").is_ok(), "a burst of two");
        assert!(matches!(l.check("ns", "a"), Err(ApiError::RateLimited(_))), "then about one a second");
        assert!(l.check("ns", "b").is_ok() && l.check("ns", "c").is_ok() && l.check("ns", "d").is_ok());
        assert!(l.check("ns", "e").is_ok());
        assert!(matches!(l.check("ns", "f"), Err(ApiError::RateLimited(_))), "the namespace budget is spent");
        assert!(l.check("other", "a").is_ok(), "other namespaces are not affected");
    }
}
