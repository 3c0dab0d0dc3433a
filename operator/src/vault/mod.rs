//! The operator's side of Vault: it logs in (token file, AppRole or Kubernetes auth), keeps one
//! policy per Credential (`<prefix><name>`: read on exactly that KV v2 path, `update` on exactly its
//! Transit sign path), or, in the external mode, only checks that the admin's copy is current; mints
//! one orphan child token per attempt through a token role (only those policies, TTL bounded by the
//! Task's deadline, a use count of one per read and signature plus one to revoke itself, not
//! renewable, metadata naming the attempt), response-wrapped with a short wrap TTL; and revokes it by
//! accessor when the attempt ends, after checking the accessor's metadata names that attempt. The
//! operator never sees the child token itself: only the wrapping token and the child's accessor.

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

mod policy;
pub use policy::{policy_for, uses_for};

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
    /// Who writes the per-Credential policies.
    pub policies: PolicyMode,
}

/// Who owns the per-Credential policies in Vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMode {
    /// The operator writes them (it may write any `ephemera-cred-*` policy: a compromised operator
    /// can grant itself any path through the token role).
    #[default]
    Managed,
    /// An admin (or `ephemera-operator sync-vault-policies` with its own Vault identity) writes them;
    /// the operator only reads them to check they match the Credential, and mints with them.
    External,
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
            policies: PolicyMode::Managed,
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

/// The Task attempt a token is minted for (recorded as token metadata: Vault's audit log shows it, the
/// worker checks it, and the operator checks it before revoking by accessor).
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Task name.
    pub task: &'a str,
    /// Task uid.
    pub task_uid: &'a str,
    /// Attempt number.
    pub attempt: i32,
}

impl Attempt<'_> {
    /// The token metadata naming this attempt.
    pub fn meta(&self) -> HashMap<String, String> {
        use ephemera_crds::worker::token_meta as m;
        [
            (m::NAMESPACE, self.namespace.to_string()),
            (m::TASK, self.task.to_string()),
            (m::TASK_UID, self.task_uid.to_string()),
            (m::ATTEMPT, self.attempt.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// What revoking by accessor found.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The attempt's token was revoked (or was already gone).
    Done,
    /// The accessor belongs to a token of another attempt: left alone.
    NotOurs,
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

    /// Runs `call` logged in; when Vault denies it (the operator's own token expired or was
    /// revoked), logs in again and retries once.
    async fn logged_in<T, F, Fut>(&self, call: F) -> Result<T, VaultError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, VaultError>>,
    {
        self.ensure_login().await?;
        match call().await {
            Err(e) if is_denied(&e) => {
                self.login().await?;
                call().await
            }
            other => other,
        }
    }

    /// Makes sure the Credential's policy is current: writes it (managed mode, when it changed), or
    /// checks the admin's copy matches it (external mode). Returns its name.
    pub async fn ensure_policy(&self, cred: &Credential) -> Result<String, VaultError> {
        let name = format!("{}{}", self.config.policy_prefix, cred.name_any());
        let body = policy_for(cred)?;
        if self.policies.lock().await.get(&name) == Some(&body) {
            return Ok(name);
        }
        if self.config.policies == PolicyMode::External {
            let read =
                || async { vaultrs::sys::policy::read(&*self.client.read().await, &name).await.map_err(from_client) };
            let current = match self.logged_in(read).await {
                Ok(p) => p.rules,
                Err(VaultError::Refused(m)) if m.starts_with("HTTP 404") => String::new(),
                Err(e) => return Err(e),
            };
            if current.trim() != body.trim() {
                return Err(VaultError::Refused(format!(
                    "Vault policy {name:?} is missing or does not match Credential {:?}: a Vault admin must run `ephemera-operator sync-vault-policies`",
                    cred.name_any()
                )));
            }
            self.policies.lock().await.insert(name.clone(), body);
            return Ok(name);
        }
        let set =
            || async { vaultrs::sys::policy::set(&*self.client.read().await, &name, &body).await.map_err(from_client) };
        self.logged_in(set).await?;
        self.policies.lock().await.insert(name.clone(), body);
        Ok(name)
    }

    /// Mints the attempt's child token (wrapped), good for `uses` requests. `ttl` is capped by the
    /// Task's remaining time.
    pub async fn mint(
        &self,
        attempt: &Attempt<'_>,
        policies: &[String],
        uses: usize,
        ttl: Duration,
    ) -> Result<Minted, VaultError> {
        self.logged_in(|| self.mint_once(attempt, policies, uses, ttl)).await
    }

    async fn mint_once(
        &self,
        attempt: &Attempt<'_>,
        policies: &[String],
        uses: usize,
        ttl: Duration,
    ) -> Result<Minted, VaultError> {
        let ttl_s = format!("{}s", ttl.as_secs().max(60));
        let body = serde_json::json!({
            "policies": policies,
            "ttl": ttl_s,
            "explicit_max_ttl": ttl_s,
            "num_uses": uses,
            "renewable": false,
            "no_default_policy": true,
            "display_name": format!("ephemera-{}-{}", attempt.namespace, attempt.task),
            "meta": attempt.meta(),
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

    /// Revokes `attempt`'s child token by accessor, after checking (lookup-accessor) that the token's
    /// metadata names exactly that attempt: the operator's global revoke right is never turned against
    /// another token. An accessor Vault no longer knows counts as revoked.
    pub async fn revoke(&self, accessor: &str, attempt: &Attempt<'_>) -> Result<Revoked, VaultError> {
        let lookup = || async {
            vaultrs::token::lookup_accessor(&*self.client.read().await, accessor).await.map_err(from_client)
        };
        let info = match self.logged_in(lookup).await {
            Ok(info) => info,
            Err(VaultError::Refused(m)) if m.contains("invalid accessor") || m.contains("invalid token") => {
                return Ok(Revoked::Done)
            }
            Err(e) => return Err(e),
        };
        if info.meta.unwrap_or_default() != attempt.meta() {
            tracing::warn!(
                namespace = attempt.namespace,
                task = attempt.task,
                attempt = attempt.attempt,
                "an attempt record names a Vault token of another attempt: not revoking it"
            );
            return Ok(Revoked::NotOurs);
        }
        let revoke = || async {
            vaultrs::token::revoke_accessor(&*self.client.read().await, accessor).await.map_err(from_client)
        };
        match self.logged_in(revoke).await {
            Err(VaultError::Refused(m)) if m.contains("invalid accessor") => Ok(Revoked::Done),
            other => other.map(|()| Revoked::Done),
        }
    }
}
