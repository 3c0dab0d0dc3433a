//! The credential hand-off: `POST /v1/handoff`, where an attempt's `credentials` step exchanges its
//! projected, Pod-bound ServiceAccount token (audience [`HANDOFF_AUDIENCE`]) for the attempt's
//! one-time wrapping token. The operator asks the Kubernetes API (TokenReview) who the caller is,
//! checks it is exactly the Pod it created for that attempt (name and uid, from its own record), and
//! releases the token once: the release is a conditional update of the record, so two claims can
//! never both succeed. Every replica serves it (the record is the shared state), leader or not.

pub mod decide;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ephemera_crds::worker::{HandoffRequest, HANDOFF_AUDIENCE, HANDOFF_PATH, HANDOFF_TOKEN_FIELD};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::Client;
use secrecy::ExposeSecret;
use tracing::Instrument;

use self::decide::{decide, Caller, Decision, Refusal};
use crate::attempt_record;
use crate::metrics::Metrics;

/// How long one claim may take (a TokenReview and two record calls).
const CLAIM_WITHIN: Duration = Duration::from_secs(10);

struct Shared {
    client: Client,
    records: Api<Secret>,
    metrics: Arc<Metrics>,
}

/// Binds `addr` and serves the hand-off in the background; records live in `namespace`.
pub async fn spawn(addr: SocketAddr, client: Client, namespace: &str, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let shared =
        Arc::new(Shared { records: Api::namespaced(client.clone(), namespace), client, metrics: metrics.clone() });
    let app = Router::new()
        .route(HANDOFF_PATH, post(claim))
        // A claim is a few hundred bytes; nothing larger is read.
        .layer(DefaultBodyLimit::max(4096))
        .with_state(shared);
    // Every task container can reach this port (it shares the Pod's network with the credentials
    // step): bound connections and slow clients so a hostile one cannot starve the others.
    let limits = ephemera_serve::ServeLimits {
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(5),
        drain: Duration::from_secs(5),
    };
    let (drain_tx, _) = ephemera_serve::Stopping::new();
    tokio::spawn(async move {
        let refused = move || {
            metrics.listener_connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        if let Err(e) =
            ephemera_serve::serve(listener, app, limits, drain_tx, std::future::pending(), refused, || 0).await
        {
            tracing::error!(error = %e, "credential hand-off stopped");
        }
    });
    Ok(())
}

fn problem(status: u16, kind: &str, detail: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "type": format!("https://ephemera.dev/problems/{kind}"),
        "title": code.canonical_reason().unwrap_or_default(),
        "status": status,
        "detail": detail,
    });
    (code, [("content-type", "application/problem+json")], body.to_string()).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn claim(State(s): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<HandoffRequest>(&body) else {
        return problem(400, "bad-request", "the body is not a hand-off request");
    };
    let span = tracing::info_span!("handoff", namespace = %req.namespace, task = %req.task, attempt = req.attempt);
    let answer = tokio::time::timeout(CLAIM_WITHIN, answer(&s, bearer(&headers), &req).instrument(span.clone())).await;
    let _enter = span.enter();
    match answer {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "credential hand-off failed");
            problem(503, "unavailable", "the operator could not check this claim now")
        }
        Err(_) => problem(503, "unavailable", "the operator could not check this claim in time"),
    }
}

async fn answer(s: &Shared, token: Option<&str>, req: &HandoffRequest) -> Result<Response, kube::Error> {
    let caller = match token {
        Some(t) => review(&s.client, t).await?,
        None => None,
    };
    let record_name = attempt_record::name(&req.task_uid, req.attempt);
    // Only look anything up for a caller Kubernetes vouched for.
    let record = match &caller {
        Some(_) if !req.task_uid.is_empty() => s.records.get_opt(&record_name).await?,
        _ => None,
    };
    let view = record.as_ref().and_then(attempt_record::view);
    match decide(caller.as_ref(), req, view.as_ref()) {
        Decision::Release => {}
        Decision::NotYet => return Ok(problem(503, "not-ready", "the attempt's Pod is not recorded yet: retry")),
        Decision::Refuse(r) => return Ok(refuse(s, r, caller.as_ref())),
    }
    let Some(record) = record else { return Ok(refuse(s, Refusal::NoRecord, caller.as_ref())) };
    let Some(wrapping) = attempt_record::wrapping_token(&record) else {
        return Ok(refuse(s, Refusal::AlreadyReleased, caller.as_ref()));
    };
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    // Conditional on the version read: of two concurrent claims, one gets 409 here.
    match s.records.replace(&record_name, &PostParams::default(), &attempt_record::released(record, &now)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => return Ok(refuse(s, Refusal::AlreadyReleased, caller.as_ref())),
        Err(e) => return Err(e),
    }
    s.metrics.handoffs_released.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("wrapping token released to the attempt's Pod");
    let mut out = serde_json::Map::new();
    out.insert(HANDOFF_TOKEN_FIELD.into(), serde_json::Value::String(wrapping.expose_secret().to_string()));
    Ok((StatusCode::OK, Json(out)).into_response())
}

fn refuse(s: &Shared, r: Refusal, caller: Option<&Caller>) -> Response {
    s.metrics.handoffs_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        reason = ?r,
        caller = caller.map(|c| c.username.as_str()).unwrap_or("unauthenticated"),
        pod = caller.and_then(|c| c.pod_name.as_deref()).unwrap_or_default(),
        "credential hand-off refused"
    );
    let kind = match r {
        Refusal::Unauthenticated => "unauthenticated",
        Refusal::NotAPodOfTheNamespace | Refusal::NotTheAttemptsPod => "forbidden",
        Refusal::NoRecord => "not-found",
        Refusal::AlreadyReleased => "already-released",
    };
    problem(r.status(), kind, r.detail())
}

/// Asks the API server who `token` belongs to, for the hand-off's audience only.
async fn review(client: &Client, token: &str) -> Result<Option<Caller>, kube::Error> {
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let asked = TokenReview {
        spec: TokenReviewSpec { token: token.to_string(), audiences: Some(vec![HANDOFF_AUDIENCE.to_string()]) },
        ..Default::default()
    };
    let answered = reviews.create(&PostParams::default(), &asked).await?;
    let Some(status) = answered.status.filter(|st| st.authenticated == Some(true)) else { return Ok(None) };
    // The API server lists the audiences the token was valid for; ours must be one.
    if !status.audiences.iter().flatten().any(|a| a == HANDOFF_AUDIENCE) {
        return Ok(None);
    }
    let Some(user) = status.user else { return Ok(None) };
    let extra = user.extra.unwrap_or_default();
    let one = |k: &str| extra.get(k).and_then(|v| v.first()).cloned();
    Ok(Some(Caller {
        username: user.username.unwrap_or_default(),
        pod_name: one("authentication.kubernetes.io/pod-name"),
        pod_uid: one("authentication.kubernetes.io/pod-uid"),
    }))
}
