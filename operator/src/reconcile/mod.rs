//! Reconciling one Task: admission to its queue, one worker Pod per attempt, the Pod's fate projected
//! into status, retries with back-off, cancellation, the deadline, TTL clean-up and a finalizer that
//! removes what the Task created. Status is written (with the read resourceVersion) before each Pod is
//! created, and Pod names are deterministic, so a restarted operator never creates a second Pod for
//! an attempt and never loses a transition.

pub mod credentials;
pub mod observe;
pub mod pod;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_crds::{Condition, FailureClass, Task, TaskPhase, TaskQueue, TaskStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;

use self::observe::Attempt;
use self::schedule::Admission;
use crate::metrics::Metrics;
use crate::Config;

/// Finalizer that makes deletion wait for clean-up.
pub const FINALIZER: &str = "ephemera.dev/cleanup";
const FIELD_MANAGER: &str = "ephemera-operator";

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Building the Pod failed.
    #[error("building the worker Pod: {0}")]
    Pod(#[from] serde_json::Error),
    /// A Vault call failed (revocation is retried; the finalizer waits for it).
    #[error("{0}")]
    Vault(#[from] crate::vault::VaultError),
    /// The finalizer helper failed (its source is the reconcile's own error, when that is what failed).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// Shared state of all reconciles.
pub struct Context {
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    store: Store<Task>,
    admission: tokio::sync::Mutex<Admission>,
    recorder: Recorder,
    issuer: Option<crate::vault::Issuer>,
    /// The last seen spec of each queue (for the order in which waiting Tasks are woken).
    queues: std::sync::RwLock<std::collections::HashMap<String, ephemera_crds::TaskQueueSpec>>,
}

impl Context {
    /// A context over the controller's Task cache.
    pub fn new(
        client: Client,
        config: Config,
        metrics: Arc<Metrics>,
        store: Store<Task>,
    ) -> Result<Self, crate::vault::VaultError> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter { controller: FIELD_MANAGER.into(), instance: Some(config.identity.clone()) },
        );
        let issuer = config.vault.clone().map(crate::vault::Issuer::new).transpose()?;
        let admission = tokio::sync::Mutex::new(Admission::default());
        let queues = Default::default();
        Ok(Self { client, config, metrics, store, admission, recorder, issuer, queues })
    }

    /// Records a queue's spec as last seen.
    pub fn remember_queue(&self, name: &str, spec: &ephemera_crds::TaskQueueSpec) {
        if let Ok(mut q) = self.queues.write() {
            if q.get(name) != Some(spec) {
                q.insert(name.to_string(), spec.clone());
            }
        }
    }

    /// A queue's spec as last seen.
    pub fn queue_spec(&self, name: &str) -> Option<ephemera_crds::TaskQueueSpec> {
        self.queues.read().ok().and_then(|q| q.get(name).cloned())
    }

    /// Recomputes the per-phase and per-queue gauges from the cache (called periodically).
    /// Returns (pending, running) per queue, which the TaskQueue status loop also publishes.
    pub fn refresh_gauges(&self) -> BTreeMap<String, (u64, u64)> {
        let mut phases: BTreeMap<String, u64> = BTreeMap::new();
        let mut queues: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for t in self.store.state() {
            let phase = t.status.as_ref().map(|s| s.phase).unwrap_or_default();
            *phases.entry(format!("{phase:?}")).or_default() += 1;
            let q = queues.entry(t.spec.queue.clone()).or_default();
            match phase {
                TaskPhase::Pending => q.0 += 1,
                TaskPhase::Scheduled | TaskPhase::Running => q.1 += 1,
                _ => {}
            }
        }
        self.metrics.set_snapshot(phases, queues.clone());
        queues
    }

    async fn event(&self, task: &Task, type_: EventType, reason: &str, note: String) {
        let ev = KubeEvent { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &task.object_ref(&())).await {
            tracing::debug!(error = %e, "could not record event");
        }
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse(ts: &str) -> Option<Timestamp> {
    ts.parse().ok()
}

fn truncate(mut s: String) -> String {
    if s.len() > ephemera_crds::task::MAX_RESULT_BYTES {
        let mut cut = ephemera_crds::task::MAX_RESULT_BYTES - 20;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n[truncated]");
    }
    s
}

fn set_condition(status: &mut TaskStatus, type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>) {
    let now = rfc3339(Timestamp::now());
    let value = if ok { "True" } else { "False" };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Some(now);
            }
            c.status = value.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => status.conditions.push(Condition {
            type_: type_.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Some(now),
            observed_generation: generation,
        }),
    }
}

/// The controller's reconcile entry point.
pub async fn reconcile(task: Arc<Task>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = task.namespace().unwrap_or_default();
    let api: Api<Task> = Api::namespaced(ctx.client.clone(), &ns);
    let span = tracing::info_span!("reconcile", task = %task.name_any(), namespace = %ns);
    let result = finalizer(&api, FINALIZER, task, |event| async {
        match event {
            Event::Apply(t) => apply(t, &ctx).await,
            Event::Cleanup(t) => cleanup(t, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconcile.observe(started.elapsed());
    result
}

/// Failed reconciles are retried soon.
pub fn error_policy(_task: Arc<Task>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Writes the status (only when it changed), guarded by the resourceVersion that was read. A phase
/// change is also recorded as an event in `status.progress` (so live streams see phases and progress
/// in one sequence), and a new attempt resets the worker's sequence.
async fn write_status(ctx: &Context, api: &Api<Task>, task: &Task, mut status: TaskStatus) -> Result<Task, Error> {
    let before = task.status.clone().unwrap_or_default();
    // The event ring belongs to the object being replaced (callers may hold an older copy, and the API
    // server appends progress): only a phase change adds to it here.
    status.progress = before.progress.clone();
    status.last_seq = before.last_seq;
    status.progress_compacted = before.progress_compacted;
    status.progress_dropped = before.progress_dropped;
    status.worker_seq = if status.attempt == before.attempt { before.worker_seq } else { 0 };
    if status.phase != before.phase {
        let event = ephemera_crds::ProgressEvent {
            seq: 0,
            kind: ephemera_crds::EventKind::Phase,
            phase: Some(status.phase),
            attempt: status.attempt,
            time: rfc3339(Timestamp::now()),
            percent: None,
            message: status.message.chars().take(1024).collect(),
        };
        // This replica's setting (a process may run several operators, as the tests do).
        status.push_events([event], ctx.config.event_ring);
    }
    if task.status.as_ref() == Some(&status) {
        return Ok(task.clone());
    }
    let mut next = task.clone();
    next.status = Some(status);
    Ok(api.replace_status(&task.name_any(), &PostParams::default(), &next).await?)
}

async fn apply(task: Arc<Task>, ctx: &Context) -> Result<Action, Error> {
    let ns = task.namespace().unwrap_or_default();
    let name = task.name_any();
    let api: Api<Task> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    let generation = task.metadata.generation;
    let mut status = task.status.clone().unwrap_or_default();
    status.observed_generation = generation;

    if status.phase.is_terminal() {
        // Normally done by `finish`; repeated here in case that revocation failed.
        credentials::revoke_ended(ctx, &task).await?;
        return ttl(&api, &task, &status, now).await;
    }

    let created = task.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let deadline = created.checked_add(SignedDuration::from_secs(task.spec.timeout_seconds)).unwrap_or(now);
    let current = match status.pod_name.as_str() {
        "" => None,
        p => pods.get_opt(p).await?.filter(|pod| pod::is_ours(&task, pod)),
    };
    let running_pod =
        current.as_ref().filter(|p| !matches!(observe::attempt(p), Attempt::Succeeded { .. } | Attempt::Failed { .. }));

    // An attempt that already ended is projected first: its outcome beats a later cancel or deadline.
    let ended = matches!(status.phase, TaskPhase::Scheduled | TaskPhase::Running)
        && current
            .as_ref()
            .is_some_and(|p| matches!(observe::attempt(p), Attempt::Succeeded { .. } | Attempt::Failed { .. }));
    if task.spec.cancel && !ended {
        if let Some(p) = running_pod {
            stop_gracefully(ctx, &pods, p).await?;
        }
        return finish(ctx, &api, &task, status, TaskPhase::Cancelled, "Cancelled", "cancelled on request".into())
            .await;
    }
    if now >= deadline && !ended {
        // The same grace as a cancel: the worker still revokes its provider tokens on the way out.
        if let Some(p) = running_pod {
            stop_gracefully(ctx, &pods, p).await?;
        }
        let msg = format!("the Task did not finish within {}s", task.spec.timeout_seconds);
        return finish(ctx, &api, &task, status, TaskPhase::TimedOut, "DeadlineExceeded", msg).await;
    }
    let until_deadline = Duration::from_secs(u64::try_from(deadline.duration_since(now).as_secs()).unwrap_or(0).max(1));

    match status.phase {
        TaskPhase::Pending => {
            // Credentials are checked before any Pod exists: an unknown or forbidden name ends the Task.
            if let Err((reason, message)) = credentials::resolve(ctx, &task, &ns).await? {
                set_condition(&mut status, "CredentialsResolved", false, reason, &message, generation);
                return finish(ctx, &api, &task, status, TaskPhase::Failed, reason, message).await;
            }
            if !task.spec.credentials.is_empty() {
                set_condition(&mut status, "CredentialsResolved", true, "Resolved", "", generation);
            }
            let queues: Api<TaskQueue> = Api::all(ctx.client.clone());
            let queue = queues.get_opt(&task.spec.queue).await?;
            let problem = match &queue {
                None => Some((
                    "UnknownQueue",
                    format!(
                        "queue {:?} does not exist: create a TaskQueue of that name or use another queue",
                        task.spec.queue
                    ),
                )),
                Some(q) if !q.spec.namespaces.is_empty() && !q.spec.namespaces.contains(&ns) => Some((
                    "QueueForbidden",
                    format!("queue {:?} does not accept Tasks from namespace {ns:?}", task.spec.queue),
                )),
                Some(_) => None,
            };
            if let Some((reason, message)) = problem {
                set_condition(&mut status, "QueueAccepted", false, reason, &message, generation);
                if status.reason != reason {
                    ctx.event(&task, EventType::Warning, reason, message.clone()).await;
                }
                status.reason = reason.into();
                status.message = message;
                write_status(ctx, &api, &task, status).await?;
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
            let queue_spec = queue.map(|q| q.spec).unwrap_or_default();
            let concurrency = queue_spec.concurrency;
            ctx.remember_queue(&task.spec.queue, &queue_spec);
            set_condition(&mut status, "QueueAccepted", true, "QueueFound", "", generation);
            match queue_spec.priority_cap(&ns).filter(|cap| task.spec.priority > *cap) {
                Some(cap) => {
                    let msg = format!(
                        "priority {} is ranked as {cap}: queue {:?} caps Tasks of namespace {ns:?} at {cap}",
                        task.spec.priority, task.spec.queue
                    );
                    set_condition(&mut status, "PriorityCapped", true, "QueuePriorityCap", &msg, generation);
                }
                None => status.conditions.retain(|c| c.type_ != "PriorityCapped"),
            }
            if let Some(next) = status.next_attempt_time.as_deref().and_then(parse) {
                if next > now {
                    write_status(ctx, &api, &task, status).await?;
                    let wait = u64::try_from(next.duration_since(now).as_secs()).unwrap_or(0) + 1;
                    return Ok(Action::requeue(Duration::from_secs(wait)));
                }
            }
            let admitted = ctx.admission.lock().await.try_admit(&task, &ctx.store.state(), &queue_spec, &rfc3339(now));
            if !admitted {
                status.reason = "Queued".into();
                status.message =
                    format!("waiting for a free slot in queue {:?} (concurrency {concurrency})", task.spec.queue);
                write_status(ctx, &api, &task, status).await?;
                // Woken when a slot frees; this is only the safety net.
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
            // Record the attempt before its Pod exists, so a crash between the two never leads to
            // a second Pod for the same attempt.
            status.attempt += 1;
            status.pod_name = crate::names::pod_name(&name, status.attempt);
            status.pod_uid = String::new();
            status.wrap_expires = String::new();
            status.phase = TaskPhase::Scheduled;
            status.reason = "CreatingPod".into();
            status.message = format!("starting attempt {}", status.attempt);
            status.next_attempt_time = None;
            let scheduled = match write_status(ctx, &api, &task, status.clone()).await {
                Ok(t) => t,
                Err(e) => {
                    ctx.admission.lock().await.release(&task);
                    return Err(e);
                }
            };
            // Continue with the object just written (the cache may not have it yet).
            create_pod(ctx, &api, &pods, &scheduled, status, created, now, deadline).await
        }
        TaskPhase::Scheduled | TaskPhase::Running => match current {
            None if status.pod_uid.is_empty() => {
                create_pod(ctx, &api, &pods, &task, status, created, now, deadline).await
            }
            None => {
                let msg = format!("Pod {} was deleted before the attempt finished", status.pod_name);
                retry_or_fail(
                    ctx,
                    &api,
                    &task,
                    status,
                    FailureClass::Infrastructure,
                    "PodDeleted",
                    msg,
                    None,
                    String::new(),
                    deadline,
                )
                .await
            }
            Some(p) => {
                if status.pod_uid.is_empty() {
                    let uid = p.metadata.uid.clone().unwrap_or_default();
                    // A Pod with credentials is adopted only if it is the one the operator recorded
                    // creating: anyone who may create Pods here could have made one of that name.
                    if !task.spec.credentials.is_empty()
                        && credentials::recorded_pod(ctx, &task, status.attempt).await?.as_deref() != Some(uid.as_str())
                    {
                        stop_gracefully(ctx, &pods, &p).await?;
                        let msg = format!(
                            "Pod {} is not the Pod the operator created for this attempt (or the operator stopped before recording it); it was stopped",
                            p.name_any()
                        );
                        return retry_or_fail(
                            ctx,
                            &api,
                            &task,
                            status,
                            FailureClass::Infrastructure,
                            "PodUnverified",
                            msg,
                            None,
                            String::new(),
                            deadline,
                        )
                        .await;
                    }
                    status.pod_uid = uid;
                }
                match observe::attempt(&p) {
                    Attempt::Starting { problem } => {
                        let pod_created = p.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
                        let stuck_at = pod_created
                            .checked_add(SignedDuration::try_from(ctx.config.pod_start_timeout).unwrap_or_default())
                            .unwrap_or(now);
                        if let Some((reason, message)) = &problem {
                            set_condition(&mut status, "PodStarted", false, reason, message, generation);
                            status.reason = reason.clone();
                            status.message = message.clone();
                        }
                        if now >= stuck_at {
                            // With grace: the credentials step may be running and must revoke.
                            stop_gracefully(ctx, &pods, &p).await?;
                            let detail = problem.map(|(r, m)| format!(": {r}: {m}")).unwrap_or_default();
                            let msg = format!(
                                "Pod {} did not start within {}s{detail}",
                                p.name_any(),
                                ctx.config.pod_start_timeout.as_secs()
                            );
                            return retry_or_fail(
                                ctx,
                                &api,
                                &task,
                                status,
                                FailureClass::Infrastructure,
                                "PodStuck",
                                msg,
                                None,
                                String::new(),
                                deadline,
                            )
                            .await;
                        }
                        write_status(ctx, &api, &task, status).await?;
                        let wait = u64::try_from(stuck_at.duration_since(now).as_secs()).unwrap_or(0) + 1;
                        Ok(Action::requeue(Duration::from_secs(wait.min(30))))
                    }
                    Attempt::Running => {
                        if status.phase != TaskPhase::Running {
                            status.phase = TaskPhase::Running;
                            status.reason = "Running".into();
                            status.message = format!("attempt {} is running in Pod {}", status.attempt, p.name_any());
                            set_condition(&mut status, "PodStarted", true, "Running", "", generation);
                            if status.start_time.is_none() {
                                status.start_time = Some(rfc3339(now));
                                ctx.metrics.start_latency.observe(now.duration_since(created).unsigned_abs());
                            }
                            ctx.event(&task, EventType::Normal, "Running", status.message.clone()).await;
                        }
                        write_status(ctx, &api, &task, status).await?;
                        Ok(Action::requeue(until_deadline))
                    }
                    Attempt::Succeeded { result } => {
                        status.exit_code = Some(0);
                        status.result = truncate(result);
                        finish(
                            ctx,
                            &api,
                            &task,
                            status,
                            TaskPhase::Succeeded,
                            "Succeeded",
                            "the task command exited with code 0".into(),
                        )
                        .await
                    }
                    Attempt::Intercepted { started, .. } if expired_before_start(&status.wrap_expires, started) => {
                        let msg = format!(
                            "the attempt's one-time Vault token expired at {} before its Pod started (not an interception); raise --vault-wrap-ttl-seconds if Pods here start this slowly",
                            status.wrap_expires
                        );
                        ctx.event(&task, EventType::Warning, "CredentialExpired", msg.clone()).await;
                        let class = FailureClass::Infrastructure;
                        retry_or_fail(
                            ctx,
                            &api,
                            &task,
                            status,
                            class,
                            "CredentialExpired",
                            msg,
                            None,
                            String::new(),
                            deadline,
                        )
                        .await
                    }
                    Attempt::Intercepted { message, .. } => {
                        ctx.metrics.unwrap_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let msg = format!(
                            "possible credential interception: the worker could not unwrap its one-time Vault token ({message}); the attempt's token was revoked and the Task is not retried"
                        );
                        set_condition(
                            &mut status,
                            "CredentialsDelivered",
                            false,
                            "CredentialUnwrapFailed",
                            &msg,
                            generation,
                        );
                        ctx.event(&task, EventType::Warning, "CredentialUnwrapFailed", msg.clone()).await;
                        finish(ctx, &api, &task, status, TaskPhase::Failed, "CredentialUnwrapFailed", msg).await
                    }
                    Attempt::Failed { class: FailureClass::Timeout, reason, message, exit_code, result } => {
                        status.exit_code = exit_code;
                        status.result = truncate(result);
                        finish(ctx, &api, &task, status, TaskPhase::TimedOut, &reason, message).await
                    }
                    Attempt::Failed { class, reason, message, exit_code, result } => {
                        retry_or_fail(ctx, &api, &task, status, class, &reason, message, exit_code, result, deadline)
                            .await
                    }
                }
            }
        },
        _ => Ok(Action::await_change()),
    }
}

/// Creates (server-side apply: idempotent for the deterministic name) the attempt's Pod.
#[allow(clippy::too_many_arguments)]
async fn create_pod(
    ctx: &Context,
    api: &Api<Task>,
    pods: &Api<Pod>,
    task: &Task,
    mut status: TaskStatus,
    created: Timestamp,
    now: Timestamp,
    deadline: Timestamp,
) -> Result<Action, Error> {
    let remaining = deadline.duration_since(now).as_secs().max(1);
    let name = status.pod_name.clone();
    // Credentials are resolved again (an admin may have changed them since admission), then the
    // attempt's wrapped token is minted into its Secret before the Pod that mounts it exists.
    let creds = match credentials::resolve(ctx, task, &task.namespace().unwrap_or_default()).await? {
        Ok(c) => c,
        Err((reason, message)) => {
            set_condition(&mut status, "CredentialsResolved", false, reason, &message, task.metadata.generation);
            return finish(ctx, api, task, status, TaskPhase::Failed, reason, message).await;
        }
    };
    let needs_tokens = credentials::needs_secret(ctx, task) || !creds.is_empty();
    if needs_tokens && pods.get_opt(&name).await?.is_none() {
        let left = Duration::from_secs(u64::try_from(remaining).unwrap_or(1));
        match credentials::issue(ctx, task, &creds, status.attempt, &name, left).await? {
            credentials::Issued::Vault(e) => {
                ctx.metrics.vault_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let reason = match e {
                    crate::vault::VaultError::Unavailable(_) => "VaultUnavailable",
                    crate::vault::VaultError::Refused(_) => "VaultRefused",
                };
                let msg = format!("could not issue the attempt's Vault token: {e}");
                set_condition(&mut status, "CredentialsIssued", false, reason, &msg, task.metadata.generation);
                return retry_or_fail(
                    ctx,
                    api,
                    task,
                    status,
                    FailureClass::Infrastructure,
                    reason,
                    msg,
                    None,
                    String::new(),
                    deadline,
                )
                .await;
            }
            credentials::Issued::NameTaken(msg) => {
                return finish(ctx, api, task, status, TaskPhase::Failed, "SecretNameTaken", msg).await;
            }
            credentials::Issued::Ready(Some(expires)) => {
                status.wrap_expires = expires;
                ctx.metrics.tokens_minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                set_condition(&mut status, "CredentialsIssued", true, "TokenIssued", "", task.metadata.generation);
            }
            credentials::Issued::Ready(None) => {}
        }
    }
    let worker = pod::WorkerSettings {
        credentials: credentials::refs(&creds),
        vault: ctx.issuer.as_ref().map(|i| i.config()),
        progress_url: ctx.config.progress.as_ref().map(|p| p.url.as_str()),
        handoff_url: ctx.config.handoff_url.as_deref(),
    };
    let pod = pod::worker_pod(task, status.attempt, remaining, &ctx.config, &worker)?;
    // Never apply over someone else's Pod that happens to have the name.
    if let Some(existing) = pods.get_opt(&name).await? {
        if !pod::is_ours(task, &existing) {
            let msg = format!("Pod {name} already exists and does not belong to this Task");
            return finish(ctx, api, task, status, TaskPhase::Failed, "PodNameTaken", msg).await;
        }
    }
    // A plain create: if a Pod of the name appeared meanwhile, this attempt never treats it as its own
    // (the next reconcile sees it and checks it against the record).
    let post = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let applied = match pods.create(&post, &pod).await {
        Ok(p) => p,
        Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Action::requeue(Duration::from_secs(1))),
        // The API server will never accept this Pod (e.g. a malformed quantity): say why and stop.
        Err(kube::Error::Api(e)) if e.code == 400 || e.code == 422 => {
            let msg = format!("the worker Pod was rejected: {}", e.message);
            return finish(ctx, api, task, status, TaskPhase::Failed, "PodInvalid", msg).await;
        }
        // Quota or admission may allow it later: report it and try again without hammering.
        Err(kube::Error::Api(e)) if e.code == 403 => {
            set_condition(&mut status, "PodCreated", false, "Forbidden", &e.message, task.metadata.generation);
            status.reason = "PodForbidden".into();
            status.message = e.message.clone();
            write_status(ctx, api, task, status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        Err(e) => return Err(e.into()),
    };
    status.pod_uid = applied.metadata.uid.clone().unwrap_or_default();
    if !creds.is_empty() {
        // From now on exactly this Pod (name and uid) may claim the attempt's Vault token.
        credentials::record_pod(ctx, task, status.attempt, &status.pod_uid).await?;
    }
    status.reason = "PodCreated".into();
    status.message = format!("attempt {} runs in Pod {name}", status.attempt);
    if status.attempt == 1 {
        ctx.metrics.pod_created_latency.observe(now.duration_since(created).unsigned_abs());
    }
    ctx.event(task, EventType::Normal, "Scheduled", status.message.clone()).await;
    write_status(ctx, api, task, status).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// Whether a wrapping token that could not be unwrapped had simply expired: its container started
/// (kubelet time) no earlier than moments before the expiry the operator recorded when minting.
fn expired_before_start(wrap_expires: &str, started: Option<Timestamp>) -> bool {
    let (Ok(expires), Some(started)) = (wrap_expires.parse::<Timestamp>(), started) else { return false };
    // The worker asks Vault within moments of starting.
    started + SignedDuration::from_secs(2) >= expires
}

/// Deletes a running attempt's Pod with the configured grace, so its worker can stop the command and
/// revoke what it minted.
async fn stop_gracefully(ctx: &Context, pods: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let grace = u32::try_from(ctx.config.termination_grace.as_secs()).unwrap_or(30);
    pods.delete(&pod.name_any(), &DeleteParams::default().grace_period(grace)).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn retry_or_fail(
    ctx: &Context,
    api: &Api<Task>,
    task: &Task,
    mut status: TaskStatus,
    class: FailureClass,
    reason: &str,
    message: String,
    exit_code: Option<i32>,
    result: String,
    deadline: Timestamp,
) -> Result<Action, Error> {
    status.exit_code = exit_code;
    status.result = truncate(result);
    // The attempt is over: its token goes now, not when the Task ends.
    credentials::revoke_ended(ctx, task).await?;
    let policy = &task.spec.retry;
    let backoff = policy
        .backoff_seconds
        .saturating_mul(1i64 << (status.attempt - 1).clamp(0, 20))
        .min(policy.max_backoff_seconds);
    let next = Timestamp::now().checked_add(SignedDuration::from_secs(backoff)).unwrap_or_else(|_| Timestamp::now());
    if policy.retry_on.contains(&class) && status.attempt < policy.max_attempts && next < deadline {
        status.phase = TaskPhase::Pending;
        status.reason = "RetryBackoff".into();
        status.message = format!("attempt {} failed ({reason}: {message}); retrying in {backoff}s", status.attempt);
        status.next_attempt_time = Some(rfc3339(next));
        ctx.event(task, EventType::Warning, "AttemptFailed", status.message.clone()).await;
        write_status(ctx, api, task, status).await?;
        ctx.admission.lock().await.release(task);
        return Ok(Action::requeue(Duration::from_secs(u64::try_from(backoff).unwrap_or(0) + 1)));
    }
    let why = if !policy.retry_on.contains(&class) {
        format!("{message} ({class:?} failures are not retried)")
    } else {
        format!("{message} (no attempts left: {}/{})", status.attempt, policy.max_attempts)
    };
    finish(ctx, api, task, status, TaskPhase::Failed, reason, why).await
}

/// Ends the Task: terminal phase, completion time, event; its queue slot is freed (the waiting Tasks
/// are woken by the controller's watch on Tasks, see `crate::run`).
#[allow(clippy::too_many_arguments)]
async fn finish(
    ctx: &Context,
    api: &Api<Task>,
    task: &Task,
    mut status: TaskStatus,
    phase: TaskPhase,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    status.phase = phase;
    status.reason = reason.into();
    status.message = message.clone();
    status.next_attempt_time = None;
    status.completion_time = Some(rfc3339(now));
    let ok = phase == TaskPhase::Succeeded;
    // Job-style: `Complete` only for success, `Failed` for every other ending (so
    // `kubectl wait --for=condition=Complete` never passes a failed Task).
    set_condition(&mut status, "Complete", ok, reason, &message, task.metadata.generation);
    set_condition(&mut status, "Failed", !ok, reason, &message, task.metadata.generation);
    let event_type = if ok { EventType::Normal } else { EventType::Warning };
    ctx.event(task, event_type, reason, format!("{phase:?}: {message}")).await;
    write_status(ctx, api, task, status.clone()).await?;
    ctx.admission.lock().await.release(task);
    let revoked = credentials::revoke_ended(ctx, task).await?;
    if revoked > 0 {
        ctx.event(
            task,
            EventType::Normal,
            "CredentialsRevoked",
            format!("Vault tokens of {revoked} attempt(s) revoked"),
        )
        .await;
    }
    ttl(api, task, &status, now).await
}

/// Deletes a finished Task once its `ttlSecondsAfterFinished` has passed.
async fn ttl(api: &Api<Task>, task: &Task, status: &TaskStatus, now: Timestamp) -> Result<Action, Error> {
    let (Some(ttl), Some(done)) =
        (task.spec.ttl_seconds_after_finished, status.completion_time.as_deref().and_then(parse))
    else {
        return Ok(Action::await_change());
    };
    let expires = done.checked_add(SignedDuration::from_secs(ttl)).unwrap_or(done);
    if now >= expires {
        if task.metadata.deletion_timestamp.is_none() {
            api.delete(&task.name_any(), &DeleteParams::background()).await?;
        }
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(Duration::from_secs(u64::try_from(expires.duration_since(now).as_secs()).unwrap_or(0) + 1)))
}

/// Deletion: stop and remove every Pod the Task created, then let the finalizer go.
async fn cleanup(task: Arc<Task>, ctx: &Context) -> Result<Action, Error> {
    let ns = task.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={}", crate::names::TASK_LABEL, crate::names::task_label(&task.name_any()));
    let owned = pods.list(&kube::api::ListParams::default().labels(&selector)).await?;
    for p in owned.items.iter().filter(|p| pod::is_ours(&task, p)) {
        match pods.delete(&p.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The finalizer stays until every token the Task was given is revoked.
    credentials::revoke_ended(ctx, &task).await?;
    ctx.admission.lock().await.release(&task);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwrap_failure_is_expiry_only_when_the_container_started_after_the_token_expired() {
        let expires = "2026-12-01T10:00:00Z";
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert!(expired_before_start(expires, at("2026-12-01T10:05:00Z")), "a Pod that started late");
        assert!(expired_before_start(expires, at("2026-12-01T09:59:59Z")), "within the 2 s the worker needs to ask");
        assert!(!expired_before_start(expires, at("2026-12-01T09:59:00Z")), "in time: someone else unwrapped it");
        assert!(!expired_before_start("", at("2026-12-01T10:05:00Z")), "no expiry recorded: assume interception");
        assert!(!expired_before_start(expires, None), "a forged token is never put down to expiry");
    }
}
