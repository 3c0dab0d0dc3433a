//! `GET .../tasks/{name}/events`: the same events as Server-Sent Events, for curl and CI logs. Each
//! event's `id` is its `seq`; reconnecting with `Last-Event-ID` (or `?since=`) resumes exactly after
//! it, or gets a `resync` and a fresh `snapshot` when that part was compacted away. The stream ends
//! after the Task's `end`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::hub::Update;
use super::messages::{catch_up, ServerMessage};
use super::ws::HEARTBEAT;
use crate::auth::{bearer_header, Identity, Presented, Verb};
use crate::error::{ApiError, Problem, Refusals};
use crate::extract::ApiQuery;
use crate::tasks::query::load;
use crate::AppState;

/// Resume point.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Last `seq` seen (the `Last-Event-ID` header wins).
    pub since: Option<i64>,
}

fn sse_event(m: &ServerMessage) -> Event {
    let (name, id) = match m {
        ServerMessage::Snapshot { last_seq, .. } => ("snapshot", Some(*last_seq)),
        ServerMessage::Event { event, .. } => {
            (if event.kind == ephemera_crds::EventKind::Phase { "phase" } else { "progress" }, Some(event.seq))
        }
        ServerMessage::Resync { .. } => ("resync", None),
        ServerMessage::End { last_seq, .. } => ("end", Some(*last_seq)),
        ServerMessage::Heartbeat { .. } => ("heartbeat", None),
        ServerMessage::Error { .. } => ("error", None),
        ServerMessage::Subscribed { .. } => ("subscribed", None),
    };
    let mut e = Event::default().event(name).data(serde_json::to_string(m).unwrap_or_default());
    if let Some(id) = id {
        e = e.id(id.to_string());
    }
    e
}

/// Streams one Task's events.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}/events",
    tag = "stream",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "Task name"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this seq", minimum = 0),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "text/event-stream of snapshot, progress, phase, resync and end events", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Bad resume point", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let since = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(v) => Some(
            v.trim().parse::<i64>().map_err(|_| ApiError::BadRequest("Last-Event-ID must be a seq number".into()))?,
        ),
        None => q.since,
    };
    if since.is_some_and(|s| s < 0) {
        return Err(ApiError::BadRequest("since must not be negative".into()));
    }
    // The extractor accepted this header; kept to check it again while the stream lives.
    let presented = bearer_header(&headers).map(|t| Presented::Bearer(t.to_string().into()));
    let mut rx = state.hub.receiver();
    let (_, task) = load(&state, &who, &ns, &name, Verb::Read).await?;
    let slot = state.hub.connect(&who.id)?;
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let _slot = slot;
        let mut since = since;
        let mut ended = false;
        let current = state.hub.get(&ns, &name).unwrap_or_else(|| Arc::new(task));
        let (msgs, seq) = catch_up(&current, since, &mut ended);
        since = Some(seq);
        for m in &msgs {
            if tx.send(Ok(sse_event(m))).await.is_err() {
                return;
            }
        }
        let mut recheck = tokio::time::interval(HEARTBEAT);
        recheck.tick().await;
        // One wait for the whole stream: a fresh one per update would register with (and leave)
        // the shutdown signal's waiter list, which every stream of the replica shares.
        let stopping = state.stopping.wait();
        tokio::pin!(stopping);
        while !ended {
            let update = tokio::select! {
                u = rx.recv() => u,
                _ = &mut stopping => {
                    let m = ServerMessage::Error {
                        code: "going-away".into(),
                        message: "server shutting down: reconnect with Last-Event-ID".into(),
                    };
                    let _ = tx.send(Ok(sse_event(&m))).await;
                    return;
                }
                _ = recheck.tick() => {
                    if let Some(p) = &presented {
                        if !p.current(&state).await.is_some_and(|now| now.allows(&ns, Verb::Read)) {
                            let m = ServerMessage::Error {
                                code: "unauthorized".into(),
                                message: "credentials revoked, expired or no longer allowed to read this Task: reconnect with valid ones".into(),
                            };
                            let _ = tx.send(Ok(sse_event(&m))).await;
                            return;
                        }
                    }
                    continue;
                }
            };
            match update {
                Ok(Update::Changed(c))
                    if c.task.metadata.namespace.as_deref() == Some(ns.as_str())
                        && c.task.metadata.name.as_deref() == Some(name.as_str()) =>
                {
                    let (msgs, seq) = catch_up(&c.task, since, &mut ended);
                    since = Some(seq);
                    for m in &msgs {
                        // A client that does not read for this long is cut off; it resumes by id.
                        match tokio::time::timeout(Duration::from_secs(5), tx.send(Ok(sse_event(m)))).await {
                            Ok(Ok(())) => {}
                            _ => return,
                        }
                    }
                }
                Ok(Update::Deleted(t))
                    if t.metadata.namespace.as_deref() == Some(ns.as_str())
                        && t.metadata.name.as_deref() == Some(name.as_str()) =>
                {
                    let end = ServerMessage::End {
                        namespace: ns.clone(),
                        task: name.clone(),
                        phase: "Deleted".into(),
                        last_seq: since.unwrap_or(0),
                    };
                    let _ = tx.send(Ok(sse_event(&end))).await;
                    return;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    state.metrics.slow_consumers.inc();
                    let m = ServerMessage::Error {
                        code: "slow-consumer".into(),
                        message: "reconnect with Last-Event-ID".into(),
                    };
                    let _ = tx.send(Ok(sse_event(&m))).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    let stream = futures::stream::unfold(out, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response())
}
