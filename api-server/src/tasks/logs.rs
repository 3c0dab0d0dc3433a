//! `GET .../tasks/{name}/logs`: the current attempt's output through the Pod log API; `follow=true`
//! streams until the attempt ends.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::AsyncReadExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde::Deserialize;
use utoipa::IntoParams;

use super::query::load;
use crate::auth::{bearer_header, Identity, Presented, Verb};
use crate::error::{ApiError, Problem, Refusals};
use crate::extract::ApiQuery;
use crate::stream::ws::HEARTBEAT;
use crate::AppState;

/// The response header naming the attempt a log is of.
pub const ATTEMPT_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("ephemera-attempt");

/// A log reader that does not take a chunk for this long is cut off.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Log options.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Keep streaming until the attempt ends.
    pub follow: Option<bool>,
    /// Only the last lines (1-10000).
    #[param(minimum = 1, maximum = 10000)]
    pub tail_lines: Option<i64>,
}

/// The current attempt's logs.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}/logs",
    tag = "tasks",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Task name"), LogQuery),
    responses(
        (status = 200, description = "Log text (secrets masked by the worker)", body = String, content_type = "text/plain",
            headers(("Ephemera-Attempt" = i32, description = "The attempt this log is of"))),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No attempt has started yet", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn logs(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    if q.tail_lines.is_some_and(|t| !(1..=10_000).contains(&t)) {
        return Err(ApiError::BadRequest("tailLines must be between 1 and 10000".into()));
    }
    let (_, t) = load(&state, &who, &ns, &name, Verb::Read).await?;
    let pod = t.status.as_ref().map(|s| s.pod_name.clone()).unwrap_or_default();
    // Read with the Pod's name from the same status: which attempt this log is of, so a follower
    // that reconnects across a retry knows whether to skip what it has shown.
    let attempt = t.status.as_ref().map(|s| s.attempt).unwrap_or_default();
    let no_pod = || ApiError::Conflict {
        kind: "no-attempt-yet",
        detail: format!("Task {name:?} has no running or finished attempt yet"),
    };
    if pod.is_empty() {
        return Err(no_pod());
    }
    let follow = q.follow.unwrap_or(false);
    // A follow is a live stream like the others: it holds one of the caller's stream slots, has its
    // credentials checked again at every heartbeat, and ends when the server drains.
    let slot = if follow { Some(state.hub.connect(&who.id)?) } else { None };
    let presented = bearer_header(&headers).map(|t| Presented::Bearer(t.to_string().into()));
    let pods: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let lp = LogParams { container: Some("task".into()), follow, tail_lines: q.tail_lines, ..Default::default() };
    let mut reader = match pods.log_stream(&pod, &lp).await {
        Ok(r) => r,
        // The Pod is not there (yet or any more) or its container has not started.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 400 => return Err(no_pod()),
        Err(e) => return Err(ApiError::from_kube(e, "the Task's logs")),
    };
    let stream = async_stream(move |tx| async move {
        let _slot = slot;
        let mut buf = vec![0u8; 8192];
        let mut recheck = tokio::time::interval(HEARTBEAT);
        recheck.tick().await;
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                        // A client that does not read for this long is cut off.
                        match tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok::<_, std::io::Error>(chunk))).await {
                            Ok(Ok(())) => {}
                            _ => break,
                        }
                    }
                },
                _ = state.stopping.wait() => break,
                _ = recheck.tick() => {
                    if let Some(p) = &presented {
                        if !p.current(&state).await.is_some_and(|now| now.allows(&ns, Verb::Read)) {
                            state.metrics.streams_reauth_ended.inc();
                            break;
                        }
                    }
                }
            }
        }
    });
    let headers = [(CONTENT_TYPE, "text/plain; charset=utf-8".to_string()), (ATTEMPT_HEADER, attempt.to_string())];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// A stream fed by a task (the reader is not `Sync`, so it lives in its own task).
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
