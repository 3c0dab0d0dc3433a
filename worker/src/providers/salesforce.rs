//! Salesforce: the OAuth 2.0 JWT bearer flow. Vault holds the connected app's consumer key
//! (`client_id`), the `username` (the key signs in Transit; legacy: `private_key` PEM) and optionally `login_url` (default
//! `https://login.salesforce.com`; a sandbox uses `https://test.salesforce.com` or its My Domain) and
//! `audience` (default: `https://test.salesforce.com` for sandbox login URLs, else
//! `https://login.salesforce.com`). The task gets `SF_ACCESS_TOKEN` and `SF_INSTANCE_URL`.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{optional, provider_error, required, Grant, ProviderError, Revocation};
use crate::jwt::{now, Signer};
use crate::vault::KvSecret;

const PROVIDER: &str = "Salesforce";
/// Salesforce accepts assertions valid for at most a few minutes.
const ASSERTION_SECONDS: i64 = 180;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    instance_url: String,
}

/// The audience Salesforce expects for a login URL.
pub fn audience_for(login_url: &str) -> &'static str {
    let host = login_url.split("://").nth(1).unwrap_or(login_url).split(['/', ':']).next().unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com"
    } else {
        "https://login.salesforce.com"
    }
}

/// Runs the JWT bearer flow.
pub async fn obtain(
    http: &reqwest::Client,
    name: &str,
    kv: &KvSecret,
    signer: &Signer<'_>,
) -> Result<Grant, ProviderError> {
    let client_id = required(kv, name, "client_id")?;
    let username = required(kv, name, "username")?;
    let login_url = optional(kv, "login_url").unwrap_or("https://login.salesforce.com").trim_end_matches('/');
    let audience = optional(kv, "audience").unwrap_or_else(|| audience_for(login_url));
    let claims = Claims { iss: client_id, sub: username, aud: audience, exp: now() + ASSERTION_SECONDS };
    let assertion = signer.sign(&claims).await.map_err(|source| ProviderError::Key { name: name.into(), source })?;
    let unreachable = |e: reqwest::Error| ProviderError::Unreachable {
        provider: PROVIDER,
        name: name.into(),
        detail: ephemera_crds::error_chain(&e),
    };
    let resp = http
        .post(format!("{login_url}/services/oauth2/token"))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(ProviderError::Refused {
            provider: PROVIDER,
            name: name.into(),
            status,
            detail: provider_error(resp).await,
        });
    }
    let token: TokenResponse = resp.json().await.map_err(unreachable)?;
    let instance_url = token.instance_url.trim_end_matches('/').to_string();
    Ok(Grant {
        env: vec![
            ("SF_ACCESS_TOKEN".into(), token.access_token.clone()),
            ("SF_INSTANCE_URL".into(), SecretString::from(instance_url.clone())),
        ],
        // Only what the command gets: the hand-off carries nothing else (never a key).
        secrets: vec![token.access_token.clone()],
        files: Vec::new(),
        revoke: Some(Revocation::Salesforce { name: name.into(), instance_url, token: token.access_token }),
    })
}

/// `POST {instance}/services/oauth2/revoke` with the token (200 when revoked).
pub async fn revoke(
    http: &reqwest::Client,
    name: &str,
    instance_url: &str,
    token: &SecretString,
) -> Result<(), ProviderError> {
    let resp = http
        .post(format!("{instance_url}/services/oauth2/revoke"))
        .form(&[("token", token.expose_secret())])
        .send()
        .await
        .map_err(|e| ProviderError::Unreachable {
            provider: PROVIDER,
            name: name.into(),
            detail: ephemera_crds::error_chain(&e),
        })?;
    match resp.status().as_u16() {
        200 => Ok(()),
        status => Err(ProviderError::Refused {
            provider: PROVIDER,
            name: name.into(),
            status,
            detail: provider_error(resp).await,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_use_the_test_audience() {
        assert_eq!(audience_for("https://login.salesforce.com"), "https://login.salesforce.com");
        assert_eq!(audience_for("https://test.salesforce.com/"), "https://test.salesforce.com");
        assert_eq!(audience_for("https://acme--uat.sandbox.my.salesforce.com"), "https://test.salesforce.com");
        assert_eq!(audience_for("https://acme.my.salesforce.com"), "https://login.salesforce.com");
    }
}
