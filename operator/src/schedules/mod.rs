//! The TaskSchedule controller: for each schedule it gathers the schedule's Tasks, asks the pure
//! [`ephemera_schedules::decide`] what to do now, and does it in the order that keeps runs exact:
//! cancel (Replace), create each due run's Task (named by its slot, so a second create finds the
//! first), then write the status (`lastScheduleTime` only once the Tasks exist), then prune the
//! history and record Events. It looks again when the next run is due, or when one of its Tasks
//! changes in a way the decision reads ([`trigger`]). It decides from its cache of schedule Tasks,
//! and decides again from the schedule and its Tasks as the API has them before it makes, cancels
//! or skips a run: a run made a moment ago, or a status written a moment ago, may not be in the
//! caches yet, and Forbid and Replace must see it.

mod trigger;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_crds::schedule::TaskSchedule;
use ephemera_crds::{Origin, Task};
use ephemera_schedules::{decide, Member, Plan, Run, Seen};
use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;

use crate::metrics::Metrics;

/// The label every Task of a schedule carries: the schedule's name.
pub const SCHEDULE_LABEL: &str = "ephemera.dev/schedule";
/// The annotation holding a scheduled Task's slot (RFC 3339).
pub const SLOT_ANNOTATION: &str = "ephemera.dev/scheduled-time";
/// How long a reconcile waits for the first list of schedule Tasks before it fails (and is retried).
const CACHE_WAIT: Duration = Duration::from_secs(30);
/// `spec.origin.source` of a schedule's Tasks.
const ORIGIN_SOURCE: &str = "schedule";

/// Why a schedule reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The schedule has no name, namespace or creation time (not from the API).
    #[error("the TaskSchedule is not a stored object")]
    NotStored,
    /// The schedule Tasks were not listed yet (the list keeps failing) or their watch ended.
    #[error("the schedule Tasks are not listed yet")]
    NoCache,
}

/// What every schedule reconcile shares.
pub struct Context {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    /// Every Task that carries the schedule label, as the watch last saw it.
    tasks: Store<Task>,
    /// True once `tasks` was filled by a first list. Not `Store::wait_until_ready`: its one-shot
    /// channel wakes only the last of several reconciles waiting together, the others hang.
    filled: tokio::sync::watch::Receiver<bool>,
}

/// Runs the controller until `stop` resolves (then in-flight reconciles finish).
pub async fn run(
    client: Client,
    identity: String,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let schedules: Api<TaskSchedule> = Api::all(client.clone());
    let tasks: Api<Task> = Api::all(client.clone());
    let recorder =
        Recorder::new(client.clone(), Reporter { controller: "ephemera-operator".into(), instance: Some(identity) });
    let (store, writer) = reflector::store();
    let (filled_tx, filled) = tokio::sync::watch::channel(false);
    let mut changes = trigger::Changes::default();
    // A finished Task of the schedule may free a Forbid slot and changes the outcome and history.
    let wakes = watcher(tasks, watcher::Config::default().labels(SCHEDULE_LABEL))
        .default_backoff()
        // What the API server tracks of who wrote which field is most of a cached Task's size.
        .modify(|t: &mut Task| t.managed_fields_mut().clear())
        .reflect(writer)
        .filter_map(move |event| {
            // The store took the event first: at the first InitDone it holds every schedule Task.
            if matches!(event, Ok(watcher::Event::InitDone)) {
                filled_tx.send_replace(true);
            }
            std::future::ready(event.map(|e| changes.wake(e)).transpose())
        });
    let ctx = Arc::new(Context { client, recorder, metrics, tasks: store, filled });
    // A schedule's own status writes (one or more per run) do not wake it: only spec changes
    // do. Its reconciles still read the schedule, status included, from the store.
    let (schedule_store, schedule_writer) = reflector::store();
    let edits = watcher(schedules, watcher::Config::default())
        .default_backoff()
        .reflect(schedule_writer)
        .applied_objects()
        .predicate_filter(kube::runtime::predicates::generation, Default::default());
    Controller::for_stream(edits, schedule_store)
        .owns_stream(wakes)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "schedule reconcile error");
            }
        })
        .await;
}

fn error_policy(_s: Arc<TaskSchedule>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "schedule reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(schedule: Arc<TaskSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let (ns, name) = (schedule.namespace().unwrap_or_default(), schedule.name_any());
    let span = tracing::info_span!("reconcile_schedule", schedule = %name, namespace = %ns);
    let result = apply(&schedule, &ctx, &ns, &name).instrument(span).await;
    ctx.metrics.schedule_reconcile.observe(started.elapsed());
    result
}

/// The Task was made by this schedule: it is controlled by the schedule's uid and attributed to it.
/// A namespace member can set labels and owner references, but only the operator may write a
/// `schedule:` origin (the admission policy), so a planted Task never counts as a run.
fn made_by(schedule: &TaskSchedule, uid: &str, t: &Task) -> bool {
    let requester = format!("schedule:{}/{}", schedule.namespace().unwrap_or_default(), schedule.name_any());
    t.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true))
        && t.spec.origin.as_ref().is_some_and(|o| o.source == ORIGIN_SOURCE && o.requester == requester)
}

/// A Task of the schedule as the decision reads it.
fn member(t: &Task) -> Member {
    // Borrowed: this runs for every cached Task of the schedule on each reconcile.
    let st = t.status.as_ref();
    let slot = t.annotations().get(SLOT_ANNOTATION).and_then(|s| s.parse().ok());
    Member {
        name: t.name_any(),
        slot,
        phase: st.map(|st| st.phase).unwrap_or_default(),
        finished: st.and_then(|st| st.completion_time.as_deref()).and_then(|s| s.parse().ok()),
        cancelling: t.spec.cancel,
    }
}

async fn apply(schedule: &TaskSchedule, ctx: &Context, ns: &str, name: &str) -> Result<Action, Error> {
    let uid = schedule.uid().ok_or(Error::NotStored)?;
    // A decision from a cache not yet filled would write an empty status before the Tasks are
    // listed; a list that keeps failing (RBAC) must not hold reconciles, or shutdown, for good.
    let mut filled = ctx.filled.clone();
    if !tokio::time::timeout(CACHE_WAIT, filled.wait_for(|f| *f)).await.is_ok_and(|r| r.is_ok()) {
        return Err(Error::NoCache);
    }
    let tasks: Api<Task> = Api::namespaced(ctx.client.clone(), ns);
    let cached: Vec<Member> = ctx
        .tasks
        .state()
        .iter()
        .filter(|t| t.namespace().as_deref() == Some(ns) && made_by(schedule, &uid, t))
        .map(|t| member(t))
        .collect();
    let plan = decide_for(schedule, &cached)?;
    if !touches_runs(&plan, schedule) {
        return execute(schedule, ctx, &tasks, plan).await;
    }
    // From the API, not the caches: a run made a moment ago must count as active for Forbid, be
    // cancelled by Replace, and keep its slot from being made or counted skipped again; and the
    // schedule's own status (its last slot, what it skipped) may be newer than the cache's.
    let schedules: Api<TaskSchedule> = Api::namespaced(ctx.client.clone(), ns);
    let Some(fresh) = schedules.get_opt(name).await?.filter(|f| f.uid().as_deref() == Some(uid.as_str())) else {
        return Ok(Action::await_change());
    };
    let selector = format!("{SCHEDULE_LABEL}={name}");
    let listed = tasks.list(&ListParams::default().labels(&selector)).await?;
    let owned: Vec<Member> = listed.items.iter().filter(|t| made_by(&fresh, &uid, t)).map(member).collect();
    let plan = decide_for(&fresh, &owned)?;
    execute(&fresh, ctx, &tasks, plan).await
}

/// What the schedule should do now, given its Tasks.
fn decide_for(schedule: &TaskSchedule, members: &[Member]) -> Result<Plan, Error> {
    let created = schedule.metadata.creation_timestamp.as_ref().map(|t| t.0).ok_or(Error::NotStored)?;
    let status = schedule.status.clone().unwrap_or_default();
    let seen = Seen {
        name: &schedule.name_any(),
        created,
        generation: schedule.metadata.generation,
        spec: &schedule.spec,
        status: &status,
        tasks: members,
    };
    Ok(decide(&seen, Timestamp::now()))
}

/// The plan makes, cancels or skips a run: what only a fresh list of the schedule's Tasks may decide.
fn touches_runs(plan: &Plan, schedule: &TaskSchedule) -> bool {
    let skipped = schedule.status.as_ref().map_or(0, |s| s.skipped);
    !plan.create.is_empty() || !plan.cancel.is_empty() || plan.status.skipped != skipped
}

async fn execute(schedule: &TaskSchedule, ctx: &Context, tasks: &Api<Task>, mut plan: Plan) -> Result<Action, Error> {
    let uid = schedule.uid().ok_or(Error::NotStored)?;
    let stored = schedule.status.clone().unwrap_or_default();
    for name in &plan.cancel {
        let cancel = serde_json::json!({"spec": {"cancel": true}});
        match tasks.patch(name, &PatchParams::default(), &Patch::Merge(&cancel)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for run in &plan.create {
        let task = scheduled_task(schedule, run);
        match tasks.create(&PostParams::default(), &task).await {
            Ok(_) => {
                ctx.metrics.schedule_runs.inc();
                plan.notes.push(run.created());
            }
            // Made before a crash or by the previous leader: the same run, not a second one.
            // Anyone else's Task of that name (a squatter) is not: the run is skipped, loudly.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                if !tasks.get_opt(&run.name).await?.is_some_and(|t| made_by(schedule, &uid, &t)) {
                    plan.status.skipped += 1;
                    plan.notes.push(run.name_taken());
                }
            }
            // Invalid as the schedule gives it (labels, a policy): retrying cannot help, and an
            // error retried every 2 s would say nothing to the schedule's owner.
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
                plan.status.skipped += 1;
                plan.notes.push(run.refused(&e.message));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let skipped = plan.status.skipped.saturating_sub(stored.skipped);
    if plan.status != stored {
        let mut next = schedule.clone();
        next.status = Some(plan.status.clone());
        let api: Api<TaskSchedule> = Api::namespaced(ctx.client.clone(), &schedule.namespace().unwrap_or_default());
        // Guarded by the resourceVersion read: a schedule edited meanwhile is decided again.
        api.replace_status(&schedule.name_any(), &PostParams::default(), &next).await?;
    }
    ctx.metrics.schedule_skipped.inc_by(u64::try_from(skipped).unwrap_or(0));
    for name in &plan.delete {
        match tasks.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for note in plan.notes {
        let type_ = if note.warning { EventType::Warning } else { EventType::Normal };
        let reason = note.reason.as_str().to_string();
        let ev = KubeEvent { type_, reason: reason.clone(), note: Some(note.message), action: reason, secondary: None };
        if let Err(e) = ctx.recorder.publish(&ev, &schedule.object_ref(&())).await {
            tracing::debug!(error = %e, "could not record event");
        }
    }
    Ok(match plan.after {
        // A little after the slot: the next decision must see it as due.
        Some(after) => Action::requeue(after + Duration::from_millis(20)),
        None => Action::await_change(),
    })
}

/// The Task of one run: the schedule's Task spec and labels, named and annotated by its slot, owned
/// by the schedule (deleted with it), and attributed to it.
pub fn scheduled_task(schedule: &TaskSchedule, run: &Run) -> Task {
    let (ns, name) = (schedule.namespace().unwrap_or_default(), schedule.name_any());
    let mut spec = schedule.spec.task.spec.clone();
    spec.cancel = false;
    spec.origin = Some(Box::new(Origin {
        source: ORIGIN_SOURCE.into(),
        requester: format!("schedule:{ns}/{name}"),
        ..Default::default()
    }));
    let mut task = Task::new_in(&run.name, &ns, spec);
    let mut labels: BTreeMap<String, String> = schedule.spec.task.labels.clone();
    labels.insert(SCHEDULE_LABEL.into(), name);
    task.metadata.labels = Some(labels);
    task.metadata.annotations = Some([(SLOT_ANNOTATION.to_string(), run.slot.to_string())].into());
    task.metadata.owner_references = schedule.controller_owner_ref(&()).map(|o| vec![o]);
    task
}
