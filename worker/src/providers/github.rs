//! GitHub App: an app JWT (RS256, at most 10 minutes) buys an installation token limited to the
//! Credential's repositories and permissions. Vault holds `app_id` (or `client_id`),
//! `installation_id` (the key signs in Transit; legacy: `private_key` PEM) and optionally `api_url` (GitHub Enterprise Server;
//! default `https://api.github.com`). The task gets `GITHUB_TOKEN` and `GH_TOKEN`.

use ephemera_crds::worker::CredentialRef;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{optional, provider_error, required, Grant, ProviderError, Revocation};
use crate::jwt::{now, Signer};
use crate::vault::KvSecret;

const PROVIDER: &str = "GitHub";
const API_VERSION: &str = "2022-11-28";
const USER_AGENT: &str = concat!("ephemera-worker/", env!("CARGO_PKG_VERSION"));

#[derive(Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: SecretString,
}

/// Mints the installation token.
pub async fn obtain(
    http: &reqwest::Client,
    cred: &CredentialRef,
    kv: &KvSecret,
    signer: &Signer<'_>,
) -> Result<Grant, ProviderError> {
    let name = cred.name.as_str();
    let app = optional(kv, "app_id")
        .or_else(|| optional(kv, "client_id"))
        .ok_or_else(|| ProviderError::MissingKey { name: name.into(), key: "app_id" })?;
    let installation = required(kv, name, "installation_id")?;
    if !installation.chars().all(|c| c.is_ascii_digit()) {
        return Err(ProviderError::Invalid { name: name.into(), detail: "installation_id must be a number".into() });
    }
    let api_url = optional(kv, "api_url").unwrap_or("https://api.github.com").trim_end_matches('/').to_string();
    // Backdated a minute against clock drift; 9 minutes stays under GitHub's 10-minute limit.
    let issued = now() - 60;
    let jwt = signer
        .sign(&Claims { iat: issued, exp: issued + 600 - 60, iss: app })
        .await
        .map_err(|source| ProviderError::Key { name: name.into(), source })?;
    let mut body = serde_json::Map::new();
    if let Some(scope) = &cred.github {
        if !scope.repositories.is_empty() {
            body.insert("repositories".into(), serde_json::json!(scope.repositories));
        }
        if !scope.permissions.is_empty() {
            body.insert("permissions".into(), serde_json::json!(scope.permissions));
        }
    }
    let unreachable = |e: reqwest::Error| ProviderError::Unreachable {
        provider: PROVIDER,
        name: name.into(),
        detail: ephemera_crds::error_chain(&e),
    };
    let resp = http
        .post(format!("{api_url}/app/installations/{installation}/access_tokens"))
        .bearer_auth(&jwt)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
        .header("User-Agent", USER_AGENT)
        .json(&body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    if status != 201 {
        return Err(ProviderError::Refused {
            provider: PROVIDER,
            name: name.into(),
            status,
            detail: provider_error(resp).await,
        });
    }
    let token: TokenResponse = resp.json().await.map_err(unreachable)?;
    Ok(Grant {
        env: vec![("GITHUB_TOKEN".into(), token.token.clone()), ("GH_TOKEN".into(), token.token.clone())],
        // Only what the command gets: the hand-off carries nothing else (never a key).
        secrets: vec![token.token.clone()],
        files: Vec::new(),
        revoke: Some(Revocation::Github { name: name.into(), api_url, token: token.token }),
    })
}

/// `DELETE {api}/installation/token` authenticated by the token itself (204 when revoked; 401 when it
/// is already invalid, which is what revoking wanted).
pub async fn revoke(
    http: &reqwest::Client,
    name: &str,
    api_url: &str,
    token: &SecretString,
) -> Result<(), ProviderError> {
    let resp = http
        .delete(format!("{api_url}/installation/token"))
        .bearer_auth(token.expose_secret())
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
        .header("User-Agent", USER_AGENT)
        .send()
        .await
        .map_err(|e| ProviderError::Unreachable {
            provider: PROVIDER,
            name: name.into(),
            detail: ephemera_crds::error_chain(&e),
        })?;
    match resp.status().as_u16() {
        204 | 401 => Ok(()),
        status => Err(ProviderError::Refused {
            provider: PROVIDER,
            name: name.into(),
            status,
            detail: provider_error(resp).await,
        }),
    }
}
