//! Authentication: the static admin token written into the kubeconfig, and ServiceAccount tokens
//! (HS256-signed JWTs with the claims a real apiserver puts in bound tokens).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Issuer put into ServiceAccount tokens (same as a default cluster's).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a request is from.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// `admin` or `system:serviceaccount:NS:NAME`.
    pub username: String,
    /// Stable id (the ServiceAccount uid for SA tokens).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (bound pod name/uid for projected tokens).
    pub extra: Value,
}

/// A verified ServiceAccount token.
#[derive(Debug, Clone)]
pub struct SaClaims {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// ServiceAccount name.
    pub name: String,
    /// ServiceAccount uid at issue time.
    pub uid: String,
    /// Bound pod (name, uid), if any.
    pub pod: Option<(String, String)>,
    /// Audiences.
    pub audiences: Vec<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    /// Not a token this cluster issued.
    #[error("invalid bearer token")]
    Invalid,
    /// Past its expiry.
    #[error("token has expired")]
    Expired,
    /// None of the requested audiences is in the token.
    #[error("token audiences {0:?} is invalid for the target audiences")]
    Audience(Vec<String>),
}

/// Token keys of one cluster.
pub struct Auth {
    admin_token: String,
    key: Vec<u8>,
}

/// The result of checking a bearer token.
pub enum Identity {
    /// The cluster admin.
    Admin,
    /// A ServiceAccount (the caller still checks it exists).
    ServiceAccount(SaClaims),
}

impl Auth {
    /// Keys from explicit values (persisted or given on the command line).
    pub fn new(admin_token: String, key: Vec<u8>) -> Self {
        Self { admin_token, key }
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }

    /// Issues a ServiceAccount JWT; returns the token and its expiry (Unix seconds).
    pub fn issue(&self, sa: &SaClaims, expiration_seconds: i64, now: i64) -> (String, i64) {
        let exp = now + expiration_seconds;
        let mut k8s = json!({
            "namespace": sa.namespace,
            "serviceaccount": {"name": sa.name, "uid": sa.uid},
        });
        if let Some((pod, uid)) = &sa.pod {
            k8s["pod"] = json!({"name": pod, "uid": uid});
        }
        let claims = json!({
            "aud": sa.audiences,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": crate::meta::uid(),
            "sub": format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
            "kubernetes.io": k8s,
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"devcluster"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (format!("{signing_input}.{sig}"), exp)
    }

    /// Verifies a bearer token. `audiences`: the audiences the caller accepts (None = any, the API
    /// server's own check).
    pub fn verify(&self, token: &str, audiences: Option<&[String]>, now: i64) -> Result<Identity, TokenError> {
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Ok(Identity::Admin);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Invalid);
        };
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(format!("{h}.{p}").as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Invalid)?)
            .map_err(|_| TokenError::Invalid)?;
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return Err(TokenError::Expired);
        }
        let token_aud: Vec<String> = claims["aud"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default();
        if let Some(wanted) = audiences {
            if !wanted.is_empty() && !wanted.iter().any(|w| token_aud.contains(w)) {
                return Err(TokenError::Audience(token_aud));
            }
        }
        let k8s = &claims["kubernetes.io"];
        let s = |v: &Value| v.as_str().map(String::from);
        Ok(Identity::ServiceAccount(SaClaims {
            namespace: s(&k8s["namespace"]).ok_or(TokenError::Invalid)?,
            name: s(&k8s["serviceaccount"]["name"]).ok_or(TokenError::Invalid)?,
            uid: s(&k8s["serviceaccount"]["uid"]).unwrap_or_default(),
            pod: s(&k8s["pod"]["name"]).zip(s(&k8s["pod"]["uid"])),
            audiences: token_aud,
        }))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new("admin-secret".into(), b"0123456789abcdef".to_vec())
    }

    fn sa() -> SaClaims {
        SaClaims {
            namespace: "ns".into(),
            name: "worker".into(),
            uid: "u1".into(),
            pod: Some(("p".into(), "pu".into())),
            audiences: vec!["vault".into()],
        }
    }

    #[test]
    fn issued_tokens_verify_until_expiry() {
        let a = auth();
        let (tok, exp) = a.issue(&sa(), 600, 1000);
        assert_eq!(exp, 1600);
        let Ok(Identity::ServiceAccount(c)) = a.verify(&tok, Some(&["vault".into()]), 1001) else {
            panic!("not verified")
        };
        assert_eq!((c.namespace.as_str(), c.name.as_str()), ("ns", "worker"));
        assert_eq!(c.pod, Some(("p".into(), "pu".into())));
        assert_eq!(a.verify(&tok, None, 1600).err(), Some(TokenError::Expired));
        assert!(matches!(a.verify(&tok, Some(&["other".into()]), 1001), Err(TokenError::Audience(_))));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let a = auth();
        let (tok, _) = a.issue(&sa(), 600, 1000);
        let forged = format!("{}x", tok);
        assert_eq!(a.verify(&forged, None, 1001).err(), Some(TokenError::Invalid));
        let other = Auth::new("x".into(), b"another-key".to_vec());
        assert_eq!(other.verify(&tok, None, 1001).err(), Some(TokenError::Invalid));
        assert!(matches!(a.verify("admin-secret", None, 0), Ok(Identity::Admin)));
    }
}
