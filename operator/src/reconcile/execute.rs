//! Carrying out the lifecycle: the facts it asks for are looked up, its plans are executed in order.

use std::sync::Arc;
use std::time::Duration;

use ephemera_crds::template::with_rendering;
use ephemera_crds::{Reason, Task, TaskQueue, TaskStatus};
use ephemera_lifecycle::status::{for_write, rfc3339};
use ephemera_lifecycle::{Decision, Effect, Fact, Metric, Next, Note, ObservedPod, Plan, Seen, Settings};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{credentials, pod, start, template, Context, Error};

/// How long a reconcile waits for the first list of TaskQueues before it reads its queue itself.
const QUEUES_LISTED_WITHIN: Duration = Duration::from_secs(5);

/// One reconcile of a Task that is not being deleted.
pub async fn apply(task: Arc<Task>, ctx: &Context) -> Result<Action, Error> {
    let ns = task.namespace().unwrap_or_default();
    let api: Api<Task> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    let settings = Settings { pod_start_timeout: ctx.config.pod_start_timeout };
    let mut seen = Seen::default();
    // The Task as it runs: a templated Task's rendering in place of its spec (from its status, or
    // from the rendering just made); facts are looked up for it, not for the Task as written.
    let mut view = task.rendered().into_owned();
    ctx.fill_expected_pod(&mut view);
    let mut plan = loop {
        match ephemera_lifecycle::decide(&view, &seen, now, &settings) {
            Decision::Need(fact) => {
                learn(ctx, &view, &pods, fact, &mut seen, now).await?;
                if let Some(Ok(r)) = &seen.template {
                    view = with_rendering(&task, &r.task);
                    ctx.fill_expected_pod(&mut view);
                }
            }
            Decision::Plan(plan) => break plan,
        }
    };
    let mut admitted = seen.admitted == Some(true);
    let mut current = view;
    // At most twice: a plan, and the plan of starting the attempt it recorded.
    loop {
        let next = plan.next;
        let written = match execute(ctx, &api, &pods, &current, plan).await {
            Ok(written) => written,
            Err(e) => {
                // A slot reserved for an attempt that was never recorded goes back.
                if admitted {
                    ctx.admission.lock().await.release(&task);
                }
                return Err(e);
            }
        };
        match next {
            Next::AwaitChange => return Ok(Action::await_change()),
            Next::After(d) => return Ok(Action::requeue(d)),
            Next::StartAttempt => {
                // Continue with the object just written (the cache may not have it yet), as it runs.
                let (task, status) = written;
                current = task.rendered().into_owned();
                // Recorded: the slot is held by the Scheduled phase from now on.
                admitted = false;
                plan = start::attempt(ctx, &pods, &current, status, now).await?;
                if plan.next == Next::StartAttempt {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
            }
        }
    }
}

/// Looks up what the lifecycle asked for.
async fn learn(
    ctx: &Context,
    task: &Task,
    pods: &Api<Pod>,
    fact: Fact,
    seen: &mut Seen,
    now: Timestamp,
) -> Result<(), Error> {
    let status = task.status.clone().unwrap_or_default();
    match fact {
        Fact::Template => seen.template = Some(template::render(ctx, task).await?),
        Fact::Pod => {
            let pod = pods.get_opt(&status.pod_name).await?.filter(|p| pod::is_ours(task, p));
            seen.pod = Some(pod.as_ref().map(ObservedPod::of));
        }
        Fact::Credentials => {
            let ns = task.namespace().unwrap_or_default();
            seen.credentials = Some(credentials::resolve(ctx, task, &ns).await?.map(|_| ()));
        }
        Fact::Queue => {
            // From the watched queues once they are listed; a GET while they are not (yet: a
            // reconcile must not wait on the list for good, it holds one of the bounded slots) or
            // while the operator stops.
            let listed = tokio::time::timeout(QUEUES_LISTED_WITHIN, ctx.queues.wait_until_ready()).await;
            let spec = match listed {
                Ok(Ok(())) => ctx.queue_spec(task.queue()),
                _ => {
                    let queues: Api<TaskQueue> = Api::all(ctx.client.clone());
                    queues.get_opt(task.queue()).await?.map(|q| q.spec)
                }
            };
            seen.queue = Some(spec);
        }
        Fact::Admission => {
            let spec = seen.queue.clone().flatten().unwrap_or_default();
            // An unlimited queue admits without a look at every Task.
            let admitted = spec.concurrency <= 0
                || ctx.admission.lock().await.try_admit(task, &ctx.store.state(), &spec, &rfc3339(now));
            seen.admitted = Some(admitted);
        }
        Fact::RecordedPod => {
            seen.recorded_pod = Some(credentials::recorded_pod(ctx, task, status.attempt).await?);
        }
    }
    Ok(())
}

/// Executes a plan's effects in order; returns the Task as last written and the plan's status.
async fn execute(
    ctx: &Context,
    api: &Api<Task>,
    pods: &Api<Pod>,
    task: &Task,
    plan: Plan,
) -> Result<(Task, TaskStatus), Error> {
    let mut current = task.clone();
    for effect in plan.effects {
        match effect {
            Effect::StopPod(name) => {
                // With the configured grace, so the worker can stop the command and revoke.
                let grace = u32::try_from(ctx.config.termination_grace.as_secs()).unwrap_or(30);
                match pods.delete(&name, &DeleteParams::default().grace_period(grace)).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Effect::Event(note) => ctx.event(task, note).await,
            Effect::WriteStatus => current = write_status(ctx, api, &current, plan.status.clone()).await?,
            Effect::ExpectPod(uid) => {
                let attempt = plan.status.attempt;
                ctx.expect_pod(task, attempt, uid);
            }
            Effect::ReleaseSlot => ctx.admission.lock().await.release(task),
            Effect::RevokeEnded { announce } => {
                let revoked = credentials::revoke_ended(ctx, task).await?;
                if announce && revoked > 0 {
                    let msg = format!("Vault tokens of {revoked} attempt(s) revoked");
                    ctx.event(task, Note { warning: false, reason: Reason::CredentialsRevoked, message: msg }).await;
                }
            }
            Effect::DeleteTask => match api.delete(&task.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
            Effect::Metric(m) => record(ctx, m),
        }
    }
    Ok((current, plan.status))
}

fn record(ctx: &Context, metric: Metric) {
    let m = &ctx.metrics;
    match metric {
        Metric::UnwrapFailure => {
            m.unwrap_failures.inc();
        }
        Metric::VaultError => {
            m.vault_errors.inc();
        }
        Metric::PodCreatedLatency(d) => m.pod_created_latency.observe(d),
        Metric::StartLatency(d) => m.start_latency.observe(d),
    }
}

/// Writes the status when it changed, guarded by the resourceVersion that was read (see
/// [`ephemera_lifecycle::status::for_write`] for what is kept of the stored status).
async fn write_status(ctx: &Context, api: &Api<Task>, task: &Task, status: TaskStatus) -> Result<Task, Error> {
    // This replica's ring size (a process may run several operators, as the tests do).
    let Some(status) = for_write(task.status.as_ref(), status, Timestamp::now(), ctx.config.event_ring) else {
        return Ok(task.clone());
    };
    let mut next = task.clone();
    next.status = Some(status);
    match api.replace_status(&task.name_any(), &PostParams::default(), &next).await {
        Ok(t) => Ok(t),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::StatusConflict(kube::Error::Api(e))),
        Err(e) => Err(e.into()),
    }
}
