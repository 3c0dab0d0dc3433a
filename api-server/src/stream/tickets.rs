//! Short-lived stream tickets for clients that cannot set headers on a WebSocket (browsers): a REST
//! call with the caller's credentials returns a signed ticket naming the caller and its grants, valid
//! for 30 seconds on any replica (they share the signing key), and good for one stream only: redeeming
//! creates a Lease named after the ticket's random id in the API server's namespace, which the
//! Kubernetes API creates once, so a ticket copied from a URL or a log cannot open a second stream on
//! any replica. Redemption records are deleted once the ticket has expired.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::auth::{Grant, Identity};
use crate::error::{ApiError, Problem, Refusals};
use crate::AppState;

/// How long a ticket is good for.
pub const TICKET_SECONDS: i64 = 30;

/// A ticket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Pass as `?ticket=` when opening `/api/v1/stream`.
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in_seconds: i64,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    /// Random, names the ticket's redemption record.
    jti: String,
    id: String,
    grants: Vec<Grant>,
    exp: i64,
    /// When the credential the ticket was issued for expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

fn mac(key: &[u8], payload: &str) -> Result<Hmac<Sha256>, ApiError> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).map_err(|_| ApiError::Internal)?;
    m.update(b"ephemera-stream-ticket-v1\0");
    m.update(payload.as_bytes());
    Ok(m)
}

/// Issues a ticket for the caller.
#[utoipa::path(
    post,
    path = "/api/v1/stream/tickets",
    tag = "stream",
    responses(
        (status = 201, description = "A ticket", body = Ticket),
        (status = 404, description = "Tickets are not enabled", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn issue(
    State(state): State<Arc<AppState>>,
    who: Identity,
) -> Result<(axum::http::StatusCode, Json<Ticket>), ApiError> {
    let key = state.progress_key.as_ref().ok_or_else(|| ApiError::NotFound("stream tickets are not enabled".into()))?;
    let now = jiff::Timestamp::now().as_second();
    // Never valid past the credential it was issued for.
    let exp = who.valid_until.map_or(now + TICKET_SECONDS, |u| u.min(now + TICKET_SECONDS));
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|_| ApiError::Internal)?;
    let jti = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let claims = Claims { jti, id: who.id, grants: who.grants, exp, until: who.valid_until };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(|_| ApiError::Internal)?);
    let sig = URL_SAFE_NO_PAD.encode(mac(key.expose_secret(), &payload)?.finalize().into_bytes());
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Ticket { ticket: format!("{payload}.{sig}"), expires_in_seconds: exp - now }),
    ))
}

/// Label of the redemption records.
const REDEEMED_LABEL: &str = "ephemera.dev/stream-ticket";

/// Checks a ticket and redeems it (once, across every replica): the identity it carries.
pub async fn redeem(state: &AppState, ticket: &str) -> Result<Identity, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or expired stream ticket".into());
    let key = state.progress_key.as_ref().ok_or_else(invalid)?;
    let (payload, sig) = ticket.split_once('.').ok_or_else(invalid)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| invalid())?;
    mac(key.expose_secret(), payload)?.verify_slice(&sig).map_err(|_| invalid())?;
    let claims: Claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?).map_err(|_| invalid())?;
    let now = jiff::Timestamp::now().as_second();
    if claims.exp <= now || claims.jti.len() != 32 || !claims.jti.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let leases: Api<Lease> = Api::namespaced(state.client.clone(), state.tokens.namespace());
    let name = format!("ephemera-ticket-{}", claims.jti);
    let mut record = Lease::default();
    record.metadata.name = Some(name.clone());
    record.metadata.labels = Some([(REDEEMED_LABEL.to_string(), "true".to_string())].into());
    record.metadata.annotations = Some([(EXPIRES_ANNOTATION.to_string(), claims.exp.to_string())].into());
    match leases.create(&PostParams::default(), &record).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(ApiError::Unauthorized("this stream ticket was already used: get a new one".into()))
        }
        Err(e) => return Err(ApiError::from_kube(e, "the stream ticket's redemption")),
    }
    // The record is needed only while the ticket could still be presented.
    let wait = u64::try_from(claims.exp - now).unwrap_or(0) + 5;
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        let _ = leases.delete(&name, &DeleteParams::default()).await;
        sweep(&leases).await;
    });
    Ok(Identity { id: claims.id, grants: claims.grants, valid_until: claims.until })
}

/// Annotation: when the redeemed ticket expired (Unix seconds).
const EXPIRES_ANNOTATION: &str = "ephemera.dev/expires";

/// Deletes redemption records of tickets long expired (left by a replica that stopped before it
/// could delete its own), at most once a minute per replica.
async fn sweep(leases: &Api<Lease>) {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = jiff::Timestamp::now().as_second();
    if now - LAST.swap(now, std::sync::atomic::Ordering::Relaxed) < 60 {
        return;
    }
    let Ok(list) = leases.list(&ListParams::default().labels(&format!("{REDEEMED_LABEL}=true"))).await else { return };
    for l in list.items {
        let expired = l
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_ANNOTATION))
            .and_then(|e| e.parse::<i64>().ok())
            .is_none_or(|e| e + 60 < now);
        if let (true, Some(name)) = (expired, l.metadata.name.as_deref()) {
            let _ = leases.delete(name, &DeleteParams::default()).await;
        }
    }
}
