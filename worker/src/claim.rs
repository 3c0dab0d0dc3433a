//! The `credentials` step claims its attempt's one-time wrapping token from the operator's hand-off.
//! It proves which Pod it is with its projected ServiceAccount token (audience of our own, bound to
//! this Pod's name and uid); the operator checks that through TokenReview against the Pod it created
//! for this attempt and releases the token once. Nothing unwrappable is ever stored where a tenant
//! could read it, so a Pod of the tenant's making, even with the same ServiceAccount, gets nothing.

use std::time::Duration;

use ephemera_crds::worker::{HandoffRequest, HANDOFF_PATH, HANDOFF_TOKEN_FIELD};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize as _;

/// How long to wait for the operator to record this Pod (it does right after creating it).
const NOT_READY_FOR: Duration = Duration::from_secs(30);

/// Why no wrapping token was obtained (never includes a token).
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The token was already handed out: someone else has it (possible interception).
    #[error("the operator already handed out this attempt's token ({0}): possible interception")]
    AlreadyClaimed(String),
    /// The operator says this is not the attempt's Pod, or has no token for it.
    #[error("the operator refused to hand over this attempt's token: HTTP {status}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The operator's reason.
        detail: String,
    },
    /// The hand-off could not be reached or answered badly.
    #[error("the operator's credential hand-off at {url} is unavailable: {detail}")]
    Unavailable {
        /// Endpoint.
        url: String,
        /// What failed.
        detail: String,
    },
}

/// Exchanges `identity` (the Pod-bound ServiceAccount token) for the attempt's wrapping token.
pub async fn wrapping_token(
    http: &reqwest::Client,
    base_url: &str,
    identity: &SecretString,
    request: &HandoffRequest,
) -> Result<SecretString, ClaimError> {
    let url = format!("{}{HANDOFF_PATH}", base_url.trim_end_matches('/'));
    let unavailable = |detail: String| ClaimError::Unavailable { url: url.clone(), detail };
    let give_up = tokio::time::Instant::now() + NOT_READY_FOR;
    let mut backoff = Duration::from_millis(200);
    loop {
        let sent = http.post(&url).bearer_auth(identity.expose_secret()).json(request).send().await;
        let resp = match sent {
            Ok(r) => r,
            // The operator restarting or briefly unreachable: try again within the same window.
            Err(e) if tokio::time::Instant::now() < give_up => {
                tracing::debug!(error = %ephemera_crds::error_chain(&e), "hand-off not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(3));
                continue;
            }
            Err(e) => return Err(unavailable(ephemera_crds::error_chain(&e))),
        };
        let status = resp.status().as_u16();
        if status == 200 {
            let mut body = resp.bytes().await.map_err(|e| unavailable(e.to_string()))?.to_vec();
            let parsed: Result<serde_json::Map<String, serde_json::Value>, _> = serde_json::from_slice(&body);
            body.zeroize();
            let mut map = parsed.map_err(|_| unavailable("the answer is not JSON".into()))?;
            return match map.remove(HANDOFF_TOKEN_FIELD) {
                Some(serde_json::Value::String(mut t)) => {
                    let token = SecretString::from(t.clone());
                    t.zeroize();
                    Ok(token)
                }
                _ => Err(unavailable(format!("the answer has no {HANDOFF_TOKEN_FIELD:?}"))),
            };
        }
        let detail = problem_detail(resp).await;
        match status {
            409 => return Err(ClaimError::AlreadyClaimed(detail)),
            // The operator has not recorded this Pod yet (it does right after creating it), or is busy.
            503 if tokio::time::Instant::now() < give_up => tokio::time::sleep(Duration::from_millis(250)).await,
            s if s >= 500 => return Err(unavailable(format!("HTTP {s}: {detail}"))),
            s => return Err(ClaimError::Refused { status: s, detail }),
        }
    }
}

/// The `detail` of a problem+json answer, bounded.
async fn problem_detail(resp: reqwest::Response) -> String {
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    v["detail"].as_str().unwrap_or_default().chars().take(300).collect()
}
