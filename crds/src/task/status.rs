//! What happened to a Task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The lifecycle phase of a Task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
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

/// What an event is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum EventKind {
    /// A progress line from the task (`::progress pct=.. msg=..`).
    #[default]
    Progress,
    /// The Task changed phase (written by the operator).
    Phase,
}

/// One event of a Task: a progress report from the worker or a phase change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ProgressEvent {
    /// Strictly increasing per Task.
    pub seq: i64,
    /// Progress or phase change.
    #[serde(default)]
    pub kind: EventKind,
    /// The new phase, for phase changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TaskPhase>,
    /// The attempt it belongs to.
    #[serde(default)]
    pub attempt: i32,
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
    /// A templated Task: the template version it was rendered from, and the rendering it runs
    /// (written once; a later edit of the template does not change it).
    // Boxed: most Tasks have none, and the operator and the API server cache every Task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Box<crate::template::TemplateResolution>>,
    /// Current attempt, from 1.
    #[serde(default)]
    pub attempt: i32,
    /// Pod of the current attempt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    /// Uid of that Pod once the operator has seen it (empty: not created yet).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    /// When the current attempt's one-time wrapping token stops being unwrappable (RFC 3339; set
    /// when it is minted). Kept here, where only the operator writes, to tell a slow Pod start from
    /// an interception.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wrap_expires: String,
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
    /// The last `seq` given to an event (kept even when `progress` is compacted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_seq: i64,
    /// Progress events the worker could not deliver (its buffer was full or the API unreachable).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_dropped: i64,
    /// The worker's own sequence number of the last event accepted for the current attempt (a
    /// retried delivery of the same events is ignored).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub worker_seq: i64,
}

impl TaskStatus {
    /// Appends events (their `seq` is assigned here) and keeps at most `ring` of them, counting what
    /// was compacted away.
    pub fn push_events(&mut self, events: impl IntoIterator<Item = ProgressEvent>, ring: usize) {
        for mut e in events {
            self.last_seq = self.last_seq.max(self.progress.last().map(|p| p.seq).unwrap_or(0)) + 1;
            e.seq = self.last_seq;
            self.progress.push(e);
        }
        let ring = ring.clamp(1, super::MAX_PROGRESS_EVENTS);
        if self.progress.len() > ring {
            let cut = self.progress.len() - ring;
            self.progress.drain(..cut);
            self.progress_compacted += i64::try_from(cut).unwrap_or(i64::MAX);
        }
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
