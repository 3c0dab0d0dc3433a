//! The operator's side of Vault: it logs in (token file, AppRole or Kubernetes auth), keeps one
//! policy per Credential (`<prefix><name>`: read on exactly that KV v2 path), mints one orphan child
//! token per attempt through a token role (only those policies, TTL bounded by the Task's deadline,
//! a use count of one per credential plus one to revoke itself, not renewable), response-wrapped with
//! a short wrap TTL, and revokes it by accessor when the attempt ends. The operator never sees the
//! child token itself: only the wrapping token and the child's accessor.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ephemera_crds::Credential;
use kube::ResourceExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

/// How the operator authenticates to Vault.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token read from a file (re-read when Vault refuses it, so a rotating agent can refresh it).
    TokenFile(PathBuf),
    /// AppRole: role id and a file holding the secret id.
    AppRole {
        /// Auth mount (`approle`).
        mount: String,
        /// Role id.
        role_id: String,
        /// File with the secret id.
        secret_id_file: PathBuf,
    },
    /// Kubernetes auth with the operator's ServiceAccount token.
    Kubernetes {
        /// Auth mount (`kubernetes`).
        mount: String,
        /// Vault role.
        role: String,
        /// ServiceAccount token file.
        jwt_file: PathBuf,
    },
}

/// Vault settings.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Vault address as the operator reaches it.
    pub addr: String,
    /// Vault address as worker Pods reach it.
    pub worker_addr: String,
    /// How to log in.
    pub auth: VaultAuth,
    /// Token role the per-attempt tokens are created through.
    pub token_role: String,
    /// Prefix of the per-Credential policies (the token role must allow exactly these).
    pub policy_prefix: String,
    /// How long a wrapping token stays unwrappable (covers Pod start-up).
    pub wrap_ttl: Duration,
}

impl VaultConfig {
    /// Settings for `addr` with the defaults for everything but the login.
    pub fn new(addr: &str, auth: VaultAuth) -> Self {
        Self {
            addr: addr.into(),
            worker_addr: addr.into(),
            auth,
            token_role: "ephemera-task".into(),
            policy_prefix: "ephemera-cred-".into(),
            wrap_ttl: Duration::from_secs(300),
        }
    }

    /// The `creation_path` of a genuine wrapping token (the worker checks it before unwrapping).
    pub fn creation_path(&self) -> String {
        format!("auth/token/create/{}", self.token_role)
    }
}

/// What failed (never includes a token).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Network failure, 5xx, sealed.
    #[error("Vault is unavailable: {0}")]
    Unavailable(String),
    /// Vault refused (permissions, bad request, invalid Credential for a policy).
    #[error("Vault refused: {0}")]
    Refused(String),
}

/// A freshly minted per-attempt token, as the operator may hold it.
pub struct Minted {
    /// The one-time wrapping token (goes into the per-attempt Secret, nowhere else).
    pub wrapping_token: SecretString,
    /// Accessor of the wrapped child token (to revoke it).
    pub accessor: String,
    /// How long the child token lives.
    pub ttl: Duration,
}

/// The Task attempt a token is minted for (recorded as token metadata for Vault's audit log).
pub struct Attempt<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Task name.
    pub task: &'a str,
    /// Attempt number.
    pub attempt: i32,
}

#[derive(Deserialize)]
struct WrapInfo {
    token: SecretString,
    wrapped_accessor: String,
}

#[derive(Deserialize)]
struct WrappedResponse {
    wrap_info: Option<WrapInfo>,
}

#[derive(Deserialize, Default)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

/// Issues and revokes per-attempt tokens.
pub struct Issuer {
    config: VaultConfig,
    client: RwLock<VaultClient>,
    http: reqwest::Client,
    /// Policies already written, by name → body (skips identical rewrites).
    policies: Mutex<HashMap<String, String>>,
}

/// Characters allowed in KV mounts and paths (also keeps policy documents well-formed).
fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|seg| {
            !seg.is_empty() && seg != ".." && seg.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        })
}

/// The policy letting a token read exactly one Credential's KV v2 secret (and revoke itself).
pub fn policy_for(cred: &Credential) -> Result<String, VaultError> {
    let (mount, path) = (cred.spec.mount.trim_matches('/'), cred.spec.vault_path.trim_matches('/'));
    if !safe_path(mount) || !safe_path(path) {
        return Err(VaultError::Refused(format!(
            "credential {:?} has an unusable mount or vaultPath",
            cred.name_any()
        )));
    }
    Ok(format!(
        "# Managed by ephemera-operator for Credential {name}; rewritten when the Credential changes.\n\
         path \"{mount}/data/{path}\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"auth/token/revoke-self\" {{\n  capabilities = [\"update\"]\n}}\n",
        name = cred.name_any()
    ))
}

fn from_client(e: ClientError) -> VaultError {
    match e {
        ClientError::APIError { code, errors } if code < 500 => {
            VaultError::Refused(format!("HTTP {code}: {}", errors.join("; ")))
        }
        ClientError::APIError { code, errors } => {
            VaultError::Unavailable(format!("HTTP {code}: {}", errors.join("; ")))
        }
        other => VaultError::Unavailable(ephemera_crds::error_chain(&other)),
    }
}

fn is_denied(e: &VaultError) -> bool {
    matches!(e, VaultError::Refused(m) if m.starts_with("HTTP 403"))
}

impl Issuer {
    /// A client for `config` (logs in on first use).
    pub fn new(config: VaultConfig) -> Result<Self, VaultError> {
        // reqwest is built without a TLS provider of its own: use ring, like the kube client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = VaultClientSettingsBuilder::default()
            .address(&config.addr)
            .token("")
            .timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| VaultError::Unavailable(e.to_string()))?;
        let client = VaultClient::new(settings).map_err(from_client)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| VaultError::Unavailable(e.to_string()))?;
        Ok(Self { config, client: RwLock::new(client), http, policies: Mutex::new(HashMap::new()) })
    }

    /// The settings.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// Logs in again (or re-reads the token file).
    pub async fn login(&self) -> Result<(), VaultError> {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .map(|s| SecretString::from(s.trim().to_string()))
                .map_err(|e| VaultError::Refused(format!("reading {}: {e}", p.display())))
        };
        let mut client = self.client.write().await;
        let token = match &self.config.auth {
            VaultAuth::TokenFile(path) => read(path)?,
            VaultAuth::AppRole { mount, role_id, secret_id_file } => {
                let secret_id = read(secret_id_file)?;
                let auth = vaultrs::auth::approle::login(&*client, mount, role_id, secret_id.expose_secret())
                    .await
                    .map_err(from_client)?;
                SecretString::from(auth.client_token)
            }
            VaultAuth::Kubernetes { mount, role, jwt_file } => {
                let jwt = read(jwt_file)?;
                let auth = vaultrs::auth::kubernetes::login(&*client, mount, role, jwt.expose_secret())
                    .await
                    .map_err(from_client)?;
                SecretString::from(auth.client_token)
            }
        };
        client.set_token(token.expose_secret());
        tracing::info!(addr = %self.config.addr, "logged in to Vault");
        Ok(())
    }

    async fn ensure_login(&self) -> Result<(), VaultError> {
        if self.client.read().await.settings().token.is_empty() {
            self.login().await?;
        }
        Ok(())
    }

    /// Writes the Credential's policy (when it changed); returns its name.
    pub async fn ensure_policy(&self, cred: &Credential) -> Result<String, VaultError> {
        let name = format!("{}{}", self.config.policy_prefix, cred.name_any());
        let body = policy_for(cred)?;
        if self.policies.lock().await.get(&name) == Some(&body) {
            return Ok(name);
        }
        self.ensure_login().await?;
        let mut r = vaultrs::sys::policy::set(&*self.client.read().await, &name, &body).await.map_err(from_client);
        if r.as_ref().is_err_and(is_denied) {
            self.login().await?;
            r = vaultrs::sys::policy::set(&*self.client.read().await, &name, &body).await.map_err(from_client);
        }
        r?;
        self.policies.lock().await.insert(name.clone(), body);
        Ok(name)
    }

    /// Mints the attempt's child token (wrapped). `ttl` is capped by the Task's remaining time.
    pub async fn mint(&self, attempt: &Attempt<'_>, policies: &[String], ttl: Duration) -> Result<Minted, VaultError> {
        self.ensure_login().await?;
        let mut r = self.mint_once(attempt, policies, ttl).await;
        if r.as_ref().is_err_and(is_denied) {
            self.login().await?;
            r = self.mint_once(attempt, policies, ttl).await;
        }
        r
    }

    async fn mint_once(&self, attempt: &Attempt<'_>, policies: &[String], ttl: Duration) -> Result<Minted, VaultError> {
        let ttl_s = format!("{}s", ttl.as_secs().max(60));
        let body = serde_json::json!({
            "policies": policies,
            "ttl": ttl_s,
            "explicit_max_ttl": ttl_s,
            // One read per credential, one to revoke itself.
            "num_uses": policies.len() + 1,
            "renewable": false,
            "no_default_policy": true,
            "display_name": format!("ephemera-{}-{}", attempt.namespace, attempt.task),
            "meta": {"namespace": attempt.namespace, "task": attempt.task, "attempt": attempt.attempt.to_string()},
        });
        let token = self.client.read().await.settings().token.clone();
        let resp = self
            .http
            .post(format!("{}/v1/{}", self.config.addr.trim_end_matches('/'), self.config.creation_path()))
            .header("X-Vault-Token", token)
            .header("X-Vault-Wrap-TTL", format!("{}s", self.config.wrap_ttl.as_secs().max(1)))
            .json(&body)
            .send()
            .await
            .map_err(|e| VaultError::Unavailable(ephemera_crds::error_chain(&e)))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let errors = resp.json::<Errors>().await.unwrap_or_default().errors.join("; ");
            let msg = format!("HTTP {status}: creating a token through role {:?}: {errors}", self.config.token_role);
            return Err(if status >= 500 { VaultError::Unavailable(msg) } else { VaultError::Refused(msg) });
        }
        let wrapped: WrappedResponse = resp.json().await.map_err(|e| VaultError::Unavailable(e.to_string()))?;
        let info = wrapped.wrap_info.ok_or_else(|| VaultError::Refused("Vault did not wrap the token".into()))?;
        Ok(Minted { wrapping_token: info.token, accessor: info.wrapped_accessor, ttl })
    }

    /// Revokes a child token by accessor; an accessor Vault no longer knows counts as revoked.
    pub async fn revoke(&self, accessor: &str) -> Result<(), VaultError> {
        self.ensure_login().await?;
        let mut r = vaultrs::token::revoke_accessor(&*self.client.read().await, accessor).await.map_err(from_client);
        if r.as_ref().is_err_and(is_denied) {
            self.login().await?;
            r = vaultrs::token::revoke_accessor(&*self.client.read().await, accessor).await.map_err(from_client);
        }
        match r {
            Err(VaultError::Refused(m)) if m.contains("invalid accessor") => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::{CredentialSpec, Provider};

    fn cred(mount: &str, path: &str) -> Credential {
        Credential::new(
            "prod-org",
            CredentialSpec {
                provider: Provider::Salesforce,
                vault_path: path.into(),
                mount: mount.into(),
                namespaces: vec!["*".into()],
                github: None,
                files: false,
            },
        )
    }

    #[test]
    fn policies_grant_one_path_and_refuse_injection() {
        let p = policy_for(&cred("secret", "ephemera/sf/prod")).unwrap();
        assert!(p.contains("path \"secret/data/ephemera/sf/prod\" {\n  capabilities = [\"read\"]"), "{p}");
        assert!(policy_for(&cred("secret\" {} path \"*", "x")).is_err());
        assert!(policy_for(&cred("secret", "a/../b")).is_err());
        assert!(policy_for(&cred("secret", "a//b")).is_err());
    }
}
