//! Turning a credential's Vault secret into what the task command gets: provider tokens minted just in
//! time (Salesforce, GitHub App) or the stored values themselves (static), and how each is revoked.

pub mod github;
pub mod salesforce;
pub mod static_kv;

use std::path::PathBuf;

use ephemera_crds::worker::CredentialRef;
use ephemera_crds::Provider;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::jwt::{JwtError, RsaSigner, Signer};
use crate::vault::{KvSecret, Vault};

/// Why a provider could not deliver (never includes a secret value).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The Vault secret lacks a required key.
    #[error("credential {name:?}: the Vault secret has no {key:?} key")]
    MissingKey {
        /// Credential name.
        name: String,
        /// Missing key.
        key: &'static str,
    },
    /// The private key is unusable.
    #[error("credential {name:?}: {source}")]
    Key {
        /// Credential name.
        name: String,
        /// Why.
        source: JwtError,
    },
    /// The secret's content cannot be delivered as asked.
    #[error("credential {name:?}: {detail}")]
    Invalid {
        /// Credential name.
        name: String,
        /// Why.
        detail: String,
    },
    /// The provider answered with an error.
    #[error("{provider} refused the token request for credential {name:?}: HTTP {status}: {detail}")]
    Refused {
        /// `Salesforce` or `GitHub`.
        provider: &'static str,
        /// Credential name.
        name: String,
        /// HTTP status.
        status: u16,
        /// The provider's error text.
        detail: String,
    },
    /// The provider could not be reached.
    #[error("{provider} could not be reached for credential {name:?}: {detail}")]
    Unreachable {
        /// `Salesforce` or `GitHub`.
        provider: &'static str,
        /// Credential name.
        name: String,
        /// What failed.
        detail: String,
    },
}

impl ProviderError {
    /// Whether the stored secret itself is at fault (not the provider or the network).
    pub fn is_invalid_secret(&self) -> bool {
        matches!(self, Self::MissingKey { .. } | Self::Key { .. } | Self::Invalid { .. })
    }
}

/// A token the worker must revoke at the end.
pub enum Revocation {
    /// `POST {instance_url}/services/oauth2/revoke`.
    Salesforce {
        /// Credential name.
        name: String,
        /// Where the token lives.
        instance_url: String,
        /// The access token.
        token: SecretString,
    },
    /// `DELETE {api_url}/installation/token`.
    Github {
        /// Credential name.
        name: String,
        /// GitHub API base URL.
        api_url: String,
        /// The installation token.
        token: SecretString,
    },
}

/// What one credential gives the task command.
#[derive(Default)]
pub struct Grant {
    /// Environment variables (values wrapped; some, like an instance URL, are not secret).
    pub env: Vec<(String, SecretString)>,
    /// Values that must be masked wherever they could appear.
    pub secrets: Vec<SecretString>,
    /// Files written for the task (removed at the end).
    pub files: Vec<PathBuf>,
    /// What to revoke at the end.
    pub revoke: Option<Revocation>,
}

/// Obtains one credential, given its Vault secret; assertions are signed by Transit with `token` (or,
/// for a legacy Credential without a signing key, by the KV `private_key`).
pub async fn obtain(
    http: &reqwest::Client,
    cred: &CredentialRef,
    kv: &KvSecret,
    vault: &Vault,
    token: &SecretString,
) -> Result<Grant, ProviderError> {
    match cred.provider {
        Provider::Salesforce => salesforce::obtain(http, &cred.name, kv, &signer(cred, kv, vault, token)?).await,
        Provider::GithubApp => github::obtain(http, cred, kv, &signer(cred, kv, vault, token)?).await,
        Provider::Static => static_kv::obtain(cred, kv),
    }
}

/// Who signs `cred`'s assertions.
pub fn signer<'a>(
    cred: &'a CredentialRef,
    kv: &KvSecret,
    vault: &'a Vault,
    token: &'a SecretString,
) -> Result<Signer<'a>, ProviderError> {
    let name = cred.name.as_str();
    match &cred.signing_key {
        // A key left in KV beside its Transit copy is readable by every attempt's token: refuse
        // rather than silently keep the weaker setup.
        Some(_) if optional(kv, "private_key").is_some() => Err(ProviderError::Invalid {
            name: name.into(),
            detail: "the Vault secret still holds private_key although the Credential signs with a Transit key: delete private_key from KV".into(),
        }),
        Some(key) => Ok(Signer::Transit { vault, token, key }),
        None => {
            let pem = required(kv, name, "private_key")?;
            RsaSigner::from_pem(pem).map(|k| Signer::Local(Box::new(k))).map_err(|source| ProviderError::Key { name: name.into(), source })
        }
    }
}

/// Revokes a provider token; Ok(()) when the provider confirms (or says it was already gone).
pub async fn revoke(http: &reqwest::Client, r: &Revocation) -> Result<(), ProviderError> {
    match r {
        Revocation::Salesforce { name, instance_url, token } => {
            salesforce::revoke(http, name, instance_url, token).await
        }
        Revocation::Github { name, api_url, token } => github::revoke(http, name, api_url, token).await,
    }
}

/// A required key of the Vault secret.
fn required<'a>(kv: &'a KvSecret, name: &str, key: &'static str) -> Result<&'a str, ProviderError> {
    kv.get(key)
        .map(|v| v.expose_secret())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ProviderError::MissingKey { name: name.into(), key })
}

/// An optional key of the Vault secret.
fn optional<'a>(kv: &'a KvSecret, key: &str) -> Option<&'a str> {
    kv.get(key).map(|v| v.expose_secret()).filter(|v| !v.trim().is_empty())
}

/// The error text a provider returned, bounded (OAuth `error`/`error_description`, GitHub `message`).
async fn provider_error(resp: reqwest::Response) -> String {
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: String,
        #[serde(default)]
        error_description: String,
        #[serde(default)]
        message: String,
    }
    let b: Body = resp.json().await.unwrap_or_default();
    let mut text =
        [b.error, b.error_description, b.message].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ");
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
