//! How a Task ends: finishing in a terminal phase, retrying a failed attempt or giving up, stopping
//! on cancel or deadline, and the TTL after it finished.

use std::time::Duration;

use ephemera_crds::{ConditionType, Reason, Task, TaskPhase, TaskStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::observe::{Failure, ObservedPod};
use crate::plan::{Effect, Next, Note, Plan};
use crate::status::{parse, rfc3339, set_condition, truncate};

/// When the Task's time is up: creation plus `timeoutSeconds`.
pub fn deadline(task: &Task, now: Timestamp) -> Timestamp {
    let created = task.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    created.checked_add(SignedDuration::from_secs(task.spec.timeout_seconds)).unwrap_or(now)
}

/// Seconds from `now` until `then`, rounded up to the next whole second (at least `floor`).
pub(crate) fn secs_until(then: Timestamp, now: Timestamp, floor: u64) -> Duration {
    Duration::from_secs((u64::try_from(then.duration_since(now).as_secs()).unwrap_or(0) + 1).max(floor))
}

/// Ends the Task: terminal phase, completion time, the Job-style conditions, an event; then its
/// queue slot is freed, its tokens revoked, and its TTL starts.
pub fn finish(
    task: &Task,
    mut status: TaskStatus,
    phase: TaskPhase,
    reason: Reason,
    message: String,
    now: Timestamp,
) -> Plan {
    status.phase = phase;
    status.reason = reason.as_str().into();
    status.message = message.clone();
    status.next_attempt_time = None;
    status.completion_time = Some(rfc3339(now));
    let ok = phase == TaskPhase::Succeeded;
    let generation = task.metadata.generation;
    // `Complete` only for success, `Failed` for every other ending (so `kubectl wait
    // --for=condition=Complete` never passes a failed Task).
    set_condition(&mut status, ConditionType::Complete, ok, &reason, &message, generation, now);
    set_condition(&mut status, ConditionType::Failed, !ok, &reason, &message, generation, now);
    let note = format!("{}: {message}", phase.as_str());
    let event = if ok { Note::normal(reason, note) } else { Note::warning(reason, note) };
    let plan = Plan::new(status)
        .then(event)
        .then(Effect::WriteStatus)
        .then(Effect::ReleaseSlot)
        .then(Effect::RevokeEnded { announce: true });
    ttl(task, plan, now)
}

/// A failed attempt: retried after its back-off when its class is retried, attempts are left and the
/// retry would start before the deadline; otherwise the Task fails. Its token is revoked either way.
pub fn retry_or_fail(
    task: &Task,
    mut status: TaskStatus,
    failure: Failure,
    now: Timestamp,
    deadline: Timestamp,
) -> Plan {
    let Failure { class, reason, message, exit_code, result } = failure;
    status.exit_code = exit_code;
    status.result = truncate(result);
    let policy = &task.spec.retry;
    let backoff = policy
        .backoff_seconds
        .saturating_mul(1i64 << (status.attempt - 1).clamp(0, 20))
        .min(policy.max_backoff_seconds);
    let next = now.checked_add(SignedDuration::from_secs(backoff)).unwrap_or(now);
    let retried = policy.retry_on.contains(&class);
    if retried && status.attempt < policy.max_attempts && next < deadline {
        status.phase = TaskPhase::Pending;
        status.reason = Reason::RetryBackoff.as_str().into();
        status.message = format!("attempt {} failed ({reason}: {message}); retrying in {backoff}s", status.attempt);
        status.next_attempt_time = Some(rfc3339(next));
        let note = Note::warning(Reason::AttemptFailed, status.message.clone());
        return Plan::new(status)
            .then(Effect::RevokeEnded { announce: false })
            .then(note)
            .then(Effect::WriteStatus)
            .then(Effect::ReleaseSlot)
            .next(Next::After(Duration::from_secs(u64::try_from(backoff).unwrap_or(0) + 1)));
    }
    let why = if !retried {
        format!("{message} ({} failures are not retried)", class.as_str())
    } else if status.attempt < policy.max_attempts {
        format!("{message} (the next attempt would start after the Task's deadline)")
    } else {
        format!("{message} (no attempts left: {}/{})", status.attempt, policy.max_attempts)
    };
    let mut plan = finish(task, status, TaskPhase::Failed, reason, why, now);
    // The attempt is over: its token goes first, not when the Task's status is written.
    plan.effects.insert(0, Effect::RevokeEnded { announce: false });
    plan
}

/// Stops the Task on cancel or at its deadline: a running Pod is stopped with grace (its worker still
/// revokes its provider tokens), then the Task ends.
pub fn stop(task: &Task, status: TaskStatus, running: Option<&ObservedPod>, now: Timestamp) -> Plan {
    let (phase, reason, message) = if task.spec.cancel {
        (TaskPhase::Cancelled, Reason::Cancelled, "cancelled on request".to_string())
    } else {
        let msg = format!("the Task did not finish within {}s", task.spec.timeout_seconds);
        (TaskPhase::TimedOut, Reason::DeadlineExceeded, msg)
    };
    let mut plan = finish(task, status, phase, reason, message, now);
    if let Some(p) = running {
        plan.effects.insert(0, Effect::StopPod(p.name.clone()));
    }
    plan
}

/// Adds the TTL step to a finished Task's plan: delete it once `ttlSecondsAfterFinished` has passed
/// since it finished, or look again then.
pub fn ttl(task: &Task, mut plan: Plan, now: Timestamp) -> Plan {
    let done = plan.status.completion_time.as_deref().and_then(parse);
    let (Some(ttl), Some(done)) = (task.spec.ttl_seconds_after_finished, done) else {
        return plan.next(Next::AwaitChange);
    };
    let expires = done.checked_add(SignedDuration::from_secs(ttl)).unwrap_or(done);
    if now < expires {
        return plan.next(Next::After(secs_until(expires, now, 0)));
    }
    if task.metadata.deletion_timestamp.is_none() {
        plan.effects.push(Effect::DeleteTask);
    }
    plan.next(Next::AwaitChange)
}
