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

/// How long one claim may take, body included (a TokenReview and two record calls).
const CLAIM_WITHIN: Duration = Duration::from_secs(10);
/// How long a client may take to send the (small) body.
const BODY_WITHIN: Duration = Duration::from_secs(3);
/// TokenReviews in flight at most: junk bearers cannot use up the operator's share of the
/// Kubernetes API (claims beyond it are told to retry).
const REVIEWS_AT_ONCE: usize = 16;

struct Shared {
    client: Client,
    records: Api<Secret>,
    metrics: Arc<Metrics>,
    reviews: tokio::sync::Semaphore,
}

/// Binds `addr` and serves the hand-off in the background; records live in `namespace`.
pub async fn spawn(addr: SocketAddr, client: Client, namespace: &str, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let shared = Arc::new(Shared {
        records: Api::namespaced(client.clone(), namespace),
        client,
        metrics: metrics.clone(),
        reviews: tokio::sync::Semaphore::new(REVIEWS_AT_ONCE),
    });
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
        // One Pod (one address) never needs more than a couple: a hostile task container sharing
        // the Pod's address cannot take the others' places.
        max_per_peer: Some(8),
    };
    let (drain_tx, _) = ephemera_serve::Stopping::new();
    tokio::spawn(async move {
        let refused = move || {
            metrics.listener_connections_refused.inc();
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

async fn claim(State(s): State<Arc<Shared>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    // A slow body must not hold a connection: the header timeout ends once headers are in.
    let body = match tokio::time::timeout(BODY_WITHIN, axum::body::to_bytes(body, 4096)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return problem(413, "payload-too-large", "a hand-off request is a few hundred bytes"),
        Err(_) => return problem(408, "request-timeout", "the request body was not sent in time"),
    };
    let Ok(req) = serde_json::from_slice::<HandoffRequest>(&body) else {
        return problem(400, "bad-request", "the body is not a hand-off request");
    };
    if !plausible_uid(&req.task_uid) {
        return problem(400, "bad-request", "taskUid is not a Kubernetes uid");
    }
    // Named only once Kubernetes vouched for the caller (anything before that is the caller's word).
    let span = tracing::info_span!(
        "handoff",
        namespace = tracing::field::Empty,
        task = tracing::field::Empty,
        attempt = tracing::field::Empty
    );
    let answer =
        tokio::time::timeout(CLAIM_WITHIN, answer(&s, bearer(&parts.headers), &req, &span).instrument(span.clone()))
            .await;
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

/// A Kubernetes uid (`8-4-4-4-12` hex), as record names are built from it.
fn plausible_uid(uid: &str) -> bool {
    let groups: Vec<&str> = uid.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `token` could be a ServiceAccount token for the hand-off at all (a JWT whose `aud` names
/// it and whose `exp` is ahead): anything else is refused without asking the API server.
fn worth_reviewing(token: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(raw) = URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')) else { return false };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&raw) else { return false };
    let aud = match &claims["aud"] {
        serde_json::Value::String(a) => a == HANDOFF_AUDIENCE,
        serde_json::Value::Array(a) => a.iter().any(|x| x == HANDOFF_AUDIENCE),
        _ => false,
    };
    aud && claims["exp"].as_i64().is_some_and(|e| e > jiff::Timestamp::now().as_second())
}

async fn answer(
    s: &Shared,
    token: Option<&str>,
    req: &HandoffRequest,
    span: &tracing::Span,
) -> Result<Response, kube::Error> {
    let caller = match token.filter(|t| worth_reviewing(t)) {
        Some(t) => {
            let Ok(_permit) = s.reviews.try_acquire() else {
                return Ok(problem(503, "busy", "too many claims are being checked: retry"));
            };
            review(&s.client, t).await?
        }
        None => None,
    };
    if caller.is_some() {
        span.record("namespace", req.namespace.as_str());
        span.record("task", req.task.as_str());
        span.record("attempt", req.attempt);
    }
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
    s.metrics.handoffs_released.inc();
    tracing::info!("wrapping token released to the attempt's Pod");
    let mut out = serde_json::Map::new();
    out.insert(HANDOFF_TOKEN_FIELD.into(), serde_json::Value::String(wrapping.expose_secret().to_string()));
    Ok((StatusCode::OK, Json(out)).into_response())
}

fn refuse(s: &Shared, r: Refusal, caller: Option<&Caller>) -> Response {
    s.metrics.handoffs_refused.inc();
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn jwt(claims: serde_json::Value) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn only_plausible_claims_reach_the_api_server() {
        let later = jiff::Timestamp::now().as_second() + 600;
        assert!(worth_reviewing(&jwt(serde_json::json!({"aud": [HANDOFF_AUDIENCE], "exp": later}))));
        assert!(!worth_reviewing(&jwt(serde_json::json!({"aud": ["https://kubernetes.default.svc"], "exp": later}))));
        assert!(!worth_reviewing(&jwt(serde_json::json!({"aud": HANDOFF_AUDIENCE, "exp": 1}))), "expired");
        assert!(!worth_reviewing("eph_abc_def") && !worth_reviewing("a.b") && !worth_reviewing("a.!!!.c"));
        assert!(plausible_uid("0b6c1d2e-aaaa-bbbb-cccc-000000000001"));
        assert!(
            !plausible_uid("../../etc") && !plausible_uid("0b6c1d2e-aaaa-bbbb-cccc-00000000000g") && !plausible_uid("")
        );
    }
}
