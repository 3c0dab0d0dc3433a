//! The Task lifecycle as pure decisions, without a Kubernetes client: from a Task, what the operator
//! has observed of it ([`Seen`]), the time and the operator's settings, [`decide`] answers either
//! which fact it still needs ([`Fact`]) or the [`Plan`] to carry out (the status to write, effects in
//! order, when to look again). The operator gathers facts and executes plans; every transition can be
//! table-tested here.
//!
//! One file per concern: [`pending`] (credentials, queue, back-off, admission), [`attempt`] (the
//! attempt's Pod from creation to outcome), [`start`] (what creating the attempt's Pod can come to),
//! [`ending`] (finish, retry, cancel and deadline, TTL), [`observe`] (what a Pod says about its
//! attempt), [`status`] (conditions and the status as written).

pub mod attempt;
pub mod ending;
pub mod names;
pub mod observe;
pub mod pending;
pub mod plan;
pub mod start;
pub mod status;

#[cfg(test)]
mod tests;

use std::time::Duration;

use ephemera_crds::{Task, TaskPhase};
use k8s_openapi::jiff::Timestamp;

pub use observe::{Attempt, Failure, ObservedPod};
pub use plan::{Decision, Effect, Fact, Metric, Next, Note, Plan, Refusal, Seen};
pub use start::StartOutcome;

/// The operator settings the lifecycle depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// A Pod that has not started its container after this long fails the attempt (`PodStuck`).
    pub pod_start_timeout: Duration,
}

/// The next step for `task` given what has been seen of it at `now`.
pub fn decide(task: &Task, seen: &Seen, now: Timestamp, settings: &Settings) -> Decision {
    // A templated Task runs as rendered (its rendering is in its status once made).
    let task = &*task.rendered();
    let mut status = task.status.clone().unwrap_or_default();
    status.observed_generation = task.metadata.generation;
    if status.phase.is_terminal() {
        // Normally done when it finished; repeated in case that revocation failed.
        let plan = Plan::new(status).then(Effect::RevokeEnded { announce: false });
        return Decision::Plan(ending::ttl(task, plan, now));
    }
    let pod = match (status.pod_name.as_str(), &seen.pod) {
        ("", _) => None,
        (_, Some(pod)) => pod.as_ref(),
        (_, None) => return Decision::Need(Fact::Pod),
    };
    let deadline = ending::deadline(task, now);
    // An attempt that already ended is projected first: its outcome beats a later cancel or deadline.
    let attempt_active = matches!(status.phase, TaskPhase::Scheduled | TaskPhase::Running);
    let ended = attempt_active && pod.is_some_and(|p| p.attempt.is_over());
    if (task.spec.cancel || now >= deadline) && !ended {
        let running = pod.filter(|p| !p.attempt.is_over());
        return Decision::Plan(ending::stop(task, status, running, now));
    }
    match status.phase {
        TaskPhase::Pending => pending::decide(task, status, seen, now),
        _ => attempt::decide(task, status, pod, seen, now, deadline, settings),
    }
}
