//! The worker's side of Vault: check and unwrap the one-time wrapping token (it must come from the
//! operator's token role and name this very attempt), read the Task's KV v2 secrets and have Transit
//! sign the provider assertions with the unwrapped child token, and revoke that token at once.

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
    #[error("Vault refused {what}: {detail}")]
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
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

/// The attempt a genuine token was minted for (the operator's token metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptIdentity {
    /// Namespace.
    pub namespace: String,
    /// Task name.
    pub task: String,
    /// Task uid.
    pub task_uid: String,
    /// Attempt.
    pub attempt: i32,
}

/// Whether the token's metadata names exactly `want` (anything else: not this attempt's token).
pub fn names_attempt(meta: &BTreeMap<String, String>, want: &AttemptIdentity) -> Result<(), String> {
    use ephemera_crds::worker::token_meta as m;
    let attempt = want.attempt.to_string();
    for (key, expected) in [
        (m::NAMESPACE, want.namespace.as_str()),
        (m::TASK, want.task.as_str()),
        (m::TASK_UID, want.task_uid.as_str()),
        (m::ATTEMPT, attempt.as_str()),
    ] {
        let have = meta.get(key).map(String::as_str).unwrap_or_default();
        if have != expected {
            return Err(format!("it was minted for {key} {have:?}, not {expected:?}"));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct SignData {
    signature: String,
}

#[derive(Deserialize)]
struct Signed {
    data: SignData,
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
        // Proxies come from the environment, which `isolation` has reduced to the admin's.
        let http = crate::trust::client_builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| VaultError::Unavailable { addr: addr.into(), detail: e.to_string() })?;
        Ok(Self { addr: addr.trim_end_matches('/').to_string(), http })
    }

    fn unavailable(&self, e: impl std::error::Error) -> VaultError {
        VaultError::Unavailable { addr: self.addr.clone(), detail: ephemera_crds::error_chain(&e) }
    }

    /// Checks the wrapping token (it must come from `creation_path`), unwraps it, and checks the child
    /// token was minted for `attempt` (when given). Vault answers 400 for a used, expired or unknown
    /// wrapping token.
    pub async fn unwrap(
        &self,
        wrapping: &SecretString,
        creation_path: &str,
        attempt: Option<&AttemptIdentity>,
    ) -> Result<SecretString, VaultError> {
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
                let auth = body.auth.ok_or_else(|| VaultError::Unwrap("the wrapped response holds no token".into()))?;
                if let Some(want) = attempt {
                    // Unwrapped, so nobody else can have it; but a token for another attempt (a planted
                    // or swapped one) must not be used: the operator revokes it when this attempt ends.
                    names_attempt(&auth.metadata.unwrap_or_default(), want).map_err(VaultError::NotGenuine)?;
                }
                Ok(auth.client_token)
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

    /// Signs `input` with the Transit key (`<mount>/sign/<name>/sha2-256`, PKCS#1 v1.5, as RS256
    /// needs) and returns the raw signature.
    pub async fn transit_sign(
        &self,
        token: &SecretString,
        key: &ephemera_crds::TransitKey,
        input: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let what = format!("{}/sign/{}/sha2-256", key.mount, key.name);
        let resp = self
            .http
            .post(format!("{}/v1/{what}", self.addr))
            .header("X-Vault-Token", token.expose_secret())
            .json(&serde_json::json!({"input": STANDARD.encode(input), "signature_algorithm": "pkcs1v15"}))
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        match resp.status().as_u16() {
            200 => {
                let signed: Signed = resp.json().await.map_err(|e| self.unavailable(e))?;
                // `vault:v<version>:<base64>`.
                let b64 = signed.data.signature.rsplit(':').next().unwrap_or_default();
                STANDARD
                    .decode(b64)
                    .map_err(|_| VaultError::Refused { what, detail: "the signature is not base64".into() })
            }
            s if s < 500 => {
                Err(VaultError::Refused { what, detail: format!("HTTP {s}: {}", vault_errors(resp).await) })
            }
            s => Err(VaultError::Unavailable {
                addr: self.addr.clone(),
                detail: format!("transit sign: HTTP {s}: {}", vault_errors(resp).await),
            }),
        }
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
