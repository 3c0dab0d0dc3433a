//! Which Task events wake a schedule. A Task's status is written many times in its life (attempts,
//! progress, conditions), but a schedule reads only its phase, completion time, cancel flag,
//! owners and origin; waking it for the rest was a reconcile (and an API list) per status write.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use ephemera_crds::Task;
use kube::runtime::watcher::Event;
use kube::ResourceExt;

/// Remembers, per Task uid, the part of the Task a schedule decides on, and passes an event only
/// when that part changed. Deletions always pass; a re-list passes everything once (events may
/// have been missed meanwhile) and forgets the Tasks it no longer holds.
#[derive(Default)]
pub struct Changes {
    seen: HashMap<String, u64>,
    relisted: HashMap<String, u64>,
}

impl Changes {
    /// The Task to wake its schedule with, if this event can change the schedule's decision.
    pub fn wake(&mut self, event: Event<Task>) -> Option<Task> {
        match event {
            Event::Apply(t) => {
                let key = t.uid()?;
                let state = decided_on(&t);
                (self.seen.insert(key, state) != Some(state)).then_some(t)
            }
            Event::Delete(t) => {
                if let Some(uid) = t.uid() {
                    self.seen.remove(&uid);
                }
                Some(t)
            }
            Event::Init => {
                self.relisted.clear();
                None
            }
            Event::InitApply(t) => {
                self.relisted.insert(t.uid()?, decided_on(&t));
                Some(t)
            }
            Event::InitDone => {
                self.seen = std::mem::take(&mut self.relisted);
                None
            }
        }
    }
}

/// A hash of what [`super::member`] and [`super::made_by`] read.
fn decided_on(t: &Task) -> u64 {
    let mut h = DefaultHasher::new();
    let status = t.status.as_ref();
    status.map(|s| s.phase).hash(&mut h);
    status.and_then(|s| s.completion_time.as_deref()).hash(&mut h);
    t.spec.cancel.hash(&mut h);
    t.metadata.deletion_timestamp.is_some().hash(&mut h);
    t.annotations().get(super::SLOT_ANNOTATION).hash(&mut h);
    t.labels().get(super::SCHEDULE_LABEL).hash(&mut h);
    for o in t.owner_references() {
        (&o.uid, o.controller).hash(&mut h);
    }
    t.spec.origin.as_ref().map(|o| (&o.source, &o.requester)).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::{TaskPhase, TaskSpec, TaskStatus};

    fn task(uid: &str, phase: TaskPhase, message: &str) -> Task {
        let mut t = Task::new("nightly-1", TaskSpec::default());
        t.metadata.uid = Some(uid.into());
        t.status = Some(TaskStatus { phase, message: message.into(), ..Default::default() });
        t
    }

    #[test]
    fn a_status_write_that_keeps_the_phase_does_not_wake_the_schedule() {
        let mut c = Changes::default();
        assert!(c.wake(Event::Apply(task("u1", TaskPhase::Running, "starting"))).is_some());
        assert!(c.wake(Event::Apply(task("u1", TaskPhase::Running, "50% done"))).is_none());
        assert!(c.wake(Event::Apply(task("u1", TaskPhase::Succeeded, "done"))).is_some());
    }

    #[test]
    fn cancelling_and_deleting_a_task_wake_the_schedule() {
        let mut c = Changes::default();
        let mut t = task("u1", TaskPhase::Running, "");
        c.wake(Event::Apply(t.clone()));
        t.spec.cancel = true;
        assert!(c.wake(Event::Apply(t.clone())).is_some());
        assert!(c.wake(Event::Delete(t.clone())).is_some());
        // Its uid is forgotten: a new Task of the same name (a later run) is news.
        assert!(c.wake(Event::Apply(t)).is_some());
    }

    #[test]
    fn a_relist_wakes_every_schedule_once_and_forgets_tasks_gone_meanwhile() {
        let mut c = Changes::default();
        c.wake(Event::Apply(task("gone", TaskPhase::Running, "")));
        c.wake(Event::Apply(task("kept", TaskPhase::Running, "")));
        assert!(c.wake(Event::Init).is_none());
        assert!(c.wake(Event::InitApply(task("kept", TaskPhase::Running, ""))).is_some());
        assert!(c.wake(Event::InitDone).is_none());
        assert_eq!(c.seen.keys().collect::<Vec<_>>(), ["kept"]);
        assert!(c.wake(Event::Apply(task("kept", TaskPhase::Running, "again"))).is_none());
    }
}
