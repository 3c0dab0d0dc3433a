//! A scheduled or running attempt: its Pod is created, verified, watched while it starts (and
//! declared stuck when it does not), and its outcome ends the attempt.

use std::time::Duration;

use ephemera_crds::{ConditionType, FailureClass, Reason, Task, TaskPhase, TaskStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::ending::{finish, retry_or_fail, secs_until};
use crate::observe::{Attempt, Failure, ObservedPod};
use crate::plan::{Decision, Effect, Fact, Metric, Next, Note, Plan, Seen};
use crate::status::{rfc3339, set_condition, truncate};
use crate::Settings;

/// How often a starting Pod is looked at, at most.
const START_RECHECK: Duration = Duration::from_secs(30);

/// The next step of a Task whose attempt is scheduled or running; `pod` is the attempt's Pod if it
/// exists and belongs to the Task.
pub fn decide(
    task: &Task,
    mut status: TaskStatus,
    pod: Option<&ObservedPod>,
    seen: &Seen,
    now: Timestamp,
    deadline: Timestamp,
    settings: &Settings,
) -> Decision {
    let generation = task.metadata.generation;
    let Some(p) = pod else {
        if status.pod_uid.is_empty() {
            // Recorded, never created (or created and not yet seen: the create is idempotent).
            return Decision::Plan(Plan::new(status).next(Next::StartAttempt));
        }
        let msg = format!("Pod {} was deleted before the attempt finished", status.pod_name);
        let failure = Failure::infrastructure(Reason::PodDeleted, msg);
        return Decision::Plan(retry_or_fail(task, status, failure, now, deadline));
    };
    if status.pod_uid.is_empty() {
        // A Pod with credentials is adopted only if it is the one the operator recorded creating:
        // anyone who may create Pods here could have made one of that name.
        if !task.spec.credentials.is_empty() {
            let Some(recorded) = &seen.recorded_pod else { return Decision::Need(Fact::RecordedPod) };
            if recorded.as_deref() != Some(p.uid.as_str()) {
                let msg = format!(
                    "Pod {} is not the Pod the operator created for this attempt (or the operator stopped before recording it); it was stopped",
                    p.name
                );
                let failure = Failure::infrastructure(Reason::PodUnverified, msg);
                let mut plan = retry_or_fail(task, status, failure, now, deadline);
                plan.effects.insert(0, Effect::StopPod(p.name.clone()));
                return Decision::Plan(plan);
            }
        }
        status.pod_uid = p.uid.clone();
    }
    let plan = match &p.attempt {
        Attempt::Starting { problem } => {
            let started_at = p.created.unwrap_or(now);
            let stuck_at = started_at
                .checked_add(SignedDuration::try_from(settings.pod_start_timeout).unwrap_or_default())
                .unwrap_or(now);
            // Written only to surface a problem: a Pod that is just starting changes nothing a
            // reader needs (its uid, when not yet written, rides on the Running write).
            let mut effects = Vec::new();
            if let Some((reason, message)) = problem {
                let reason = Reason::Kubelet(reason.clone());
                set_condition(&mut status, ConditionType::PodStarted, false, &reason, message, generation, now);
                status.reason = reason.as_str().into();
                status.message = message.clone();
                effects.push(Effect::WriteStatus);
            }
            if now >= stuck_at {
                let detail = problem.as_ref().map(|(r, m)| format!(": {r}: {m}")).unwrap_or_default();
                let msg =
                    format!("Pod {} did not start within {}s{detail}", p.name, settings.pod_start_timeout.as_secs());
                // With grace: the credentials step may be running and must revoke.
                let mut plan =
                    retry_or_fail(task, status, Failure::infrastructure(Reason::PodStuck, msg), now, deadline);
                plan.effects.insert(0, Effect::StopPod(p.name.clone()));
                return Decision::Plan(plan);
            }
            Plan { status, effects, next: Next::After(secs_until(stuck_at, now, 0).min(START_RECHECK)) }
        }
        Attempt::Running => {
            let mut effects = Vec::new();
            if status.phase != TaskPhase::Running {
                status.phase = TaskPhase::Running;
                status.reason = Reason::Running.as_str().into();
                status.message = format!("attempt {} is running in Pod {}", status.attempt, p.name);
                set_condition(&mut status, ConditionType::PodStarted, true, &Reason::Running, "", generation, now);
                if status.start_time.is_none() {
                    status.start_time = Some(rfc3339(now));
                    let created = task.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
                    effects.push(Effect::Metric(Metric::StartLatency(now.duration_since(created).unsigned_abs())));
                }
                effects.push(Note::normal(Reason::Running, status.message.clone()));
            }
            effects.push(Effect::WriteStatus);
            // Nothing to do until the Pod changes, except the deadline (whole seconds left, at least 1).
            let left = u64::try_from(deadline.duration_since(now).as_secs()).unwrap_or(0).max(1);
            Plan { status, effects, next: Next::After(Duration::from_secs(left)) }
        }
        Attempt::Succeeded { result } => {
            status.exit_code = Some(0);
            status.result = truncate(result.clone());
            let msg = "the task command exited with code 0".to_string();
            finish(task, status, TaskPhase::Succeeded, Reason::Succeeded, msg, now)
        }
        Attempt::Intercepted { started, .. } if expired_before_start(&status.wrap_expires, *started) => {
            let msg = format!(
                "the attempt's one-time Vault token expired at {} before its Pod started (not an interception); raise --vault-wrap-ttl-seconds if Pods here start this slowly",
                status.wrap_expires
            );
            let note = Note::warning(Reason::CredentialExpired, msg.clone());
            let mut plan =
                retry_or_fail(task, status, Failure::infrastructure(Reason::CredentialExpired, msg), now, deadline);
            plan.effects.insert(0, note);
            plan
        }
        Attempt::Intercepted { message, .. } => {
            let msg = format!(
                "possible credential interception: the worker could not unwrap its one-time Vault token ({message}); the attempt's token was revoked and the Task is not retried"
            );
            let reason = Reason::CredentialUnwrapFailed;
            set_condition(&mut status, ConditionType::CredentialsDelivered, false, &reason, &msg, generation, now);
            let mut plan = finish(task, status, TaskPhase::Failed, reason.clone(), msg.clone(), now);
            plan.effects.splice(0..0, [Effect::Metric(Metric::UnwrapFailure), Note::warning(reason, msg)]);
            plan
        }
        Attempt::Failed(f) if f.class == FailureClass::Timeout => {
            status.exit_code = f.exit_code;
            status.result = truncate(f.result.clone());
            finish(task, status, TaskPhase::TimedOut, f.reason.clone(), f.message.clone(), now)
        }
        Attempt::Failed(f) => retry_or_fail(task, status, f.clone(), now, deadline),
    };
    Decision::Plan(plan)
}

/// Whether a wrapping token that could not be unwrapped had simply expired: its container started
/// (kubelet time) no earlier than moments before the expiry the operator recorded when minting.
pub fn expired_before_start(wrap_expires: &str, started: Option<Timestamp>) -> bool {
    let (Ok(expires), Some(started)) = (wrap_expires.parse::<Timestamp>(), started) else { return false };
    // The worker asks Vault within moments of starting.
    started + SignedDuration::from_secs(2) >= expires
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
