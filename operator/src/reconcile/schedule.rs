//! Queue admission: which pending Tasks may start now. Within a queue, higher priority first, then
//! older first (then name, for a total order); at most `concurrency` Tasks hold a Pod at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ephemera_crds::{Task, TaskPhase, TaskQueueSpec};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

/// Stable identity of a Task in the scheduler.
pub type Key = ObjectRef<Task>;

fn phase(t: &Task) -> TaskPhase {
    t.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// Whether the Task holds (or is about to hold) a Pod.
pub fn holds_slot(t: &Task) -> bool {
    matches!(phase(t), TaskPhase::Scheduled | TaskPhase::Running)
}

/// Whether the Task's queue refused it (unknown queue, forbidden namespace).
pub fn refused(t: &Task) -> bool {
    t.status
        .as_ref()
        .is_some_and(|s| ephemera_lifecycle::status::is_false(s, ephemera_crds::ConditionType::QueueAccepted))
}

/// Waiting for a slot, not in retry back-off, not cancelled, not refused (a Task its queue refused
/// must not hold up the others), and rendered if templated (until then its queue is not known).
fn eligible(t: &Task, now: &str) -> bool {
    phase(t) == TaskPhase::Pending
        && !refused(t)
        && !t.awaits_rendering()
        && !t.spec.cancel
        && t.metadata.deletion_timestamp.is_none()
        && t.status.as_ref().and_then(|s| s.next_attempt_time.as_deref()).is_none_or(|at| at <= now)
}

/// Admission order: the priority the queue allows (capped per namespace), then age, then name.
fn order_key(t: &Task, queue: Option<&TaskQueueSpec>) -> (i32, String, String) {
    let created = t.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()).unwrap_or_default();
    let ns = t.namespace().unwrap_or_default();
    let priority = queue.map_or(t.priority(), |q| q.effective_priority(&ns, t.priority()));
    (-priority, created, format!("{ns}/{}", t.name_any()))
}

/// Admission state of every queue, kept while the controller's cache catches up with our writes.
#[derive(Default)]
pub struct Admission {
    /// Tasks admitted by this replica that the cache may not show as holding a slot yet.
    reserved: HashMap<String, HashSet<Key>>,
}

impl Admission {
    /// Decides whether `task` may start now in its queue (`queue.concurrency`, 0 = unlimited; ranked
    /// by capped priority); if so, reserves its slot. `all` is the controller's view of every Task.
    pub fn try_admit(&mut self, task: &Task, all: &[Arc<Task>], queue_spec: &TaskQueueSpec, now: &str) -> bool {
        let concurrency = queue_spec.concurrency;
        if concurrency <= 0 {
            // Unlimited: nothing to count, so no pass over the queue's Tasks (it made every
            // admission O(Tasks)) and no reservation to keep.
            return true;
        }
        let queue = task.queue().to_string();
        let key = ObjectRef::from_obj(task);
        let in_queue: Vec<&Arc<Task>> = all.iter().filter(|t| t.queue() == queue).collect();
        let phases: HashMap<Key, TaskPhase> = in_queue.iter().map(|t| (ObjectRef::from_obj(&***t), phase(t))).collect();
        let reserved = self.reserved.entry(queue).or_default();
        // A reservation ends once the cache shows the Task past Pending.
        reserved.retain(|k| phases.get(k) == Some(&TaskPhase::Pending));
        let mut holders: HashSet<Key> =
            in_queue.iter().filter(|t| holds_slot(t)).map(|t| ObjectRef::from_obj(&***t)).collect();
        holders.extend(reserved.iter().cloned());
        let free = (concurrency as usize).saturating_sub(holders.len());
        let mut waiting: Vec<&Arc<Task>> = in_queue
            .into_iter()
            .filter(|t| eligible(t, now) && !holders.contains(&ObjectRef::from_obj(&***t)))
            .collect();
        waiting.sort_by_key(|t| order_key(t, Some(queue_spec)));
        let rank = waiting.iter().position(|t| ObjectRef::from_obj(&***t) == key);
        let admit = rank.is_some_and(|r| r < free);
        if admit {
            reserved.insert(key);
        }
        admit
    }

    /// Forgets a Task (it finished or was deleted).
    pub fn release(&mut self, task: &Task) {
        let key = ObjectRef::from_obj(task);
        for set in self.reserved.values_mut() {
            set.remove(&key);
        }
    }

    /// The first `limit` pending Tasks of a queue in admission order (to wake them when a slot frees).
    pub fn waiting_in(
        all: &[Arc<Task>],
        queue: &str,
        spec: Option<&TaskQueueSpec>,
        now: &str,
        limit: usize,
    ) -> Vec<Key> {
        let mut waiting: Vec<&Arc<Task>> = all.iter().filter(|t| t.queue() == queue && eligible(t, now)).collect();
        waiting.sort_by_key(|t| order_key(t, spec));
        waiting.into_iter().take(limit).map(|t| ObjectRef::from_obj(&**t)).collect()
    }

    /// Whether a change to this Task can have freed a slot (it finished or left one to back off).
    pub fn frees_slot(t: &Task) -> bool {
        let attempted = t.status.as_ref().is_some_and(|s| s.attempt > 0);
        phase(t).is_terminal() || (attempted && !holds_slot(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::{TaskSpec, TaskStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn task(name: &str, priority: i32, created: i64, phase: TaskPhase) -> Arc<Task> {
        let spec: TaskSpec =
            serde_json::from_value(serde_json::json!({"command": ["true"], "priority": priority})).unwrap();
        let mut t = Task::new(name, spec);
        t.metadata.namespace = Some("ns".into());
        t.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::from_second(created).unwrap()));
        t.status = Some(TaskStatus { phase, ..Default::default() });
        Arc::new(t)
    }

    #[test]
    fn priority_then_age_under_a_limit() {
        let all = vec![
            task("old-low", 0, 1, TaskPhase::Pending),
            task("new-high", 5, 2, TaskPhase::Pending),
            task("mid", 5, 3, TaskPhase::Pending),
        ];
        let mut a = Admission::default();
        let now = "9999";
        assert!(!a.try_admit(&all[0], &all, &limit(1), now), "a higher-priority task is waiting");
        assert!(a.try_admit(&all[1], &all, &limit(1), now), "highest priority, oldest first");
        assert!(!a.try_admit(&all[2], &all, &limit(1), now), "the slot is reserved");
        let order: Vec<String> =
            Admission::waiting_in(&all, "default", None, now, 10).iter().map(|k| k.name.clone()).collect();
        assert_eq!(order, vec!["new-high", "mid", "old-low"]);
    }

    fn limit(concurrency: i32) -> TaskQueueSpec {
        TaskQueueSpec { concurrency, ..Default::default() }
    }

    #[test]
    fn a_capped_queue_ranks_an_inflated_priority_no_higher_than_its_cap() {
        // Someone sets priority 1000 in a shared queue capped at 10: the older Task at 10 goes first.
        let all = vec![task("honest", 10, 1, TaskPhase::Pending), task("pushy", 1000, 2, TaskPhase::Pending)];
        let capped = TaskQueueSpec { concurrency: 1, max_priority: Some(10), ..Default::default() };
        let mut a = Admission::default();
        assert!(!a.try_admit(&all[1], &all, &capped, "9999"), "the inflated priority does not jump the queue");
        assert!(a.try_admit(&all[0], &all, &capped, "9999"));
        let order: Vec<String> =
            Admission::waiting_in(&all, "default", Some(&capped), "9999", 10).iter().map(|k| k.name.clone()).collect();
        assert_eq!(order, vec!["honest", "pushy"]);
        let mut uncapped = Admission::default();
        assert!(uncapped.try_admit(&all[1], &all, &limit(1), "9999"), "without a cap it would have");
    }

    #[test]
    fn running_tasks_hold_their_slots() {
        let all = vec![task("a", 0, 1, TaskPhase::Running), task("b", 0, 2, TaskPhase::Pending)];
        let mut a = Admission::default();
        assert!(!a.try_admit(&all[1], &all, &limit(1), "9999"));
        assert!(a.try_admit(&all[1], &all, &limit(2), "9999"));
        assert!(a.try_admit(&all[1], &all, &limit(0), "9999"), "0 means unlimited");
    }
}
