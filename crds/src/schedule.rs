//! The `TaskSchedule` custom resource: Tasks made on a schedule (cron with a time zone, or
//! `@every <duration>`), or once at a given time (`runAt`), with CronJob's concurrency policies,
//! starting deadline, suspend and history limits. Namespaced, so a team owns its schedules.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::TaskSpec;

/// Most Tasks a schedule lists as active.
pub const MAX_ACTIVE: usize = 64;
/// Largest history limit.
pub const MAX_HISTORY: i32 = 100;

/// When Tasks are made, what they are, and how runs overlap.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "TaskSchedule",
    namespaced,
    status = "TaskScheduleStatus",
    shortname = "etsched",
    category = "ephemera",
    doc = "Ephemera Tasks made on a schedule (cron in a time zone, or @every), or once at a given time.",
    validation = Rule::new("size(self.metadata.name) <= 42").message("a TaskSchedule's name has at most 42 characters (its Tasks are named <name>-<unix time>)"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Run at", type_ = "string", json_path = ".spec.runAt", priority = "1"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeCount"),
    printcolumn(name = "Last schedule", type_ = "date", json_path = ".status.lastScheduleTime"),
    printcolumn(name = "Next", type_ = "string", json_path = ".status.nextScheduleTime"),
    printcolumn(name = "Last outcome", type_ = "string", json_path = ".status.lastOutcome.phase", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.schedule) != has(self.runAt)").message("set exactly one of schedule and runAt"),
    validation = Rule::new("!has(self.timeZone) || has(self.schedule)").message("timeZone applies to schedule (runAt carries its own offset)")
)]
#[serde(rename_all = "camelCase")]
pub struct TaskScheduleSpec {
    /// When: a cron expression of five fields (minute hour day-of-month month day-of-week, as
    /// CronJob reads them: `*/15 9-17 * * MON-FRI`), a descriptor (`@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`), or `@every <duration>` (`@every 2s`, `@every 1h30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub schedule: Option<String>,
    /// The IANA time zone the cron expression is read in (default `UTC`), e.g. `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"))]
    pub time_zone: Option<String>,
    /// A single run at this time (RFC 3339 with an offset, e.g. `2026-12-24T18:00:00+01:00`), for a
    /// delayed one-off Task; a time already past runs at once (within `startingDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub run_at: Option<String>,
    /// The Task each run creates.
    pub task: ScheduledTask,
    /// What a run does while an earlier Task of the schedule is still active: `Allow` it (the
    /// default), `Forbid` the new run (it is skipped), or `Replace` the active Task (it is cancelled).
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A run missed by more than this (the operator was down, the schedule suspended) is skipped;
    /// absent: a missed run is never too late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604_800))]
    pub starting_deadline_seconds: Option<i64>,
    /// No runs while true (runs that fall in the meantime are missed, as by CronJob).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Succeeded Tasks kept (older ones are deleted).
    #[serde(default = "default_successful")]
    #[schemars(range(min = 0, max = MAX_HISTORY))]
    pub successful_tasks_history_limit: i32,
    /// Failed, cancelled and timed-out Tasks kept.
    #[serde(default = "default_failed")]
    #[schemars(range(min = 0, max = MAX_HISTORY))]
    pub failed_tasks_history_limit: i32,
}

fn default_successful() -> i32 {
    3
}

fn default_failed() -> i32 {
    1
}

/// The Task a run creates: its labels and its spec (inline, or a template with params).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.spec.origin)").message("spec.origin is recorded by Ephemera: a scheduled Task's origin is its schedule"),
    validation = Rule::new("!has(self.spec.cancel) || !self.spec.cancel").message("a scheduled Task cannot start cancelled: suspend the schedule instead")
)]
pub struct ScheduledTask {
    /// Labels every Task of the schedule gets (besides `ephemera.dev/schedule`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The Task's spec.
    pub spec: TaskSpec,
}

/// How runs of a schedule overlap.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConcurrencyPolicy {
    /// Every run makes its Task, whatever is still active.
    #[default]
    Allow,
    /// A run is skipped while a Task of the schedule is active.
    Forbid,
    /// A run cancels the active Tasks of the schedule and makes its own.
    Replace,
}

/// What a schedule has done.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskScheduleStatus {
    /// `Ready` (the schedule and time zone are valid), with a reason and message when not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<crate::Condition>,
    /// The scheduled time of the newest run made or skipped (RFC 3339, UTC): runs are counted from
    /// here, so no time is run twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The next time a run is due (absent: none, e.g. suspended or a `runAt` done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// When a Task of the schedule last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// The Tasks of the schedule that have not finished, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ACTIVE))]
    pub active: Vec<String>,
    /// How many Tasks are active (a printer column).
    #[serde(default)]
    pub active_count: i32,
    /// The newest finished Task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<Outcome>,
    /// Runs skipped (Forbid, past the starting deadline) since the schedule was created.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: i64,
    /// Spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// How a Task of the schedule ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The Task.
    pub task: String,
    /// Its final phase.
    pub phase: crate::TaskPhase,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}
