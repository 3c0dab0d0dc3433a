//! A Task's credentials: resolving its logical names against the admin's `Credential` catalogue,
//! minting the attempt's wrapped Vault token into the operator's own attempt record (see
//! [`crate::attempt_record`]; nothing unwrappable is ever stored in the Task's namespace), the
//! attempt's reporting token into a Secret owned by the Task, and revoking the Vault token (after
//! checking it belongs to the attempt) once the attempt is over.

use std::time::Duration;

use ephemera_crds::attempt_token::{self, AttemptClaims};
use ephemera_crds::worker::{CredentialRef, PROGRESS_TOKEN_FILE};
use ephemera_crds::{Credential, Task};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{Context, Error};
use crate::attempt_record::{self, Owner};
use crate::names;
use crate::vault::{Attempt, Revoked, VaultError};

use ephemera_crds::Reason;
use ephemera_lifecycle::Refusal;

fn refuse(reason: Reason, message: String) -> Result<Result<Vec<Credential>, Refusal>, Error> {
    Ok(Err(Refusal { reason, message }))
}

/// Resolves the Task's names to Credentials, or says which name is refused and why.
pub async fn resolve(ctx: &Context, task: &Task, ns: &str) -> Result<Result<Vec<Credential>, Refusal>, Error> {
    let creds: Api<Credential> = Api::all(ctx.client.clone());
    let mut out = Vec::with_capacity(task.spec.credentials.len());
    for name in &task.spec.credentials {
        match creds.get_opt(name).await? {
            None => {
                return refuse(
                    Reason::UnknownCredential,
                    format!("credential {name:?} does not exist: ask a cluster admin to define it"),
                )
            }
            Some(c) if !c.allows(ns) => {
                return refuse(
                    Reason::CredentialForbidden,
                    format!("credential {name:?} may not be used by Tasks in namespace {ns:?}"),
                )
            }
            Some(c) if c.spec.provider.signs() && c.spec.signing_key.is_none() && !ctx.config.allow_kv_private_keys => {
                return refuse(
                    Reason::PrivateKeyNotInTransit,
                    format!(
                        "credential {name:?} keeps its private key in KV: a cluster admin must import it into Vault Transit and set spec.signingKey (or run the operator with --allow-kv-private-keys, which is weaker)"
                    ),
                )
            }
            Some(c) => out.push(c),
        }
    }
    if !out.is_empty() && (ctx.issuer.is_none() || ctx.config.handoff_url.is_none()) {
        return refuse(
            Reason::VaultNotConfigured,
            "the Task names credentials but the operator has no Vault or credential hand-off configured (--vault-addr, --handoff-url)".into(),
        );
    }
    if let Some(clash) = env_clash(&out) {
        return refuse(Reason::CredentialConflict, clash);
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
                "credentials {same:?} are both {} and would set the same environment variables: run them in separate Tasks",
                p.as_str()
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
            signing_key: c.spec.signing_key.clone().filter(|_| c.spec.provider.signs()),
        })
        .collect()
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether attempts of `task` get a reporting Secret (live reporting configured).
pub fn needs_secret(ctx: &Context, _task: &Task) -> bool {
    ctx.config.progress.is_some()
}

/// What issuing an attempt's tokens came to.
pub enum Issued {
    /// Ready; `Some(expiry)` when a wrapping token was minted by this call.
    Ready(Option<String>),
    /// Vault refused or could not be reached.
    Vault(VaultError),
    /// A Secret of the reporting Secret's name exists and is not this Task's.
    NameTaken(String),
}

/// The Task's identity in its attempt records.
fn owner(task: &Task, attempt: i32, pod_name: &str) -> Owner {
    Owner {
        namespace: task.namespace().unwrap_or_default(),
        task: task.name_any(),
        task_uid: task.meta().uid.clone().unwrap_or_default(),
        attempt,
        pod: pod_name.to_string(),
    }
}

fn attempt_of(o: &Owner) -> Attempt<'_> {
    Attempt { namespace: &o.namespace, task: &o.task, task_uid: &o.task_uid, attempt: o.attempt }
}

fn records(ctx: &Context) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &ctx.config.namespace)
}

/// Whether `s` was made by the operator for `task` (controller owner uid and our label).
fn owned_by(task: &Task, s: &Secret) -> bool {
    let uid = task.meta().uid.as_deref();
    s.labels().get(names::MANAGED_BY.0).map(String::as_str) == Some(names::MANAGED_BY.1)
        && s.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// Makes sure the attempt has its tokens before its Pod exists: the wrapped Vault token in the
/// operator's attempt record (re-minted when the one there can no longer be claimed and unwrapped),
/// and the reporting token in a Secret of the Task's (when live progress is configured).
pub async fn issue(
    ctx: &Context,
    task: &Task,
    creds: &[Credential],
    attempt: i32,
    pod_name: &str,
    remaining: Duration,
) -> Result<Issued, Error> {
    let now = Timestamp::now();
    if let Some(progress) = &ctx.config.progress {
        let ns = task.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let name = crate::names::reporting_secret_name(pod_name);
        match secrets.get_opt(&name).await? {
            Some(existing) if owned_by(task, &existing) => {}
            // Never mount a Secret someone else planted under the name the Pod will use.
            Some(_) => {
                return Ok(Issued::NameTaken(format!(
                    "Secret {name} already exists and was not created by the operator for this Task"
                )))
            }
            None => {
                let claims = AttemptClaims {
                    namespace: ns.clone(),
                    task: task.name_any(),
                    uid: task.meta().uid.clone().unwrap_or_default(),
                    attempt,
                    expires: now.as_second()
                        + i64::try_from((remaining + ctx.config.termination_grace).as_secs()).unwrap_or(i64::MAX / 2),
                };
                let token = attempt_token::sign(progress.key.expose_secret(), &claims);
                let owner = task.controller_owner_ref(&()).map(|o| serde_json::to_value(o).unwrap_or_default());
                let secret: Secret = serde_json::from_value(json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": {
                            names::MANAGED_BY.0: names::MANAGED_BY.1,
                            names::TASK_LABEL: names::task_label(&task.name_any()),
                            names::ATTEMPT_LABEL: attempt.to_string(),
                        },
                        "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
                    },
                    "type": "Opaque",
                    "stringData": {PROGRESS_TOKEN_FILE: token},
                }))?;
                match secrets.create(&PostParams::default(), &secret).await {
                    Ok(_) => {}
                    // Created meanwhile (a concurrent reconcile): checked on the next pass.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    let Some(issuer) = ctx.issuer.as_ref().filter(|_| !creds.is_empty()) else { return Ok(Issued::Ready(None)) };
    let who = owner(task, attempt, pod_name);
    let records = records(ctx);
    let record_name = attempt_record::name(&who.task_uid, attempt);
    if let Some(existing) = records.get_opt(&record_name).await? {
        let usable = attempt_record::view(&existing).is_some_and(|v| {
            v.holds_wrapping_token && v.wrap_expires.parse::<Timestamp>().is_ok_and(|t| t > Timestamp::now())
        });
        if usable {
            return Ok(Issued::Ready(None));
        }
        // Stale (the Pod never started in time) or already claimed by a Pod that is gone: replace
        // it rather than hand the next Pod a dead token.
        revoke_record(ctx, &records, &existing).await?;
    }
    let mut policies = Vec::with_capacity(creds.len());
    for c in creds {
        match issuer.ensure_policy(c).await {
            Ok(p) => policies.push(p),
            Err(e) => return Ok(Issued::Vault(e)),
        }
    }
    // The token never outlives the Task's deadline (plus the Pod's grace to revoke itself).
    let ttl = remaining + ctx.config.termination_grace;
    let minted = match issuer.mint(&attempt_of(&who), &policies, crate::vault::uses_for(creds), ttl).await {
        Ok(m) => m,
        Err(e) => return Ok(Issued::Vault(e)),
    };
    let plus = |d: Duration| rfc3339(now.checked_add(d).unwrap_or(now));
    let wrap_expires = plus(issuer.config().wrap_ttl);
    let record = attempt_record::build(
        &who,
        &ctx.config.namespace,
        minted.wrapping_token.expose_secret(),
        &minted.accessor,
        &plus(minted.ttl),
        &wrap_expires,
    );
    match records.create(&PostParams::default(), &record).await {
        Ok(_) => Ok(Issued::Ready(Some(wrap_expires))),
        Err(e) => {
            // Nobody will ever claim this one: revoke it before reporting the failure.
            if let Err(re) = issuer.revoke(&minted.accessor, &attempt_of(&who)).await {
                tracing::warn!(error = %re, "could not revoke a token whose attempt record was not created");
            }
            Err(e.into())
        }
    }
}

/// Records the uid of the Pod just created for the attempt: only that Pod may claim the token.
pub async fn record_pod(ctx: &Context, task: &Task, attempt: i32, pod_uid: &str) -> Result<(), Error> {
    let records = records(ctx);
    let name = attempt_record::name(&task.meta().uid.clone().unwrap_or_default(), attempt);
    let Some(record) = records.get_opt(&name).await? else { return Ok(()) };
    records.replace(&name, &PostParams::default(), &attempt_record::with_pod_uid(record, pod_uid)).await?;
    Ok(())
}

/// The Pod uid recorded for the attempt (None: no record, or no Pod recorded yet).
pub async fn recorded_pod(ctx: &Context, task: &Task, attempt: i32) -> Result<Option<String>, Error> {
    let name = attempt_record::name(&task.meta().uid.clone().unwrap_or_default(), attempt);
    let record = records(ctx).get_opt(&name).await?;
    Ok(record.as_ref().and_then(attempt_record::view).map(|v| v.pod_uid).filter(|u| !u.is_empty()))
}

/// Revokes the Vault tokens of every attempt of `task`, deletes their records, and deletes the
/// attempts' reporting Secrets. Returns how many tokens were revoked.
pub async fn revoke_ended(ctx: &Context, task: &Task) -> Result<usize, Error> {
    let mut n = 0;
    if ctx.issuer.is_some() && !task.spec.credentials.is_empty() {
        let uid = task.meta().uid.clone().unwrap_or_default();
        let records = records(ctx);
        for s in records.list(&ListParams::default().labels(&attempt_record::selector(&uid))).await?.items {
            if revoke_record(ctx, &records, &s).await? {
                n += 1;
            }
        }
    }
    if needs_secret(ctx, task) {
        // By name, not by listing: every attempt's Secret name is known (its Pod's name), so the
        // operator needs no right to list the Secrets of tenants' namespaces.
        let ns = task.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let attempts = task.status.as_ref().map(|s| s.attempt).unwrap_or_default();
        for attempt in 1..=attempts {
            let name = names::reporting_secret_name(&names::pod_name(&task.name_any(), attempt));
            if let Some(s) = secrets.get_opt(&name).await? {
                if owned_by(task, &s) {
                    delete(&secrets, &name).await?;
                }
            }
        }
    }
    Ok(n)
}

/// Revokes one record's Vault token (unless it has expired anyway, or names another attempt's token)
/// and deletes the record; says whether a token was revoked.
async fn revoke_record(ctx: &Context, records: &Api<Secret>, s: &Secret) -> Result<bool, Error> {
    let mut revoked = false;
    if let (Some(v), Some(issuer)) = (attempt_record::view(s), ctx.issuer.as_ref()) {
        let expired = v.token_expires.parse::<Timestamp>().is_ok_and(|t| t <= Timestamp::now());
        if let (Some(accessor), false) = (v.accessor.as_deref(), expired) {
            match issuer.revoke(accessor, &attempt_of(&v.owner)).await.map_err(Error::Vault)? {
                Revoked::Done => {
                    revoked = true;
                    ctx.metrics.tokens_revoked.inc();
                }
                Revoked::NotOurs => {}
            }
        }
    }
    delete(records, &s.name_any()).await?;
    Ok(revoked)
}

async fn delete(api: &Api<Secret>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
