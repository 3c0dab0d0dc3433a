//! A Task's credentials: resolving its logical names against the admin's `Credential` catalogue,
//! minting the attempt's wrapped Vault token into a per-attempt Secret owned by the Task, and
//! revoking it (then deleting the Secret) once the attempt is over. The Secret's existence is the
//! record that a token may still be live, so revocation survives operator restarts.

use std::time::Duration;

use ephemera_crds::attempt_token::{self, AttemptClaims};
use ephemera_crds::worker::{CredentialRef, PROGRESS_TOKEN_FILE, WRAPPING_TOKEN_FILE};
use ephemera_crds::{Credential, Task};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{pod, Context, Error};
use crate::vault::{Attempt, VaultError};

/// Key of the child token's accessor in the per-attempt Secret (never mounted into the Pod).
const ACCESSOR_KEY: &str = "accessor";
/// Annotation: when the child token expires on its own (RFC 3339).
const EXPIRES_ANNOTATION: &str = "ephemera.dev/token-expires";
/// Annotation: when the wrapping token stops being unwrappable (RFC 3339).
const WRAP_EXPIRES_ANNOTATION: &str = "ephemera.dev/wrap-expires";

/// Why a Task cannot have its credentials (reason, message): it fails with this.
pub type Refusal = (&'static str, String);

/// The per-attempt Secret's name.
pub fn secret_name(pod_name: &str) -> String {
    format!("{pod_name}-attempt")
}

/// Resolves the Task's names to Credentials, or says which name is refused and why.
pub async fn resolve(ctx: &Context, task: &Task, ns: &str) -> Result<Result<Vec<Credential>, Refusal>, Error> {
    let creds: Api<Credential> = Api::all(ctx.client.clone());
    let mut out = Vec::with_capacity(task.spec.credentials.len());
    for name in &task.spec.credentials {
        match creds.get_opt(name).await? {
            None => {
                return Ok(Err((
                    "UnknownCredential",
                    format!("credential {name:?} does not exist: ask a cluster admin to define it"),
                )))
            }
            Some(c) if !c.allows(ns) => {
                return Ok(Err((
                    "CredentialForbidden",
                    format!("credential {name:?} may not be used by Tasks in namespace {ns:?}"),
                )))
            }
            Some(c) => out.push(c),
        }
    }
    if !out.is_empty() && ctx.issuer.is_none() {
        return Ok(Err((
            "VaultNotConfigured",
            "the Task names credentials but the operator has no Vault configured (--vault-addr)".into(),
        )));
    }
    if let Some(clash) = env_clash(&out) {
        return Ok(Err(("CredentialConflict", clash)));
    }
    Ok(Ok(out))
}

/// Two credentials that would set the same variables (e.g. two Salesforce orgs).
fn env_clash(creds: &[Credential]) -> Option<String> {
    use ephemera_crds::Provider;
    for p in [Provider::Salesforce, Provider::GithubApp] {
        let same: Vec<String> = creds.iter().filter(|c| c.spec.provider == p).map(|c| c.name_any()).collect();
        if same.len() > 1 {
            return Some(format!(
                "credentials {same:?} are both {p:?} and would set the same environment variables: run them in separate Tasks"
            ));
        }
    }
    None
}

/// What the worker is told about its credentials (nothing secret).
pub fn refs(creds: &[Credential]) -> Vec<CredentialRef> {
    creds
        .iter()
        .map(|c| CredentialRef {
            name: c.name_any(),
            provider: c.spec.provider,
            mount: c.spec.mount.trim_matches('/').to_string(),
            path: c.spec.vault_path.trim_matches('/').to_string(),
            github: c.spec.github.clone(),
            files: c.spec.files,
        })
        .collect()
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether attempts of `task` get a per-attempt Secret (credentials or live reporting).
pub fn needs_secret(ctx: &Context, task: &Task) -> bool {
    !task.spec.credentials.is_empty() || ctx.config.progress.is_some()
}

/// Makes sure the attempt's Secret exists: the wrapped Vault token (when the Task has credentials;
/// re-minted when the one there can no longer be unwrapped and the Pod has not been created yet) and
/// the reporting token (when live progress is configured). Returns the wrapping token's expiry when
/// this call minted one.
pub async fn ensure_secret(
    ctx: &Context,
    task: &Task,
    creds: &[Credential],
    attempt: i32,
    pod_name: &str,
    remaining: Duration,
) -> Result<Result<Option<String>, VaultError>, Error> {
    if !needs_secret(ctx, task) {
        return Ok(Ok(None));
    }
    let ns = task.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = secret_name(pod_name);
    if let Some(existing) = secrets.get_opt(&name).await? {
        let wrap_expires =
            existing.annotations().get(WRAP_EXPIRES_ANNOTATION).and_then(|t| t.parse::<Timestamp>().ok());
        if creds.is_empty() || wrap_expires.is_some_and(|t| t > Timestamp::now()) {
            return Ok(Ok(None));
        }
        // Stale (the Pod never started in time): replace it rather than hand the worker a dead token.
        revoke_secret(ctx, &secrets, &existing).await?;
    }
    let now = Timestamp::now();
    let plus = |d: Duration| rfc3339(now.checked_add(d).unwrap_or(now));
    let task_name = task.name_any();
    let mut data = serde_json::Map::new();
    let mut annotations = serde_json::Map::new();
    let mut minted_accessor = None;
    let mut wrap_expires = None;
    if let (false, Some(issuer)) = (creds.is_empty(), ctx.issuer.as_ref()) {
        let mut policies = Vec::with_capacity(creds.len());
        for c in creds {
            match issuer.ensure_policy(c).await {
                Ok(p) => policies.push(p),
                Err(e) => return Ok(Err(e)),
            }
        }
        let who = Attempt { namespace: &ns, task: &task_name, attempt };
        // The token never outlives the Task's deadline (plus the Pod's grace to revoke itself).
        let ttl = remaining + ctx.config.termination_grace;
        let minted = match issuer.mint(&who, &policies, ttl).await {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        data.insert(WRAPPING_TOKEN_FILE.into(), json!(minted.wrapping_token.expose_secret()));
        data.insert(ACCESSOR_KEY.into(), json!(minted.accessor));
        annotations.insert(EXPIRES_ANNOTATION.into(), json!(plus(minted.ttl)));
        let expires = plus(issuer.config().wrap_ttl);
        annotations.insert(WRAP_EXPIRES_ANNOTATION.into(), json!(expires));
        minted_accessor = Some(minted.accessor);
        wrap_expires = Some(expires);
    }
    if let Some(progress) = &ctx.config.progress {
        let claims = AttemptClaims {
            namespace: ns.clone(),
            task: task_name.clone(),
            uid: task.metadata.uid.clone().unwrap_or_default(),
            attempt,
            expires: now.as_second()
                + i64::try_from((remaining + ctx.config.termination_grace).as_secs()).unwrap_or(i64::MAX / 2),
        };
        data.insert(PROGRESS_TOKEN_FILE.into(), json!(attempt_token::sign(progress.key.expose_secret(), &claims)));
    }
    let owner = task.controller_owner_ref(&()).map(|o| serde_json::to_value(o).unwrap_or_default());
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/managed-by": "ephemera-operator",
                pod::TASK_LABEL: pod::task_label(&task_name),
                pod::ATTEMPT_LABEL: attempt.to_string(),
            },
            "annotations": annotations,
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "type": "Opaque",
        "stringData": data,
    }))?;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Ok(wrap_expires)),
        Err(e) => {
            // Nobody will ever unwrap this one: revoke it before reporting the failure.
            if let (Some(accessor), Some(issuer)) = (minted_accessor, ctx.issuer.as_ref()) {
                if let Err(re) = issuer.revoke(&accessor).await {
                    tracing::warn!(error = %re, "could not revoke a token whose Secret was not created");
                }
            }
            Err(e.into())
        }
    }
}

/// Revokes the tokens of every attempt of `task` except `keep` (a Secret name) and deletes their
/// Secrets. Returns how many were revoked.
pub async fn revoke_ended(ctx: &Context, task: &Task, keep: Option<&str>) -> Result<usize, Error> {
    if !needs_secret(ctx, task) {
        return Ok(0);
    }
    let ns = task.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!(
        "{}={},app.kubernetes.io/managed-by=ephemera-operator",
        pod::TASK_LABEL,
        pod::task_label(&task.name_any())
    );
    let list = secrets.list(&ListParams::default().labels(&selector)).await?;
    let uid = task.meta().uid.as_deref();
    let mut n = 0;
    for s in list.items {
        let ours = s.metadata.owner_references.iter().flatten().any(|o| Some(o.uid.as_str()) == uid);
        if !ours || keep == Some(s.name_any().as_str()) {
            continue;
        }
        if revoke_secret(ctx, &secrets, &s).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Revokes one Secret's Vault token (unless it has expired anyway) and deletes the Secret; says
/// whether it held a token.
async fn revoke_secret(ctx: &Context, secrets: &Api<Secret>, s: &Secret) -> Result<bool, Error> {
    let accessor =
        s.data.as_ref().and_then(|d| d.get(ACCESSOR_KEY)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let expired = s
        .annotations()
        .get(EXPIRES_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| t <= Timestamp::now());
    let had_token = accessor.is_some();
    if let (Some(accessor), false, Some(issuer)) = (accessor, expired, ctx.issuer.as_ref()) {
        issuer.revoke(&accessor).await.map_err(Error::Vault)?;
        ctx.metrics.tokens_revoked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    match secrets.delete(&s.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(had_token),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(had_token),
        Err(e) => Err(e.into()),
    }
}
