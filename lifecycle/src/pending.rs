//! A pending Task: its template is rendered (once), its credentials are checked, its queue must exist and accept it, its back-off must
//! have passed and the queue must have a free slot; then its next attempt is recorded (before its Pod
//! exists, so a crash between the two never leads to a second Pod for the attempt).

use std::time::Duration;

use ephemera_crds::template::with_rendering;
use ephemera_crds::{ConditionType, Reason, Task, TaskPhase, TaskStatus};
use k8s_openapi::jiff::Timestamp;

use crate::ending::{finish, secs_until};
use crate::names::pod_name;
use crate::plan::{Decision, Effect, Fact, Next, Note, Plan, Seen};
use crate::status::{clear_condition, parse, set_condition};

/// How often a Task the queue refused, or one waiting for a slot, is looked at again (a freed slot
/// wakes waiting Tasks sooner: this is the safety net).
pub const QUEUE_RECHECK: Duration = Duration::from_secs(30);

/// The next step of a pending Task.
pub fn decide(task: &Task, mut status: TaskStatus, seen: &Seen, now: Timestamp) -> Decision {
    let generation = task.metadata.generation;
    // Only a status writer other than the operator can have put another template's rendering
    // there (the CRD keeps status.template as first written): the Task never runs it.
    if let (Some(r), Some(found)) = (&task.spec.template_ref, &status.template) {
        if !found.is_for(r) {
            let reason = Reason::InvalidTemplate;
            let message = format!(
                "status.template was rendered from {} {:?}, not from the Task's templateRef {} {:?}",
                found.kind.as_str(),
                found.name,
                r.kind.as_str(),
                r.name
            );
            set_condition(&mut status, ConditionType::TemplateResolved, false, &reason, &message, generation, now);
            return Decision::Plan(finish(task, status, TaskPhase::Failed, reason, message, now));
        }
    }
    // A templated Task is rendered once, before anything else is checked: the rendering (and the
    // template generation) is kept in its status, so a later template edit changes nothing.
    if let (Some(r), None) = (&task.spec.template_ref, &status.template) {
        let Some(found) = &seen.template else { return Decision::Need(Fact::Template) };
        return match found {
            Err(refusal) => {
                let (reason, message) = (refusal.reason.clone(), refusal.message.clone());
                set_condition(&mut status, ConditionType::TemplateResolved, false, &reason, &message, generation, now);
                Decision::Plan(finish(task, status, TaskPhase::Failed, reason, message, now))
            }
            Ok(rendering) => {
                let message = format!(
                    "rendered from {} {:?} (generation {})",
                    r.kind.as_str(),
                    rendering.name,
                    rendering.generation
                );
                let reason = Reason::Rendered;
                set_condition(&mut status, ConditionType::TemplateResolved, true, &reason, &message, generation, now);
                status.template = Some(Box::new(rendering.clone()));
                let rendered = with_rendering(task, &rendering.task);
                decide(&rendered, status, seen, now)
            }
        };
    }
    let ns = task.metadata.namespace.as_deref().unwrap_or_default();
    let Some(credentials) = &seen.credentials else { return Decision::Need(Fact::Credentials) };
    // Credentials are checked before any Pod exists: an unknown or forbidden name ends the Task.
    if let Err(refusal) = credentials {
        let (reason, message) = (refusal.reason.clone(), refusal.message.clone());
        set_condition(&mut status, ConditionType::CredentialsResolved, false, &reason, &message, generation, now);
        return Decision::Plan(finish(task, status, TaskPhase::Failed, reason, message, now));
    }
    if !task.spec.credentials.is_empty() {
        set_condition(&mut status, ConditionType::CredentialsResolved, true, &Reason::Resolved, "", generation, now);
    }
    let Some(queue) = &seen.queue else { return Decision::Need(Fact::Queue) };
    let name = &task.spec.queue;
    let problem = match queue {
        None => Some((
            Reason::UnknownQueue,
            format!("queue {name:?} does not exist: create a TaskQueue of that name or use another queue"),
        )),
        Some(q) if !q.namespaces.is_empty() && !q.namespaces.iter().any(|n| n == ns) => {
            Some((Reason::QueueForbidden, format!("queue {name:?} does not accept Tasks from namespace {ns:?}")))
        }
        Some(_) => None,
    };
    if let Some((reason, message)) = problem {
        set_condition(&mut status, ConditionType::QueueAccepted, false, &reason, &message, generation, now);
        // One event when the Task is first refused, not one per look.
        let announce = status.reason != reason.as_str();
        status.reason = reason.as_str().into();
        status.message = message.clone();
        let mut plan = Plan::new(status);
        if announce {
            plan = plan.then(Note::warning(reason, message));
        }
        return Decision::Plan(plan.then(Effect::WriteStatus).next(Next::After(QUEUE_RECHECK)));
    }
    let spec = queue.clone().unwrap_or_default();
    set_condition(&mut status, ConditionType::QueueAccepted, true, &Reason::QueueFound, "", generation, now);
    match spec.priority_cap(ns).filter(|cap| task.spec.priority > *cap) {
        Some(cap) => {
            let msg = format!(
                "priority {} is ranked as {cap}: queue {name:?} caps Tasks of namespace {ns:?} at {cap}",
                task.spec.priority
            );
            set_condition(
                &mut status,
                ConditionType::PriorityCapped,
                true,
                &Reason::QueuePriorityCap,
                &msg,
                generation,
                now,
            );
        }
        None => clear_condition(&mut status, ConditionType::PriorityCapped),
    }
    if let Some(next) = status.next_attempt_time.as_deref().and_then(parse).filter(|next| *next > now) {
        return Decision::Plan(Plan::new(status).then(Effect::WriteStatus).next(Next::After(secs_until(next, now, 0))));
    }
    let Some(admitted) = seen.admitted else { return Decision::Need(Fact::Admission) };
    if !admitted {
        status.reason = Reason::Queued.as_str().into();
        status.message = format!("waiting for a free slot in queue {name:?} (concurrency {})", spec.concurrency);
        return Decision::Plan(Plan::new(status).then(Effect::WriteStatus).next(Next::After(QUEUE_RECHECK)));
    }
    status.attempt += 1;
    status.pod_name = pod_name(&task.metadata.name.clone().unwrap_or_default(), status.attempt);
    status.pod_uid = String::new();
    status.wrap_expires = String::new();
    status.phase = TaskPhase::Scheduled;
    status.reason = Reason::CreatingPod.as_str().into();
    status.message = format!("starting attempt {}", status.attempt);
    status.next_attempt_time = None;
    Decision::Plan(Plan::new(status).then(Effect::WriteStatus).next(Next::StartAttempt))
}
