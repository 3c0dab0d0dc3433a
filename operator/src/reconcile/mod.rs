//! Reconciling one Task. What should happen next is decided by the kube-free lifecycle
//! ([`ephemera_lifecycle::decide`]); this module gathers the facts it asks for and carries out its
//! plans ([`execute`]), starts attempts ([`start`]) and cleans up on deletion ([`cleanup`]). Status is
//! written (with the read resourceVersion) before each Pod is created, and Pod names are
//! deterministic, so a restarted operator never creates a second Pod for an attempt and never loses a
//! transition.

mod cleanup;
pub mod credentials;
mod execute;
pub mod pod;
pub mod schedule;
mod start;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_crds::{Reason, Task, TaskPhase};
use ephemera_lifecycle::Note;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;

use self::schedule::Admission;
use crate::metrics::Metrics;
use crate::Config;

/// Finalizer that makes deletion wait for clean-up.
pub const FINALIZER: &str = ephemera_crds::CLEANUP_FINALIZER;
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
    /// The Task's status changed since it was read (409): another writer (the progress intake) won.
    #[error("the Task's status changed since it was read: {0}")]
    StatusConflict(#[source] kube::Error),
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
    /// Every TaskQueue, as watched (admission reads them here, not with a GET per Task).
    queues: Store<ephemera_crds::TaskQueue>,
    /// Pods created whose uid no status write carries yet, by Task uid: (attempt, Pod uid).
    expected: std::sync::Mutex<std::collections::HashMap<String, (i32, String)>>,
}

impl Context {
    /// A context over the controller's Task cache.
    pub fn new(
        client: Client,
        config: Config,
        metrics: Arc<Metrics>,
        store: Store<Task>,
        queues: Store<ephemera_crds::TaskQueue>,
    ) -> Result<Self, crate::vault::VaultError> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter { controller: FIELD_MANAGER.into(), instance: Some(config.identity.clone()) },
        );
        let issuer = config.vault.clone().map(crate::vault::Issuer::new).transpose()?;
        let admission = tokio::sync::Mutex::new(Admission::default());
        let expected = Default::default();
        Ok(Self { client, config, metrics, store, admission, recorder, issuer, queues, expected })
    }

    /// A queue's spec as last seen (None: no such queue, or the cache is still filling).
    pub fn queue_spec(&self, name: &str) -> Option<ephemera_crds::TaskQueueSpec> {
        self.queues.get(&ObjectRef::new(name)).map(|q| q.spec.clone())
    }

    /// Recomputes the per-phase and per-queue gauges from the cache (called periodically).
    /// Returns (pending, running) per queue, which the TaskQueue status loop also publishes.
    pub fn refresh_gauges(&self) -> BTreeMap<String, (u64, u64)> {
        let mut phases: BTreeMap<String, u64> = BTreeMap::new();
        let mut queues: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for t in self.store.state() {
            let phase = t.status.as_ref().map(|s| s.phase).unwrap_or_default();
            *phases.entry(phase.as_str().to_string()).or_default() += 1;
            let q = queues.entry(t.queue().to_string()).or_default();
            match phase {
                TaskPhase::Pending => q.0 += 1,
                TaskPhase::Scheduled | TaskPhase::Running => q.1 += 1,
                _ => {}
            }
        }
        self.metrics.set_snapshot(phases, queues.clone());
        queues
    }

    /// Remembers that this attempt's Pod was created with `pod_uid` (see `Effect::ExpectPod`).
    fn expect_pod(&self, task: &Task, attempt: i32, pod_uid: String) {
        if let (Ok(mut e), Some(uid)) = (self.expected.lock(), task.meta().uid.clone()) {
            e.insert(uid, (attempt, pod_uid));
        }
    }

    /// Fills in the uid of the attempt's Pod when this replica created it and no write carries it
    /// yet; forgets the expectation once the status carries a uid or has moved on to another attempt.
    fn fill_expected_pod(&self, task: &mut Task) {
        let (Ok(mut e), Some(uid)) = (self.expected.lock(), task.meta().uid.clone()) else { return };
        let Some((attempt, pod_uid)) = e.get(&uid).cloned() else { return };
        match task.status.as_mut() {
            Some(s) if s.attempt == attempt && s.pod_uid.is_empty() => s.pod_uid = pod_uid,
            _ => {
                e.remove(&uid);
            }
        }
    }

    /// Forgets what was expected of a Task that is going away.
    fn forget(&self, task: &Task) {
        if let (Ok(mut e), Some(uid)) = (self.expected.lock(), task.meta().uid.as_ref()) {
            e.remove(uid);
        }
    }

    /// Records a Kubernetes Event on the Task (best effort: an Event is never worth a failed reconcile).
    /// The Normal ones that only retell a phase change only when the admin asked for them.
    async fn event(&self, task: &Task, note: Note) {
        let retells_phase = matches!(note.reason, Reason::Scheduled | Reason::Running | Reason::Succeeded);
        if !note.warning && retells_phase && !self.config.normal_events {
            return;
        }
        let type_ = if note.warning { EventType::Warning } else { EventType::Normal };
        let reason = note.reason.as_str().to_string();
        let ev = KubeEvent { type_, reason: reason.clone(), note: Some(note.message), action: reason, secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &task.object_ref(&())).await {
            tracing::debug!(error = %e, "could not record event");
        }
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
            Event::Apply(t) => execute::apply(t, &ctx).await,
            Event::Cleanup(t) => cleanup::cleanup(t, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconcile.observe(started.elapsed());
    result
}

/// How soon a reconcile that lost a write race is retried: as soon as the cache has likely seen the
/// other write (watch latency), well before the general error back-off.
const AFTER_CONFLICT: Duration = Duration::from_millis(200);
/// How soon any other failed reconcile is retried.
const AFTER_ERROR: Duration = Duration::from_secs(2);

/// Failed reconciles are retried: at once when only a write raced another writer (the progress
/// intake appends to the same status), after a pause otherwise.
pub fn error_policy(_task: Arc<Task>, err: &Error, ctx: Arc<Context>) -> Action {
    if err.is_conflict() {
        ctx.metrics.reconcile_conflicts.inc();
        tracing::debug!(error = %err, "status write raced another writer; retrying from a fresh read");
        return Action::requeue(AFTER_CONFLICT);
    }
    ctx.metrics.reconcile_errors.inc();
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(AFTER_ERROR)
}

impl Error {
    /// Whether a status write lost a race: written under a resourceVersion that had moved on. Other
    /// 409s (an attempt record that exists, a Pod name taken) are ordinary errors.
    pub fn is_conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::StatusConflict(_) => true,
            Error::Finalizer(f) => matches!(f.as_ref(), F::ApplyFailed(e) | F::CleanupFailed(e) if e.is_conflict()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(serde_json::json!({"code": code})).unwrap()))
    }

    #[test]
    fn only_a_lost_status_write_race_counts_as_a_conflict_wherever_it_is_wrapped() {
        use kube::runtime::finalizer::Error as F;
        assert!(Error::StatusConflict(api(409)).is_conflict());
        assert!(!Error::Kube(api(409)).is_conflict(), "an attempt record or Pod name taken is an ordinary error");
        assert!(Error::Finalizer(Box::new(F::ApplyFailed(Error::StatusConflict(api(409))))).is_conflict());
        assert!(!Error::Finalizer(Box::new(F::AddFinalizer(api(409)))).is_conflict());
        assert!(!Error::Finalizer(Box::new(F::CleanupFailed(Error::Kube(api(403))))).is_conflict());
        assert!(!Error::Finalizer(Box::new(F::UnnamedObject)).is_conflict());
    }
}
