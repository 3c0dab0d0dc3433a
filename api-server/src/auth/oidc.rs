//! OIDC ID tokens for keyless CI (e.g. GitHub Actions): configured issuers, their JWKS fetched
//! (through discovery) and cached, RS256 signatures, `iss`/`aud`/`exp`/`nbf` checked, then admin rules
//! map claims (e.g. `repository` + `ref`) to namespaces and verbs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Grant, Identity, Verb};
use crate::error::ApiError;

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY: i64 = 60;
/// JWKS older than this is fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the JWKS at most this often.
const REFETCH_MIN: Duration = Duration::from_secs(30);
/// After a failed fetch, requests fail fast for this long instead of queueing behind new fetches.
const FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// One rule: when every listed claim equals its value (a trailing `*` matches a prefix), grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Claim → expected value.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// Namespaces granted.
    pub namespaces: Vec<String>,
    /// Verbs granted.
    pub verbs: Vec<Verb>,
}

/// A trusted issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issuer {
    /// Exact `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// JWKS URL (default: from `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Rules, all applied.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// The OIDC part of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OidcConfig {
    /// Trusted issuers.
    #[serde(default)]
    pub issuers: Vec<Issuer>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: String,
    kty: String,
    #[serde(default)]
    n: String,
    #[serde(default)]
    e: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

struct Cached {
    keys: HashMap<String, (Vec<u8>, Vec<u8>)>,
    fetched: Instant,
}

/// One issuer's keys. Its lock is held across a fetch on purpose: concurrent requests wait for one
/// fetch instead of each starting their own; other issuers are not affected.
#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    failed: Option<Instant>,
}

/// Verifies ID tokens.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    slots: HashMap<String, Mutex<Slot>>,
}

fn b64(part: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| ApiError::Unauthorized("malformed bearer token".into()))
}

fn matches(claims: &Value, rule: &Rule) -> bool {
    rule.matches.iter().all(|(claim, want)| {
        let have = match &claims[claim] {
            Value::String(s) => s.clone(),
            Value::Null => return false,
            other => other.to_string(),
        };
        match want.strip_suffix('*') {
            Some(prefix) => have.starts_with(prefix),
            None => have == *want,
        }
    })
}

impl Oidc {
    /// A verifier for `config`.
    pub fn new(config: OidcConfig) -> Oidc {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        let slots = config.issuers.iter().map(|i| (i.issuer.clone(), Mutex::new(Slot::default()))).collect();
        Oidc { config, http, slots }
    }

    /// Checks an ID token and maps it to an identity.
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_string());
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(unauthorized("the bearer token is neither an API token nor a JWT"));
        };
        let header: Value = serde_json::from_slice(&b64(h)?).map_err(|_| unauthorized("malformed JWT header"))?;
        let claims: Value = serde_json::from_slice(&b64(c)?).map_err(|_| unauthorized("malformed JWT claims"))?;
        if header["alg"] != "RS256" {
            return Err(unauthorized("only RS256 ID tokens are accepted"));
        }
        let iss = claims["iss"].as_str().unwrap_or_default();
        let issuer =
            self.config.issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| unauthorized("unknown token issuer"))?;
        let kid = header["kid"].as_str().unwrap_or_default();
        let (n, e) = self.key(issuer, kid).await?;
        let signature = b64(sig)?;
        RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, format!("{h}.{c}").as_bytes(), &signature)
            .map_err(|_| unauthorized("invalid token signature"))?;
        let aud_ok = match &claims["aud"] {
            Value::String(a) => *a == issuer.audience,
            Value::Array(a) => a.iter().any(|x| x.as_str() == Some(issuer.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(unauthorized("the token's audience is not this server"));
        }
        let now = jiff::Timestamp::now().as_second();
        let valid_until = match claims["exp"].as_i64() {
            Some(exp) if exp.saturating_add(LEEWAY) > now => exp.saturating_add(LEEWAY),
            _ => return Err(unauthorized("the token has expired")),
        };
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf - LEEWAY > now) {
            return Err(unauthorized("the token is not valid yet"));
        }
        let grants: Vec<Grant> = issuer
            .rules
            .iter()
            .filter(|r| matches(&claims, r))
            .map(|r| Grant { namespaces: r.namespaces.clone(), verbs: r.verbs.iter().copied().collect() })
            .collect();
        let sub = claims["sub"].as_str().unwrap_or_default();
        Ok(Identity { id: format!("oidc:{iss}#{sub}"), grants, valid_until: Some(valid_until) })
    }

    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
        let unknown = || ApiError::Unauthorized("unknown token signing key".into());
        let slot =
            self.slots.get(&issuer.issuer).ok_or_else(|| ApiError::Unauthorized("unknown token issuer".into()))?;
        let mut slot = slot.lock().await;
        let fresh = slot.cached.as_ref().filter(|c| c.fetched.elapsed() < JWKS_MAX_AGE);
        if let Some(k) = fresh.and_then(|c| c.keys.get(kid).cloned()) {
            return Ok(k);
        }
        // A kid we do not know refetches at most every REFETCH_MIN (keys rotate; forged kids are cheap).
        if fresh.is_some_and(|c| c.fetched.elapsed() < REFETCH_MIN) {
            return Err(unknown());
        }
        if slot.failed.is_some_and(|f| f.elapsed() < FAILURE_BACKOFF) {
            return Err(ApiError::Unavailable);
        }
        match self.fetch(issuer).await {
            Ok(keys) => {
                let found = keys.get(kid).cloned();
                *slot = Slot { cached: Some(Cached { keys, fetched: Instant::now() }), failed: None };
                found.ok_or_else(unknown)
            }
            Err(e) => {
                slot.failed = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn fetch(&self, issuer: &Issuer) -> Result<HashMap<String, (Vec<u8>, Vec<u8>)>, ApiError> {
        let unavailable = |e: reqwest::Error| {
            tracing::warn!(issuer = %issuer.issuer, error = %ephemera_crds::error_chain(&e), "fetching the issuer's keys");
            ApiError::Unavailable
        };
        let url = match &issuer.jwks_url {
            Some(u) => u.clone(),
            None => {
                let disc = format!("{}/.well-known/openid-configuration", issuer.issuer.trim_end_matches('/'));
                let doc: Value =
                    self.http.get(disc).send().await.map_err(unavailable)?.json().await.map_err(unavailable)?;
                doc["jwks_uri"].as_str().map(String::from).ok_or(ApiError::Unavailable)?
            }
        };
        let jwks: Jwks = self.http.get(url).send().await.map_err(unavailable)?.json().await.map_err(unavailable)?;
        let mut keys = HashMap::new();
        for k in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
            if let (Ok(n), Ok(e)) = (b64(&k.n), b64(&k.e)) {
                keys.insert(k.kid, (n, e));
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_exact_values_and_prefixes() {
        let claims = serde_json::json!({"repository": "acme/app", "ref": "refs/heads/main", "run_number": 7});
        let rule = |m: &[(&str, &str)]| Rule {
            matches: m.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            namespaces: vec![],
            verbs: vec![],
        };
        assert!(matches(&claims, &rule(&[("repository", "acme/app"), ("ref", "refs/heads/main")])));
        assert!(matches(&claims, &rule(&[("repository", "acme/*")])));
        assert!(matches(&claims, &rule(&[("run_number", "7")])));
        assert!(!matches(&claims, &rule(&[("repository", "acme/other")])));
        assert!(!matches(&claims, &rule(&[("environment", "prod")])));
    }
}
