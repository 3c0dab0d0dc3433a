//! Short-lived stream tickets for clients that cannot set headers on a WebSocket (browsers): a REST
//! call with the caller's credentials returns a signed ticket naming the caller and its grants, valid
//! for 30 seconds on any replica (they share the signing key).

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

use crate::auth::{Grant, Identity};
use crate::error::{ApiError, Problem};
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
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Tickets are not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
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
    let claims = Claims { id: who.id, grants: who.grants, exp, until: who.valid_until };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(|_| ApiError::Internal)?);
    let sig = URL_SAFE_NO_PAD.encode(mac(key.expose_secret(), &payload)?.finalize().into_bytes());
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Ticket { ticket: format!("{payload}.{sig}"), expires_in_seconds: exp - now }),
    ))
}

/// Checks a ticket.
pub fn verify(state: &AppState, ticket: &str) -> Result<Identity, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or expired stream ticket".into());
    let key = state.progress_key.as_ref().ok_or_else(invalid)?;
    let (payload, sig) = ticket.split_once('.').ok_or_else(invalid)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| invalid())?;
    mac(key.expose_secret(), payload)?.verify_slice(&sig).map_err(|_| invalid())?;
    let claims: Claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?).map_err(|_| invalid())?;
    if claims.exp <= jiff::Timestamp::now().as_second() {
        return Err(invalid());
    }
    Ok(Identity { id: claims.id, grants: claims.grants, valid_until: claims.until })
}
