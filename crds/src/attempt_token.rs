//! The per-attempt reporting credential: an HMAC-SHA256-signed token naming one Task attempt, which
//! lets a worker post progress for that attempt only. The operator signs it into the attempt's
//! Secret; every API server replica verifies it with the same key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What the token allows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AttemptClaims {
    /// Namespace of the Task.
    pub namespace: String,
    /// Task name.
    pub task: String,
    /// Task uid (a re-created Task of the same name is another Task).
    pub uid: String,
    /// The attempt.
    pub attempt: i32,
    /// Expiry (Unix seconds).
    pub expires: i64,
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of this format, or a bad signature.
    #[error("invalid reporting token")]
    Invalid,
    /// Past its expiry.
    #[error("the reporting token has expired")]
    Expired,
}

fn mac(key: &[u8], payload: &str) -> Result<Hmac<Sha256>, TokenError> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenError::Invalid)?;
    m.update(b"ephemera-attempt-v1\0");
    m.update(payload.as_bytes());
    Ok(m)
}

/// `v1.<claims>.<signature>`.
pub fn sign(key: &[u8], claims: &AttemptClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let sig = mac(key, &payload).map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())).unwrap_or_default();
    format!("v1.{payload}.{sig}")
}

/// Checks the signature (constant time) and expiry at `now` (Unix seconds).
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<AttemptClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some("v1"), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Invalid);
    };
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Invalid)?;
    mac(key, payload)?.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
    let claims: AttemptClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?)
            .map_err(|_| TokenError::Invalid)?;
    if claims.expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_key_and_before_expiry() {
        let c = AttemptClaims { namespace: "ns".into(), task: "t".into(), uid: "u".into(), attempt: 2, expires: 100 };
        let t = sign(b"key", &c);
        assert_eq!(verify(b"key", &t, 50), Ok(c.clone()));
        assert_eq!(verify(b"other", &t, 50), Err(TokenError::Invalid));
        assert_eq!(verify(b"key", &t, 100), Err(TokenError::Expired));
        let forged = t.replace("v1.", "v1.e30");
        assert_eq!(verify(b"key", &forged, 50), Err(TokenError::Invalid));
    }
}
