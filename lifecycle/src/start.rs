//! Starting an attempt whose record is written: what each outcome of resolving its credentials,
//! minting its token and creating its Pod leads to. The operator performs those calls in that order
//! and hands the first outcome that ends the procedure to [`outcome`].

use std::time::Duration;

use ephemera_crds::{ConditionType, Reason, Task, TaskPhase, TaskStatus};
use k8s_openapi::jiff::Timestamp;

use crate::ending::{finish, retry_or_fail};
use crate::observe::Failure;
use crate::pending::QUEUE_RECHECK;
use crate::plan::{Effect, Metric, Next, Note, Plan, Refusal};
use crate::status::set_condition;

/// How a Pod whose name was just taken by a concurrent create is looked at again.
const NAME_RACE_RECHECK: Duration = Duration::from_secs(1);
/// How a created Pod is looked at again if no watch event arrives first.
const CREATED_RECHECK: Duration = Duration::from_secs(30);

/// How starting the attempt went.
#[derive(Clone, Debug, PartialEq)]
pub enum StartOutcome {
    /// The credentials were refused on the second look (an admin changed them since admission).
    Refused(Refusal),
    /// Vault could not mint the attempt's token.
    Vault {
        /// Unreachable (rather than refusing).
        unavailable: bool,
        /// What Vault said (never secret).
        message: String,
    },
    /// The reporting Secret's name is taken by something that is not this Task's.
    SecretNameTaken(String),
    /// A Pod of the attempt's name exists and is not this Task's.
    PodNameTaken,
    /// A Pod of the name appeared between the look and the create.
    NameRace,
    /// The API server rejected the Pod as invalid (it never will accept it).
    Rejected(String),
    /// Admission forbade the Pod (quota or policy may allow it later).
    Forbidden(String),
    /// The Pod was created.
    Created {
        /// Its uid.
        uid: String,
    },
}

/// Records a freshly minted wrapping token in the status (written with the attempt's next write).
pub fn token_issued(task: &Task, status: &mut TaskStatus, expires: String, now: Timestamp) {
    status.wrap_expires = expires;
    let generation = task.metadata.generation;
    set_condition(status, ConditionType::CredentialsIssued, true, &Reason::TokenIssued, "", generation, now);
}

/// What an outcome of starting the attempt leads to.
pub fn outcome(
    task: &Task,
    mut status: TaskStatus,
    outcome: StartOutcome,
    now: Timestamp,
    deadline: Timestamp,
) -> Plan {
    let generation = task.metadata.generation;
    let fail = |status, reason, msg| finish(task, status, TaskPhase::Failed, reason, msg, now);
    match outcome {
        StartOutcome::Refused(Refusal { reason, message }) => {
            set_condition(&mut status, ConditionType::CredentialsResolved, false, &reason, &message, generation, now);
            fail(status, reason, message)
        }
        StartOutcome::Vault { unavailable, message } => {
            let reason = if unavailable { Reason::VaultUnavailable } else { Reason::VaultRefused };
            let msg = format!("could not issue the attempt's Vault token: {message}");
            set_condition(&mut status, ConditionType::CredentialsIssued, false, &reason, &msg, generation, now);
            let mut plan = retry_or_fail(task, status, Failure::infrastructure(reason, msg), now, deadline);
            plan.effects.insert(0, Effect::Metric(Metric::VaultError));
            plan
        }
        StartOutcome::SecretNameTaken(msg) => fail(status, Reason::SecretNameTaken, msg),
        StartOutcome::PodNameTaken => {
            let msg = format!("Pod {} already exists and does not belong to this Task", status.pod_name);
            fail(status, Reason::PodNameTaken, msg)
        }
        // The next look sees the Pod and checks it against the record.
        StartOutcome::NameRace => Plan::new(status).next(Next::After(NAME_RACE_RECHECK)),
        StartOutcome::Rejected(message) => {
            fail(status, Reason::PodInvalid, format!("the worker Pod was rejected: {message}"))
        }
        StartOutcome::Forbidden(message) => {
            set_condition(&mut status, ConditionType::PodCreated, false, &Reason::Forbidden, &message, generation, now);
            status.reason = Reason::PodForbidden.as_str().into();
            status.message = message;
            Plan::new(status).then(Effect::WriteStatus).next(Next::After(QUEUE_RECHECK))
        }
        StartOutcome::Created { uid } => {
            status.pod_uid = uid;
            status.reason = Reason::PodCreated.as_str().into();
            status.message = format!("attempt {} runs in Pod {}", status.attempt, status.pod_name);
            let mut effects = Vec::new();
            if status.attempt == 1 {
                let created = task.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
                effects.push(Effect::Metric(Metric::PodCreatedLatency(now.duration_since(created).unsigned_abs())));
            }
            effects.push(Note::normal(Reason::Scheduled, status.message.clone()));
            if status.wrap_expires.is_empty() {
                // No write: the status already says Scheduled in this Pod (written before it was
                // created); its uid rides on the attempt's next write (Running or its end).
                effects.push(Effect::ExpectPod(status.pod_uid.clone()));
            } else {
                // A token was minted: its expiry is written now, so that after any crash an
                // unwrap failure is still told apart from a token that merely expired.
                effects.push(Effect::WriteStatus);
            }
            Plan { status, effects, next: Next::After(CREATED_RECHECK) }
        }
    }
}
