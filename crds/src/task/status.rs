//! What happened to a Task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The lifecycle phase of a Task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum TaskPhase {
    /// Accepted, waiting in its queue (also between attempts).
    #[default]
    Pending,
    /// Its Pod exists for the current attempt.
    Scheduled,
    /// The worker is running.
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Finished unsuccessfully, with no retry left.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Ran out of time.
    TimedOut,
}

impl TaskPhase {
    /// Whether the Task is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskPhase::Succeeded | TaskPhase::Failed | TaskPhase::Cancelled | TaskPhase::TimedOut)
    }
}

/// A standard Kubernetes condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `CredentialsResolved`, `PodStuck`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason (CamelCase).
    #[serde(default)]
    pub reason: String,
    /// Human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One progress report from the worker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ProgressEvent {
    /// Strictly increasing per Task.
    pub seq: i64,
    /// When it happened (RFC 3339).
    pub time: String,
    /// Percent done, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    /// What is happening.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub message: String,
}

/// Observed state of a Task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: TaskPhase,
    /// Why it is in this phase (CamelCase), e.g. `ExitCode`, `UnknownQueue`, `DeadlineExceeded`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable detail of `reason`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Current attempt, from 1.
    #[serde(default)]
    pub attempt: i32,
    /// Pod of the current attempt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    /// Uid of that Pod once the operator has seen it (empty: not created yet).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    /// When the first attempt started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the Task finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Exit code of the last finished attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Bounded result reported by the worker (its termination message).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 4096))]
    pub result: String,
    /// Earliest time the next attempt may start (during retry back-off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<String>,
    /// Spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last progress events (oldest first), each with a strictly increasing `seq`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub progress: Vec<ProgressEvent>,
    /// Progress events dropped from `progress` to keep it bounded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_compacted: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
