//! The words a Task's status is written in: its condition types and the reasons the operator gives.
//! They travel as strings (`status.reason`, `conditions[].type`, event reasons); these enums are the
//! one list of them, so the operator, the API server and the tests cannot drift apart.

use super::{FailureClass, TaskPhase};
use crate::worker::WorkerFailure;

impl TaskPhase {
    /// Every phase, in lifecycle order.
    pub const ALL: [TaskPhase; 7] = [
        TaskPhase::Pending,
        TaskPhase::Scheduled,
        TaskPhase::Running,
        TaskPhase::Succeeded,
        TaskPhase::Failed,
        TaskPhase::Cancelled,
        TaskPhase::TimedOut,
    ];

    /// The phase as written in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskPhase::Pending => "Pending",
            TaskPhase::Scheduled => "Scheduled",
            TaskPhase::Running => "Running",
            TaskPhase::Succeeded => "Succeeded",
            TaskPhase::Failed => "Failed",
            TaskPhase::Cancelled => "Cancelled",
            TaskPhase::TimedOut => "TimedOut",
        }
    }

    /// The phase of its written name (exact match, as `status.phase` holds it).
    pub fn parse(s: &str) -> Option<TaskPhase> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl FailureClass {
    /// The class as written in `spec.retry.retryOn`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::ExitCode => "ExitCode",
            FailureClass::Infrastructure => "Infrastructure",
            FailureClass::Timeout => "Timeout",
        }
    }
}

/// The condition types the operator sets on a Task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// Job-style: `True` only when the Task succeeded (`kubectl wait --for=condition=Complete`).
    Complete,
    /// Job-style: `True` for every ending but success.
    Failed,
    /// The Task's template was found and rendered with its params.
    TemplateResolved,
    /// Every credential name resolved to a Credential the namespace may use.
    CredentialsResolved,
    /// The attempt's one-time Vault token was minted.
    CredentialsIssued,
    /// The worker received its credentials (`False` when its token was intercepted).
    CredentialsDelivered,
    /// The Task's queue exists and accepts its namespace.
    QueueAccepted,
    /// The queue ranks the Task below the priority it asked for.
    PriorityCapped,
    /// The attempt's Pod was created (`False` while admission forbids it).
    PodCreated,
    /// The attempt's container started (`False` with the kubelet's reason while it cannot).
    PodStarted,
}

impl ConditionType {
    /// The type as written in `status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Complete => "Complete",
            ConditionType::Failed => "Failed",
            ConditionType::TemplateResolved => "TemplateResolved",
            ConditionType::CredentialsResolved => "CredentialsResolved",
            ConditionType::CredentialsIssued => "CredentialsIssued",
            ConditionType::CredentialsDelivered => "CredentialsDelivered",
            ConditionType::QueueAccepted => "QueueAccepted",
            ConditionType::PriorityCapped => "PriorityCapped",
            ConditionType::PodCreated => "PodCreated",
            ConditionType::PodStarted => "PodStarted",
        }
    }
}

/// Why a Task is where it is: `status.reason`, condition reasons and event reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    // Queue admission.
    /// The Task's queue does not exist.
    UnknownQueue,
    /// The queue does not accept the Task's namespace.
    QueueForbidden,
    /// The queue exists and accepts the Task.
    QueueFound,
    /// The queue caps the Task's priority.
    QueuePriorityCap,
    /// Waiting for a free slot in the queue.
    Queued,
    /// Waiting out the back-off before the next attempt.
    RetryBackoff,
    // Templates.
    /// The template was rendered.
    Rendered,
    /// The named template does not exist.
    TemplateNotFound,
    /// The template is invalid (its owner must fix it).
    InvalidTemplate,
    /// The Task's params do not fit its template.
    InvalidParams,
    // Credentials.
    /// Every credential resolved.
    Resolved,
    /// A named credential does not exist.
    UnknownCredential,
    /// A named credential may not be used in the Task's namespace.
    CredentialForbidden,
    /// A signing credential keeps its private key in KV and the operator does not allow that.
    PrivateKeyNotInTransit,
    /// Credentials were named but the operator has no Vault or hand-off configured.
    VaultNotConfigured,
    /// Two credentials would set the same environment variables.
    CredentialConflict,
    /// The attempt's Vault token was minted.
    TokenIssued,
    /// Vault could not be reached.
    VaultUnavailable,
    /// Vault refused to mint the attempt's token.
    VaultRefused,
    /// The attempt's one-time token expired before its Pod started.
    CredentialExpired,
    /// The worker could not unwrap its one-time token: possible interception.
    CredentialUnwrapFailed,
    /// Tokens of ended attempts were revoked (event only).
    CredentialsRevoked,
    // The attempt's Pod.
    /// The attempt is recorded; its Pod is being created.
    CreatingPod,
    /// The attempt's Pod exists.
    PodCreated,
    /// The attempt's Pod was created (event only).
    Scheduled,
    /// Admission (quota, policy) forbade the Pod for now.
    PodForbidden,
    /// The API server will never accept the Pod as built.
    PodInvalid,
    /// A Pod of the attempt's name exists and is not this Task's.
    PodNameTaken,
    /// A Secret of the attempt's name exists and is not this Task's.
    SecretNameTaken,
    /// The attempt's Pod is not the one the operator recorded creating.
    PodUnverified,
    /// The attempt's Pod did not start in time.
    PodStuck,
    /// The attempt's Pod disappeared before it finished.
    PodDeleted,
    /// The attempt's container runs.
    Running,
    /// An attempt failed and another follows (event only).
    AttemptFailed,
    /// Admission refused the Pod (condition reason of `PodCreated`).
    Forbidden,
    // Endings.
    /// The command exited with code 0.
    Succeeded,
    /// The command exited non-zero.
    ExitCode,
    /// An init container failed before the command ran.
    InitContainerFailed,
    /// Cancelled on request.
    Cancelled,
    /// The Task's deadline passed.
    DeadlineExceeded,
    /// The worker ended the attempt and said why.
    Worker(WorkerFailure),
    /// A reason the kubelet gave (e.g. `Evicted`, `OOMKilled`, `ImagePullBackOff`), passed on as is.
    Kubelet(String),
}

impl Reason {
    /// The reason as written in status and events.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::UnknownQueue => "UnknownQueue",
            Reason::QueueForbidden => "QueueForbidden",
            Reason::QueueFound => "QueueFound",
            Reason::QueuePriorityCap => "QueuePriorityCap",
            Reason::Queued => "Queued",
            Reason::RetryBackoff => "RetryBackoff",
            Reason::Rendered => "Rendered",
            Reason::TemplateNotFound => "TemplateNotFound",
            Reason::InvalidTemplate => "InvalidTemplate",
            Reason::InvalidParams => "InvalidParams",
            Reason::Resolved => "Resolved",
            Reason::UnknownCredential => "UnknownCredential",
            Reason::CredentialForbidden => "CredentialForbidden",
            Reason::PrivateKeyNotInTransit => "PrivateKeyNotInTransit",
            Reason::VaultNotConfigured => "VaultNotConfigured",
            Reason::CredentialConflict => "CredentialConflict",
            Reason::TokenIssued => "TokenIssued",
            Reason::VaultUnavailable => "VaultUnavailable",
            Reason::VaultRefused => "VaultRefused",
            Reason::CredentialExpired => "CredentialExpired",
            Reason::CredentialUnwrapFailed => "CredentialUnwrapFailed",
            Reason::CredentialsRevoked => "CredentialsRevoked",
            Reason::CreatingPod => "CreatingPod",
            Reason::PodCreated => "PodCreated",
            Reason::Scheduled => "Scheduled",
            Reason::PodForbidden => "PodForbidden",
            Reason::PodInvalid => "PodInvalid",
            Reason::PodNameTaken => "PodNameTaken",
            Reason::SecretNameTaken => "SecretNameTaken",
            Reason::PodUnverified => "PodUnverified",
            Reason::PodStuck => "PodStuck",
            Reason::PodDeleted => "PodDeleted",
            Reason::Running => "Running",
            Reason::AttemptFailed => "AttemptFailed",
            Reason::Forbidden => "Forbidden",
            Reason::Succeeded => "Succeeded",
            Reason::ExitCode => "ExitCode",
            Reason::InitContainerFailed => "InitContainerFailed",
            Reason::Cancelled => "Cancelled",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::Worker(f) => f.as_str(),
            Reason::Kubelet(r) => r,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_are_the_serialized_names_and_parse_back() {
        for p in TaskPhase::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
            assert_eq!(TaskPhase::parse(p.as_str()), Some(p));
        }
        assert_eq!(TaskPhase::parse("pending"), None, "status.phase is matched exactly");
    }

    #[test]
    fn failure_classes_and_worker_failures_read_as_they_serialize() {
        for c in [FailureClass::ExitCode, FailureClass::Infrastructure, FailureClass::Timeout] {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.as_str()));
        }
        for f in WorkerFailure::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), serde_json::json!(f.as_str()));
            assert_eq!(Reason::Worker(f).as_str(), f.as_str());
        }
    }
}
