//! OIDC ID tokens for keyless CI (e.g. GitHub Actions): configured issuers, their JWKS fetched
//! (through discovery, HTTPS only, no redirects, bounded in size) and cached, RS256 signatures,
//! `iss`/`aud`/`exp`/`nbf` checked, then admin rules map claims (e.g. `repository_id` + `ref`) to
//! namespaces and verbs. A token no rule matches is refused: it is good for nothing here. The JWT
//! itself is verified by `jsonwebtoken` (RS256 only).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt as _, Shared};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Grant, Identity, Verb};
use crate::error::ApiError;

/// Clock skew tolerated on `exp`/`nbf`, in seconds.
const LEEWAY: u64 = 60;
/// JWKS older than this is fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the JWKS at most this often.
const REFETCH_MIN: Duration = Duration::from_secs(30);
/// After a failed fetch, requests fail fast for this long instead of queueing behind new fetches.
const FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// Largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;

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
    /// PEM CA bundle this issuer's discovery and JWKS are verified against (instead of the
    /// system's roots), e.g. for GitHub Enterprise Server.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// An unusable OIDC configuration (the server refuses to start with it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A rule with an empty `match` would grant every token of the issuer.
    #[error("issuer {issuer:?}: rule {index} has an empty `match`, which would grant every token of the issuer")]
    EmptyMatch {
        /// Issuer.
        issuer: String,
        /// Rule index (from 0).
        index: usize,
    },
    /// Discovery and keys must come over HTTPS.
    #[error("issuer {issuer:?}: {what} must be an https:// URL")]
    NotHttps {
        /// Issuer.
        issuer: String,
        /// `issuer` or `jwksUrl`.
        what: &'static str,
    },
    /// The CA bundle cannot be used.
    #[error("issuer {issuer:?}: caFile {path}: {detail}")]
    Ca {
        /// Issuer.
        issuer: String,
        /// File.
        path: String,
        /// Why.
        detail: String,
    },
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

type Keys = Arc<HashMap<String, DecodingKey>>;
/// A fetch in flight, shared by every request that needs it (it owns what it uses).
type Fetch = Shared<BoxFuture<'static, Result<Keys, ()>>>;

struct Cached {
    keys: Keys,
    fetched: Instant,
}

/// One issuer's keys. Its lock is only held to look at or replace the cache, never across a fetch:
/// concurrent requests share one fetch in flight; other issuers are not affected.
#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    failed: Option<Instant>,
    inflight: Option<Fetch>,
}

/// Verifies ID tokens.
pub struct Oidc {
    config: OidcConfig,
    clients: HashMap<String, reqwest::Client>,
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

impl OidcConfig {
    /// Refuses what must never be configured: rules without a `match`, non-HTTPS issuers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for i in &self.issuers {
            if let Some(index) = i.rules.iter().position(|r| r.matches.is_empty()) {
                return Err(ConfigError::EmptyMatch { issuer: i.issuer.clone(), index });
            }
            if !i.issuer.starts_with("https://") {
                return Err(ConfigError::NotHttps { issuer: i.issuer.clone(), what: "issuer" });
            }
            if i.jwks_url.as_ref().is_some_and(|u| !u.starts_with("https://")) {
                return Err(ConfigError::NotHttps { issuer: i.issuer.clone(), what: "jwksUrl" });
            }
        }
        Ok(())
    }
}

/// The HTTP client for one issuer: HTTPS only, no redirects (a redirect could point the key fetch
/// anywhere), its own CA bundle if configured.
fn client_for(issuer: &Issuer) -> Result<reqwest::Client, ConfigError> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &issuer.ca_file {
        let bad = |detail: String| ConfigError::Ca {
            issuer: issuer.issuer.clone(),
            path: path.display().to_string(),
            detail,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| ConfigError::Ca { issuer: issuer.issuer.clone(), path: String::new(), detail: e.to_string() })
}

impl Oidc {
    /// A verifier for `config` (checked with [`OidcConfig::validate`] first).
    pub fn new(config: OidcConfig) -> Result<Oidc, ConfigError> {
        config.validate()?;
        let mut clients = HashMap::new();
        for i in &config.issuers {
            clients.insert(i.issuer.clone(), client_for(i)?);
        }
        let slots = config.issuers.iter().map(|i| (i.issuer.clone(), Mutex::new(Slot::default()))).collect();
        Ok(Oidc { config, clients, slots })
    }

    /// Checks an ID token and maps it to an identity.
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_string());
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(unauthorized("the bearer token is neither an API token nor a JWT"));
        };
        // The algorithm is checked as written, before anything else: `none`, HS256 keyed with the
        // public key and every other choice an attacker could make are refused here.
        let header: Value = serde_json::from_slice(&b64(h)?).map_err(|_| unauthorized("malformed JWT header"))?;
        if header["alg"] != "RS256" {
            return Err(unauthorized("only RS256 ID tokens are accepted"));
        }
        // Read unverified only to pick the issuer whose keys verify it.
        let unverified: Value = serde_json::from_slice(&b64(c)?).map_err(|_| unauthorized("malformed JWT claims"))?;
        let iss = unverified["iss"].as_str().unwrap_or_default();
        let issuer =
            self.config.issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| unauthorized("unknown token issuer"))?;
        let key = self.key(issuer, header["kid"].as_str().unwrap_or_default()).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| {
                ApiError::Unauthorized(
                    match e.kind() {
                        ErrorKind::InvalidSignature => "invalid token signature",
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::ImmatureSignature => "the token is not valid yet",
                        ErrorKind::InvalidAudience => "the token's audience is not this server",
                        ErrorKind::InvalidIssuer => "unknown token issuer",
                        ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
                        _ => "malformed JWT",
                    }
                    .into(),
                )
            })?
            .claims;
        let valid_until = claims["exp"].as_i64().unwrap_or_default().saturating_add(LEEWAY as i64);
        let grants: Vec<Grant> = issuer
            .rules
            .iter()
            .filter(|r| matches(&claims, r))
            .map(|r| Grant { namespaces: r.namespaces.clone(), verbs: r.verbs.iter().copied().collect() })
            .collect();
        // Authenticated but granted nothing: refused here, before it can take a ticket, a
        // connection slot or a look at the queues.
        if grants.is_empty() {
            return Err(ApiError::Forbidden("the token matches no rule of its issuer: it grants nothing here".into()));
        }
        let sub = claims["sub"].as_str().unwrap_or_default();
        Ok(Identity { id: format!("oidc:{iss}#{sub}"), grants, valid_until: Some(valid_until) })
    }

    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<DecodingKey, ApiError> {
        let unknown = || ApiError::Unauthorized("unknown token signing key".into());
        let slot =
            self.slots.get(&issuer.issuer).ok_or_else(|| ApiError::Unauthorized("unknown token issuer".into()))?;
        let fetch = {
            let mut s = slot.lock().await;
            let fresh = s.cached.as_ref().filter(|c| c.fetched.elapsed() < JWKS_MAX_AGE);
            if let Some(k) = fresh.and_then(|c| c.keys.get(kid).cloned()) {
                return Ok(k);
            }
            // A kid we do not know refetches at most every REFETCH_MIN (keys rotate; forged kids are cheap).
            if fresh.is_some_and(|c| c.fetched.elapsed() < REFETCH_MIN) {
                return Err(unknown());
            }
            if s.failed.is_some_and(|f| f.elapsed() < FAILURE_BACKOFF) {
                return Err(ApiError::Unavailable);
            }
            match &s.inflight {
                Some(f) => f.clone(),
                None => {
                    let http = self.clients.get(&issuer.issuer).cloned().unwrap_or_default();
                    let f = fetch(http, issuer.clone()).boxed().shared();
                    s.inflight = Some(f.clone());
                    f
                }
            }
        };
        // Awaited without the lock: other requests for this issuer wait on the same fetch.
        let result = fetch.await;
        let mut s = slot.lock().await;
        s.inflight = None;
        match result {
            Ok(keys) => {
                let found = keys.get(kid).cloned();
                s.cached = Some(Cached { keys, fetched: Instant::now() });
                s.failed = None;
                found.ok_or_else(unknown)
            }
            Err(()) => {
                s.failed = Some(Instant::now());
                Err(ApiError::Unavailable)
            }
        }
    }
}

/// Reads a JSON document of at most [`MAX_DOCUMENT`] bytes.
async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let mut resp = http.get(url).send().await.map_err(|e| ephemera_crds::error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ephemera_crds::error_chain(&e))? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("larger than {MAX_DOCUMENT} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// Fetches the issuer's keys (through discovery unless a JWKS URL is configured).
async fn fetch(http: reqwest::Client, issuer: Issuer) -> Result<Keys, ()> {
    let failed = |e: String| tracing::warn!(issuer = %issuer.issuer, error = %e, "fetching the issuer's keys");
    let url = match &issuer.jwks_url {
        Some(u) => u.clone(),
        None => {
            let disc = format!("{}/.well-known/openid-configuration", issuer.issuer.trim_end_matches('/'));
            let doc = get_json(&http, &disc).await.map_err(failed)?;
            doc["jwks_uri"].as_str().map(String::from).ok_or_else(|| failed("discovery names no jwks_uri".into()))?
        }
    };
    let doc = get_json(&http, &url).await.map_err(failed)?;
    let jwks: Jwks = serde_json::from_value(doc).map_err(|e| failed(format!("not a JWKS: {e}")))?;
    let mut keys = HashMap::new();
    for k in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
        if let Ok(key) = DecodingKey::from_rsa_components(&k.n, &k.e) {
            keys.insert(k.kid, key);
        }
    }
    Ok(Arc::new(keys))
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

    #[test]
    fn configs_that_would_grant_every_token_or_fetch_keys_in_the_clear_are_refused() {
        let issuer = |url: &str, matches: &[(&str, &str)]| OidcConfig {
            issuers: vec![Issuer {
                issuer: url.into(),
                audience: "ephemera".into(),
                jwks_url: None,
                rules: vec![Rule {
                    matches: matches.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    namespaces: vec!["ci".into()],
                    verbs: vec![Verb::Create],
                }],
                ca_file: None,
            }],
        };
        let ok = issuer("https://token.actions.githubusercontent.com", &[("repository_id", "123")]);
        assert!(ok.validate().is_ok());
        let empty = issuer("https://token.actions.githubusercontent.com", &[]).validate().err().unwrap().to_string();
        assert!(empty.contains("empty `match`"), "{empty}");
        let http = issuer("http://issuer.example", &[("sub", "x")]).validate().err().unwrap().to_string();
        assert!(http.contains("https://"), "{http}");
        assert!(Oidc::new(issuer("https://i.example", &[])).is_err(), "the verifier refuses it too");
    }
}
