//! Who is calling and what they may do. Two kinds of bearer credentials: API tokens created by an
//! admin (stored only as hashes, in Secrets) and OIDC ID tokens from configured issuers (e.g. GitHub
//! Actions), mapped to namespaces and verbs by admin rules.

pub mod oidc;
pub mod tokens;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

/// What a caller may do to Tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Create Tasks.
    Create,
    /// Read Tasks, results, logs and queues.
    Read,
    /// Cancel Tasks.
    Cancel,
    /// Delete Tasks.
    Delete,
}

impl Verb {
    /// Parses `create`, `read`, `cancel`, `delete`.
    pub fn parse(s: &str) -> Option<Verb> {
        match s.trim() {
            "create" => Some(Verb::Create),
            "read" => Some(Verb::Read),
            "cancel" => Some(Verb::Cancel),
            "delete" => Some(Verb::Delete),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Read => "read",
            Verb::Cancel => "cancel",
            Verb::Delete => "delete",
        }
    }
}

/// Namespaces (`*` for all) and the verbs allowed in them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Namespaces.
    pub namespaces: Vec<String>,
    /// Verbs.
    pub verbs: BTreeSet<Verb>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Recorded on the Tasks it creates: `token:<id>` or `oidc:<issuer>#<subject>`.
    pub id: String,
    /// What it may do.
    pub grants: Vec<Grant>,
    /// Unix second from which the presented credential is no longer valid (streams opened with a
    /// ticket end then; the ticket itself lives only 30 s).
    pub valid_until: Option<i64>,
}

impl Identity {
    /// Whether it may `verb` in `namespace`.
    pub fn allows(&self, namespace: &str, verb: Verb) -> bool {
        self.grants.iter().any(|g| g.verbs.contains(&verb) && g.namespaces.iter().any(|n| n == "*" || n == namespace))
    }

    /// Whether it may `verb` in every namespace.
    pub fn allows_everywhere(&self, verb: Verb) -> bool {
        self.grants.iter().any(|g| g.verbs.contains(&verb) && g.namespaces.iter().any(|n| n == "*"))
    }

    /// The namespaces it may `verb` in by name (without `*`), each once.
    pub fn namespaces(&self, verb: Verb) -> Vec<String> {
        let named = self.grants.iter().filter(|g| g.verbs.contains(&verb)).flat_map(|g| g.namespaces.iter());
        named.filter(|n| *n != "*").cloned().collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// Ok, or a 403 saying what is missing.
    pub fn require(&self, namespace: &str, verb: Verb) -> Result<(), ApiError> {
        if self.allows(namespace, verb) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("{} may not {} Tasks in namespace {namespace:?}", self.id, verb.as_str())))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme is case-insensitive, RFC 9110).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The bearer token of a request's `Authorization` header, if it has a well-formed one.
pub fn bearer_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token)
}

/// Extracts and checks the bearer credential, then applies the caller's rate limit.
impl FromRequestParts<Arc<AppState>> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("an Authorization: Bearer header is required".into()))?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let token = bearer_token(value)
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
        let identity = authenticate(state, token).await?;
        state.limiter.check(&identity.id)?;
        Ok(identity)
    }
}

/// What a long-lived stream was opened with, kept to check it again while the stream lives: a
/// revoked API token, an expired ID token or grants taken away must not keep a stream open.
pub enum Presented {
    /// A bearer token (header or subprotocol).
    Bearer(secrecy::SecretString),
    /// A stream ticket: API tokens are re-read by id (their grants as they are now); every stream ends
    /// when the credential the ticket was issued for expires.
    Ticket {
        /// The identity id (`token:<id>` or `oidc:<issuer>#<subject>`).
        id: String,
        /// When the credential behind the ticket expires.
        valid_until: Option<i64>,
        /// The grants the ticket carried (OIDC: they cannot change without a new ID token).
        grants: Vec<Grant>,
    },
}

impl Presented {
    /// The stream's identity as it stands now (None: revoked or expired).
    pub async fn current(&self, state: &AppState) -> Option<Identity> {
        use secrecy::ExposeSecret as _;
        match self {
            Presented::Bearer(t) => authenticate(state, t.expose_secret()).await.ok(),
            Presented::Ticket { id, valid_until, grants } => {
                if valid_until.is_some_and(|u| jiff::Timestamp::now().as_second() >= u) {
                    return None;
                }
                match id.strip_prefix("token:") {
                    Some(t) => state.tokens.current(t),
                    None => Some(Identity { id: id.clone(), grants: grants.clone(), valid_until: *valid_until }),
                }
            }
        }
    }
}

/// Checks a bearer token (API token or OIDC ID token).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Identity, ApiError> {
    if token.starts_with(tokens::PREFIX) {
        state.tokens.verify(token)
    } else {
        state.oidc.verify(token).await
    }
}

/// Constant-time equality of two byte strings of the same length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_check_namespace_and_verb() {
        let id = Identity {
            id: "token:ci".into(),
            grants: vec![Grant { namespaces: vec!["team-a".into()], verbs: [Verb::Create, Verb::Read].into() }],
            valid_until: None,
        };
        assert!(id.allows("team-a", Verb::Create));
        assert!(!id.allows("team-b", Verb::Create));
        assert!(!id.allows("team-a", Verb::Delete));
        let all = Identity {
            id: "x".into(),
            grants: vec![Grant { namespaces: vec!["*".into()], verbs: [Verb::Read].into() }],
            valid_until: None,
        };
        assert!(all.allows("anything", Verb::Read));
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
