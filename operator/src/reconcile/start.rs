//! Starting a recorded attempt: its credentials are resolved again (an admin may have changed them
//! since admission), its wrapped Vault token is minted into the operator's attempt record before the
//! Pod that claims it exists, then its Pod is created. What each outcome leads to is the lifecycle's
//! ([`ephemera_lifecycle::start`]).

use std::time::Duration;

use ephemera_crds::{Task, TaskStatus};
use ephemera_lifecycle::ending::deadline;
use ephemera_lifecycle::start::{outcome, token_issued};
use ephemera_lifecycle::{Plan, StartOutcome};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::ResourceExt;

use super::{credentials, pod, Context, Error, FIELD_MANAGER};
use crate::vault::VaultError;

/// Starts the attempt recorded in `status` and says what follows.
pub async fn attempt(
    ctx: &Context,
    pods: &Api<Pod>,
    task: &Task,
    mut status: TaskStatus,
    now: Timestamp,
) -> Result<Plan, Error> {
    let deadline = deadline(task, now);
    let remaining = deadline.duration_since(now).as_secs().max(1);
    let name = status.pod_name.clone();
    let ns = task.namespace().unwrap_or_default();
    let creds = match credentials::resolve(ctx, task, &ns).await? {
        Ok(c) => c,
        Err(refusal) => return Ok(outcome(task, status, StartOutcome::Refused(refusal), Timestamp::now(), deadline)),
    };
    let needs_tokens = credentials::needs_secret(ctx, task) || !creds.is_empty();
    if needs_tokens && pods.get_opt(&name).await?.is_none() {
        let left = Duration::from_secs(u64::try_from(remaining).unwrap_or(1));
        let step = match credentials::issue(ctx, task, &creds, status.attempt, &name, left).await? {
            credentials::Issued::Vault(e) => {
                let unavailable = matches!(e, VaultError::Unavailable(_));
                Some(StartOutcome::Vault { unavailable, message: e.to_string() })
            }
            credentials::Issued::NameTaken(msg) => Some(StartOutcome::SecretNameTaken(msg)),
            credentials::Issued::Ready(Some(expires)) => {
                // Counted as it happens: a later failure of this reconcile must not lose it.
                ctx.metrics.tokens_minted.inc();
                token_issued(task, &mut status, expires, Timestamp::now());
                None
            }
            credentials::Issued::Ready(None) => None,
        };
        if let Some(step) = step {
            // The time after the (possibly slow) Vault call, for the back-off and the conditions.
            return Ok(outcome(task, status, step, Timestamp::now(), deadline));
        }
    }
    let step = create(ctx, pods, task, &status, &creds, remaining).await?;
    if let StartOutcome::Created { uid } = &step {
        if !creds.is_empty() {
            // From now on exactly this Pod (name and uid) may claim the attempt's Vault token.
            credentials::record_pod(ctx, task, status.attempt, uid).await?;
        }
    }
    Ok(outcome(task, status, step, Timestamp::now(), deadline))
}

/// Creates the attempt's Pod, never over someone else's Pod of the name.
async fn create(
    ctx: &Context,
    pods: &Api<Pod>,
    task: &Task,
    status: &TaskStatus,
    creds: &[ephemera_crds::Credential],
    remaining: i64,
) -> Result<StartOutcome, Error> {
    let worker = pod::WorkerSettings {
        credentials: credentials::refs(creds),
        vault: ctx.issuer.as_ref().map(|i| i.config()),
        progress_url: ctx.config.progress.as_ref().map(|p| p.url.as_str()),
        handoff_url: ctx.config.handoff_url.as_deref(),
    };
    let pod = pod::worker_pod(task, status.attempt, remaining, &ctx.config, &worker)?;
    // A plain create, never over an existing Pod; only when the name is taken is the Pod looked at.
    // One of this Task's (an earlier create whose answer was lost) is checked by the next reconcile
    // against the record; anyone else's fails the Task.
    let post = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    Ok(match pods.create(&post, &pod).await {
        Ok(p) => StartOutcome::Created { uid: p.metadata.uid.unwrap_or_default() },
        Err(kube::Error::Api(e)) if e.code == 409 => match pods.get_opt(&status.pod_name).await? {
            Some(existing) if !pod::is_ours(task, &existing) => StartOutcome::PodNameTaken,
            _ => StartOutcome::NameRace,
        },
        Err(kube::Error::Api(e)) if e.code == 400 || e.code == 422 => StartOutcome::Rejected(e.message),
        Err(kube::Error::Api(e)) if e.code == 403 => StartOutcome::Forbidden(e.message),
        Err(e) => return Err(e.into()),
    })
}
