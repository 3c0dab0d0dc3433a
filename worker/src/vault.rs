//! The worker's side of Vault: check and unwrap the one-time wrapping token, read the Task's KV v2
//! secrets with the unwrapped child token, and revoke that token as soon as they are read.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroize;

/// A KV v2 secret's values, each wrapped.
pub type KvSecret = BTreeMap<String, SecretString>;

/// What went wrong with Vault (never includes a token or a secret value).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The wrapping token was already used or has expired.
    #[error(
        "the wrapping token could not be unwrapped ({0}): it was already used or has expired (possible interception)"
    )]
    Unwrap(String),
    /// The wrapping token is valid but was not created through the operator's token role: forged.
    #[error("the wrapping token was not issued for this Task ({0}): possible forgery")]
    NotGenuine(String),
    /// Network or server failure.
    #[error("Vault at {addr} is unavailable: {detail}")]
    Unavailable {
        /// Vault address.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// Vault answered, but refused (e.g. a missing secret or policy).
    #[error("Vault refused to read {what}: {detail}")]
    Refused {
        /// What was read.
        what: String,
        /// Vault's error text.
        detail: String,
    },
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct LookupData {
    creation_path: String,
}

#[derive(Deserialize)]
struct Lookup {
    data: LookupData,
}

#[derive(Deserialize)]
struct UnwrapAuth {
    client_token: SecretString,
}

#[derive(Deserialize)]
struct Unwrapped {
    auth: Option<UnwrapAuth>,
}

/// A Vault endpoint.
pub struct Vault {
    addr: String,
    http: reqwest::Client,
}

impl Vault {
    /// A client for `addr` (e.g. `https://vault.vault:8200`).
    pub fn new(addr: &str) -> Result<Self, VaultError> {
        // reqwest is built without a TLS provider of its own: use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Proxies come from the environment, which `isolation` has reduced to the admin's.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| VaultError::Unavailable { addr: addr.into(), detail: e.to_string() })?;
        Ok(Self { addr: addr.trim_end_matches('/').to_string(), http })
    }

    fn unavailable(&self, e: impl std::error::Error) -> VaultError {
        VaultError::Unavailable { addr: self.addr.clone(), detail: ephemera_crds::error_chain(&e) }
    }

    /// Checks the wrapping token (it must come from `creation_path`) and unwraps it: the child token.
    /// Vault answers 400 for a used, expired or unknown wrapping token.
    pub async fn unwrap(&self, wrapping: &SecretString, creation_path: &str) -> Result<SecretString, VaultError> {
        let resp = self
            .http
            .post(format!("{}/v1/sys/wrapping/lookup", self.addr))
            .json(&serde_json::json!({"token": wrapping.expose_secret()}))
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        match resp.status().as_u16() {
            200 => {
                let lookup: Lookup = resp.json().await.map_err(|e| self.unavailable(e))?;
                if lookup.data.creation_path != creation_path {
                    return Err(VaultError::NotGenuine(format!(
                        "it was created at {:?}, not {creation_path:?}",
                        lookup.data.creation_path
                    )));
                }
            }
            400 | 403 | 404 => return Err(VaultError::Unwrap(vault_errors(resp).await)),
            s => {
                let detail = format!("wrapping lookup: HTTP {s}: {}", vault_errors(resp).await);
                return Err(VaultError::Unavailable { addr: self.addr.clone(), detail });
            }
        }
        let resp = self
            .http
            .post(format!("{}/v1/sys/wrapping/unwrap", self.addr))
            .header("X-Vault-Token", wrapping.expose_secret())
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        match resp.status().as_u16() {
            200 => {
                let body: Unwrapped = resp.json().await.map_err(|e| self.unavailable(e))?;
                body.auth
                    .map(|a| a.client_token)
                    .ok_or_else(|| VaultError::Unwrap("the wrapped response holds no token".into()))
            }
            400 | 403 | 404 => Err(VaultError::Unwrap(vault_errors(resp).await)),
            s => Err(VaultError::Unavailable {
                addr: self.addr.clone(),
                detail: format!("unwrap: HTTP {s}: {}", vault_errors(resp).await),
            }),
        }
    }

    /// A vaultrs client acting with `token` (the caller zeroizes it with [`forget`]).
    pub fn with_token(&self, token: &SecretString) -> Result<VaultClient, VaultError> {
        let settings = VaultClientSettingsBuilder::default()
            .address(&self.addr)
            .token(token.expose_secret())
            .timeout(Some(Duration::from_secs(15)))
            .verify(true)
            .build()
            .map_err(|e| self.unavailable(e))?;
        VaultClient::new(settings).map_err(|e| self.unavailable(e))
    }

    /// Reads a KV v2 secret's current version.
    pub async fn read(&self, client: &VaultClient, mount: &str, path: &str) -> Result<KvSecret, VaultError> {
        vaultrs::kv2::read::<KvSecret>(client, mount, path).await.map_err(|e| match e {
            ClientError::APIError { code, errors } if code < 500 => VaultError::Refused {
                what: format!("{mount}/{path}"),
                detail: format!("HTTP {code}: {}", errors.join("; ")),
            },
            other => self.unavailable(other),
        })
    }

    /// Revokes the client's own token (best effort: the operator also revokes it by accessor).
    pub async fn revoke_self(&self, client: &VaultClient) -> Result<(), VaultError> {
        vaultrs::token::revoke_self(client).await.map_err(|e| self.unavailable(e))
    }
}

/// Wipes the token copies a vaultrs client keeps.
pub fn forget(mut client: VaultClient) {
    client.settings.token.zeroize();
    client.middle.token.zeroize();
}

async fn vault_errors(resp: reqwest::Response) -> String {
    let status = resp.status();
    match resp.json::<Errors>().await {
        Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
        _ => format!("HTTP {status}"),
    }
}
