//! API tokens: `eph_<id>_<secret>`. Only a SHA-256 of the secret is stored, in a Secret
//! `ephemera-api-token-<id>` (label `ephemera.dev/api-token=true`) in the API server's namespace,
//! with the namespaces and verbs it grants and its expiry. The API server watches those Secrets, so
//! creating or deleting one takes effect within moments, on every replica.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use sha2::{Digest, Sha256};

use super::{constant_time_eq, Grant, Identity, Verb};
use crate::error::ApiError;

/// Every API token starts with this.
pub const PREFIX: &str = "eph_";
/// Label on token Secrets.
pub const LABEL: &str = "ephemera.dev/api-token";

/// What an admin asks for.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Namespaces (`*` for all).
    pub namespaces: Vec<String>,
    /// Verbs.
    pub verbs: Vec<Verb>,
    /// Expiry.
    pub expires: Timestamp,
    /// Free text (who it is for).
    pub description: String,
}

/// The token store: a watched cache of the token Secrets.
pub struct Tokens {
    store: Store<Secret>,
    namespace: String,
}

fn secret_name(id: &str) -> String {
    format!("ephemera-api-token-{id}")
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn field(s: &Secret, key: &str) -> String {
    s.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned()).unwrap_or_default()
}

impl Tokens {
    /// Starts watching token Secrets in `namespace`; returns once the first list is in.
    pub async fn watch(client: kube::Client, namespace: &str) -> Arc<Tokens> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let ns = namespace.to_string();
        let (store, writer) = reflector::store();
        let stream =
            reflector::reflector(writer, watcher(api, watcher::Config::default().labels(&format!("{LABEL}=true"))))
                .default_backoff()
                .touched_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::warn!(error = %e, "watching API token Secrets");
                }
            }
        });
        let tokens = Arc::new(Tokens { store, namespace: ns });
        let _ = tokens.store.wait_until_ready().await;
        tokens
    }

    /// Whether token `id` still exists and has not expired (for streams opened with a ticket).
    pub fn is_active(&self, id: &str) -> bool {
        self.active(id).is_some()
    }

    /// Token `id`'s Secret and expiry, unless it is gone or expired.
    fn active(&self, id: &str) -> Option<(Arc<Secret>, Timestamp)> {
        let name = secret_name(id);
        let s = self.store.state().into_iter().find(|s| s.metadata.name.as_deref() == Some(name.as_str()))?;
        let expires = field(&s, "expires").parse::<Timestamp>().ok().filter(|e| *e > Timestamp::now())?;
        Some((s, expires))
    }

    /// Checks a presented token.
    pub fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let invalid = || ApiError::Unauthorized("invalid or expired API token".into());
        let rest = token.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let (id, secret) = rest.split_once('_').ok_or_else(invalid)?;
        let (s, expires) = self.active(id).ok_or_else(invalid)?;
        if !constant_time_eq(field(&s, "sha256").as_bytes(), hash(secret).as_bytes()) {
            return Err(invalid());
        }
        Ok(identity_of(id, &s, expires))
    }

    /// Token `id`'s identity as its Secret says now (None: revoked or expired), for streams opened
    /// with a ticket: their grants are re-read at every heartbeat.
    pub fn current(&self, id: &str) -> Option<Identity> {
        self.active(id).map(|(s, expires)| identity_of(id, &s, expires))
    }

    /// The namespace the token Secrets (and redeemed stream tickets) live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

fn identity_of(id: &str, s: &Secret, expires: Timestamp) -> Identity {
    let namespaces =
        field(s, "namespaces").split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
    let verbs = field(s, "verbs").split(',').filter_map(Verb::parse).collect();
    Identity {
        id: format!("token:{id}"),
        grants: vec![Grant { namespaces, verbs }],
        valid_until: Some(expires.as_second()),
    }
}

/// Creates a token Secret; returns (id, the token to hand out once).
pub async fn create(client: kube::Client, namespace: &str, new: &NewToken) -> Result<(String, String), kube::Error> {
    let mut raw = [0u8; 6 + 32];
    getrandom::fill(&mut raw).map_err(|e| kube::Error::Service(Box::new(std::io::Error::other(e.to_string()))))?;
    let id: String = raw[..6].iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(&raw[6..]).replace(['-', '_'], "x");
    let data: BTreeMap<String, ByteString> = [
        ("sha256", hash(&secret)),
        ("namespaces", new.namespaces.join(",")),
        ("verbs", new.verbs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(",")),
        ("expires", new.expires.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    let mut s = Secret { data: Some(data), type_: Some("Opaque".into()), ..Default::default() };
    s.metadata.name = Some(secret_name(&id));
    s.metadata.labels = Some([(LABEL.to_string(), "true".to_string())].into());
    s.metadata.annotations = Some([("ephemera.dev/description".to_string(), new.description.clone())].into());
    Api::<Secret>::namespaced(client, namespace).create(&PostParams::default(), &s).await?;
    Ok((id.clone(), format!("{PREFIX}{id}_{secret}")))
}

/// Revokes a token (deletes its Secret).
pub async fn revoke(client: kube::Client, namespace: &str, id: &str) -> Result<(), kube::Error> {
    Api::<Secret>::namespaced(client, namespace).delete(&secret_name(id), &Default::default()).await.map(|_| ())
}
