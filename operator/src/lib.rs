//! The Ephemera operator: a kube-runtime controller that turns each `Task` into one hardened worker
//! Pod per attempt, respecting queues (`TaskQueue` concurrency), priority, deadlines, retries and
//! cancellation, and projects each Pod's fate back into the Task's status; and a second controller
//! makes the Tasks of `TaskSchedule`s ([`schedules`]). Only the Lease holder acts.

pub mod attempt_record;
pub mod config;
pub mod handoff;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod schedules;
mod serve;
pub mod vault;

use std::sync::Arc;

use ephemera_crds::{Task, TaskQueue};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

pub use config::{Config, ProgressConfig};
pub use reconcile::Context;

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Leader election failed in a way that cannot be retried.
    #[error("leader election: {0}")]
    Leader(#[from] kube::Error),
    /// The Vault client could not be built.
    #[error("vault: {0}")]
    Vault(#[from] vault::VaultError),
    /// The metrics/health or hand-off listener could not start.
    #[error("listener on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Keeps each TaskQueue's `status.running`/`status.pending` and the metrics gauges current (from the
/// controller's cache).
async fn queue_status_loop(queues: Api<TaskQueue>, ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tick.tick().await;
        let counts = ctx.refresh_gauges();
        let Ok(list) = queues.list(&Default::default()).await else { continue };
        for q in list.items {
            let name = q.metadata.name.clone().unwrap_or_default();
            let (pending, running) = counts.get(&name).copied().unwrap_or_default();
            let status = ephemera_crds::TaskQueueStatus {
                pending: i32::try_from(pending).unwrap_or(i32::MAX),
                running: i32::try_from(running).unwrap_or(i32::MAX),
            };
            if q.status.as_ref() != Some(&status) {
                let patch = serde_json::json!({"status": status});
                let pp = kube::api::PatchParams::default();
                if let Err(e) = queues.patch_status(&name, &pp, &kube::api::Patch::Merge(&patch)).await {
                    tracing::debug!(error = %e, queue = %name, "queue status not updated");
                }
            }
        }
    }
}

/// What the Task cache drops of each Task: the server-side apply bookkeeping and the copy of the
/// whole manifest `kubectl apply` keeps in an annotation, which no decision reads. Status writes
/// send the cached object to `/status`, where the API server takes only `status` from it; the
/// finalizer is changed by a patch.
fn trim_for_cache(task: &mut Task) {
    task.metadata.managed_fields = None;
    if let Some(a) = task.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            task.metadata.annotations = None;
        }
    }
}

/// Where client-side `kubectl apply` keeps the last manifest it applied (as large as the Task).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Creates the `default` TaskQueue if an admin has not (Tasks name it unless they say otherwise).
async fn ensure_default_queue(client: &Client, config: &Config) {
    let queues: Api<TaskQueue> = Api::all(client.clone());
    if let Ok(None) = queues.get_opt("default").await {
        let q = TaskQueue::new(
            "default",
            ephemera_crds::TaskQueueSpec { concurrency: config.default_queue_concurrency, ..Default::default() },
        );
        if let Err(e) = queues.create(&kube::api::PostParams::default(), &q).await {
            tracing::warn!(error = %e, "could not create the default TaskQueue");
        }
    }
}

/// Runs the operator until `shutdown` resolves or leadership is lost (then it returns, so the
/// process restarts and competes again).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(metrics::Metrics::default());
    if let Some(addr) = config.metrics_addr {
        serve::spawn(addr, metrics.clone()).await.map_err(|source| RunError::Listen { addr, source })?;
    }
    // Every replica serves the hand-off: a standby one too (the attempt records are the shared state).
    if let Some(addr) = config.handoff_addr {
        handoff::spawn(addr, client.clone(), &config.namespace, metrics.clone())
            .await
            .map_err(|source| RunError::Listen { addr, source })?;
    }
    let lease = leader::Lease::new(client.clone(), &config);
    lease.acquire().await?;
    tracing::info!(identity = %config.identity, "became leader");
    metrics.set_leader(true);

    let tasks: Api<Task> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let queues: Api<TaskQueue> = Api::all(client.clone());
    let queues_api = queues.clone();
    ensure_default_queue(&client, &config).await;
    // The cache keeps Tasks without what the API server tracks of who wrote which field (most of
    // a cached Task's size); a status write sends no managedFields, so the server keeps its own.
    let (store, writer) = reflector::store();
    let cached =
        reflector::reflector(writer, watcher(tasks.clone(), watcher::Config::default()).modify(trim_for_cache));
    let controller = Controller::for_stream(cached.applied_objects(), store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.max_concurrent_reconciles.max(1)));
    let (schedules_stop_tx, schedules_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let schedule_controller = schedules::run(client.clone(), config.identity.clone(), metrics.clone(), async move {
        let _ = schedules_stop_rx.await;
    });
    let (queue_cache, queue_writer) = reflector::store();
    let queue_events =
        reflector::reflector(queue_writer, watcher(queues, watcher::Config::default())).touched_objects();
    let ctx = Arc::new(Context::new(client, config, metrics.clone(), store.clone(), queue_cache)?);
    let queue_store = store.clone();
    let waiting_store = store.clone();
    let waiting_ctx = ctx.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = controller
        .owns(pods, watcher::Config::default().labels(names::MANAGED_BY_SELECTOR))
        .watches_stream(queue_events, move |q: TaskQueue| {
            let name = q.metadata.name.unwrap_or_default();
            // Only waiting Tasks can be affected by a queue change.
            queue_store
                .state()
                .into_iter()
                .filter(|t| {
                    t.queue() == name
                        && t.status.as_ref().map(|s| s.phase).unwrap_or_default() == ephemera_crds::TaskPhase::Pending
                })
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        })
        // A Task that stops holding a slot (finished, backing off, deleted) wakes its queue's waiters.
        .watches(tasks, watcher::Config::default(), move |t: Task| {
            // Also when its queue refused it: it may have been ranked ahead of the others.
            let changes_order = reconcile::schedule::Admission::frees_slot(&t) || reconcile::schedule::refused(&t);
            if !changes_order && t.metadata.deletion_timestamp.is_none() {
                return Vec::new();
            }
            // The head of the queue is enough: each freed slot wakes it again, and waiting Tasks
            // also look again on their own every minute.
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let spec = waiting_ctx.queue_spec(t.queue());
            reconcile::schedule::Admission::waiting_in(&waiting_store.state(), t.queue(), spec.as_ref(), &now, 16)
        })
        .graceful_shutdown_on(async move {
            let _ = stop_rx.await;
        })
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile error");
            }
        });
    tokio::pin!(controller);
    tokio::pin!(schedule_controller);
    let queue_status = queue_status_loop(queues_api, ctx.clone());
    // Renewal runs in this same task: whatever stops the operator also stops its claim.
    tokio::select! {
        _ = &mut controller => return Ok(()),
        _ = &mut schedule_controller => return Ok(()),
        _ = lease.hold() => {
            // Not the leader any more: stop acting at once.
            tracing::warn!("lost leadership; stopping");
            metrics.set_leader(false);
            return Ok(());
        }
        _ = queue_status => return Ok(()),
        _ = shutdown => tracing::info!("shutting down"),
    }
    let _ = stop_tx.send(());
    let _ = schedules_stop_tx.send(());
    // Keep the claim while in-flight reconciles drain, then hand the Lease over.
    tokio::select! {
        _ = async { tokio::join!(&mut controller, &mut schedule_controller) } => {}
        _ = lease.hold() => tracing::warn!("lost leadership while draining"),
    }
    lease.release().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_drops_what_kubectl_and_server_side_apply_keep_and_nothing_a_decision_reads() {
        let mut t: Task = serde_json::from_value(serde_json::json!({
            "apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": "t", "namespace": "ns", "labels": {"team": "a"},
                "annotations": {LAST_APPLIED: "{\"big\": true}", "team.example/owner": "me"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"command": ["true"]},
            "status": {"phase": "Running", "attempt": 1},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let before = (t.spec.clone(), t.status.clone(), t.metadata.labels.clone());
        trim_for_cache(&mut t);
        assert_eq!(t.metadata.managed_fields, None);
        assert_eq!(t.metadata.annotations, Some([("team.example/owner".to_string(), "me".to_string())].into()));
        assert_eq!((t.spec.clone(), t.status.clone(), t.metadata.labels.clone()), before);
        t.metadata.annotations = Some([(LAST_APPLIED.to_string(), String::new())].into());
        trim_for_cache(&mut t);
        assert_eq!(t.metadata.annotations, None, "no empty map left behind");
    }
}
