//! What a schedule does now: from its spec and status, its Tasks and the time, which runs are due,
//! which are made and which skipped (and why), which active Tasks a `Replace` cancels, which finished
//! Tasks the history limits delete, the status to write and when to look again.
//!
//! Crash safety comes from two facts: a run's Task is named by its slot (`<schedule>-<unix seconds>`),
//! so creating it twice finds the first; and `lastScheduleTime` is written only after the run's Task
//! exists, so a run interrupted by a crash is made again (and found) rather than lost.

use std::collections::VecDeque;
use std::time::Duration;

use ephemera_crds::schedule::{ConcurrencyPolicy, Outcome, TaskScheduleSpec, TaskScheduleStatus, MAX_ACTIVE};
use ephemera_crds::{Condition, TaskPhase};
use jiff::{SignedDuration, Timestamp};

use crate::when::When;

/// Most runs made at once when missed runs are caught up (older ones are skipped, and said so).
pub const MAX_CATCH_UP: usize = 100;
/// Most slots looked at in one decision (a long outage of a one-second schedule goes on next time).
const MAX_SCAN: usize = 200_000;

/// One Task of the schedule, as the decision needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its slot (from its annotation).
    pub slot: Option<Timestamp>,
    /// Its phase.
    pub phase: TaskPhase,
    /// When it finished.
    pub finished: Option<Timestamp>,
    /// A cancel was requested already.
    pub cancelling: bool,
}

/// What the decision looks at.
#[derive(Clone, Debug)]
pub struct Seen<'a> {
    /// The schedule's name (its Tasks are named after it).
    pub name: &'a str,
    /// When it was created.
    pub created: Timestamp,
    /// Its generation.
    pub generation: Option<i64>,
    /// Its spec.
    pub spec: &'a TaskScheduleSpec,
    /// Its status as stored.
    pub status: &'a TaskScheduleStatus,
    /// Its Tasks.
    pub tasks: &'a [Member],
}

/// A run to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Its slot.
    pub slot: Timestamp,
    /// Its Task's name.
    pub name: String,
}

impl Run {
    /// The Event once its Task is created.
    pub fn created(&self) -> Note {
        Note {
            warning: false,
            reason: Reason::Created,
            message: format!("created Task {} for the run of {}", self.name, self.slot),
        }
    }

    /// The Event when the API server refused its Task (the schedule's Task, not the moment, is
    /// wrong: invalid labels, a policy), so the run was skipped rather than retried for ever.
    pub fn refused(&self, why: &str) -> Note {
        let why: String = why.chars().take(512).collect();
        Note {
            warning: true,
            reason: Reason::TaskRefused,
            message: format!("the run of {} skipped: the API server refused Task {}: {why}", self.slot, self.name),
        }
    }

    /// The Event when its Task's name is held by a Task the schedule did not make.
    pub fn name_taken(&self) -> Note {
        Note {
            warning: true,
            reason: Reason::NameTaken,
            message: format!(
                "the run of {} skipped: a Task named {} exists and was not made by this schedule",
                self.slot, self.name
            ),
        }
    }
}

/// Why the operator records an Event on a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The schedule, its time zone or its `runAt` is invalid.
    InvalidSchedule,
    /// The schedule is valid.
    Ready,
    /// A run's Task was made.
    Created,
    /// Runs were missed (operator down, schedule suspended) and are past the starting deadline.
    MissedRuns,
    /// A run was skipped: `Forbid` and a Task still active.
    ConcurrencyForbidden,
    /// Active Tasks were cancelled for a new run (`Replace`).
    Replaced,
    /// A run's Task name is held by a Task the schedule did not make, so the run was skipped.
    NameTaken,
    /// The API server refused a run's Task as invalid, so the run was skipped.
    TaskRefused,
}

impl Reason {
    /// As written in events and conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidSchedule => "InvalidSchedule",
            Reason::Ready => "Ready",
            Reason::Created => "Created",
            Reason::MissedRuns => "MissedRuns",
            Reason::ConcurrencyForbidden => "ConcurrencyForbidden",
            Reason::Replaced => "Replaced",
            Reason::NameTaken => "NameTaken",
            Reason::TaskRefused => "TaskRefused",
        }
    }
}

/// An Event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// Its reason.
    pub reason: Reason,
    /// Its message.
    pub message: String,
}

/// What to do, in this order: cancel, create (each created run adds [`Run::created`] to the notes,
/// each name held by a stranger [`Run::name_taken`] and a skip), write the status, delete, record
/// the notes, look again after `after`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Active Tasks to cancel (`Replace`).
    pub cancel: Vec<String>,
    /// Runs to make.
    pub create: Vec<Run>,
    /// The status to write (after the creates succeeded).
    pub status: TaskScheduleStatus,
    /// Finished Tasks past the history limits.
    pub delete: Vec<String>,
    /// Events.
    pub notes: Vec<Note>,
    /// When the next run is due (None: nothing is scheduled; a change wakes the schedule).
    pub after: Option<Duration>,
}

/// The Task name of a run.
pub fn task_name(schedule: &str, slot: Timestamp) -> String {
    format!("{schedule}-{}", slot.as_second())
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

fn parse(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|s| s.parse().ok())
}

fn set_ready(
    status: &mut TaskScheduleStatus,
    ok: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let value = if ok { "True" } else { "False" };
    let keep_time = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == value)
        .and_then(|c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.push(Condition {
        type_: "Ready".into(),
        status: value.into(),
        reason: reason.as_str().into(),
        message,
        last_transition_time: keep_time.or_else(|| Some(rfc3339(now))),
        observed_generation: generation,
    });
}

/// The finished Tasks past the history limits, newest kept.
fn past_history(spec: &TaskScheduleSpec, tasks: &[Member]) -> Vec<String> {
    let mut finished: Vec<&Member> = tasks.iter().filter(|t| t.phase.is_terminal()).collect();
    finished.sort_by(|a, b| (b.slot, &b.name).cmp(&(a.slot, &a.name)));
    let limit = |n: i32| usize::try_from(n).unwrap_or(0);
    let (mut ok, mut failed) = (0, 0);
    let mut out = Vec::new();
    for t in finished {
        let (seen, max) = if t.phase == TaskPhase::Succeeded {
            (&mut ok, limit(spec.successful_tasks_history_limit))
        } else {
            (&mut failed, limit(spec.failed_tasks_history_limit))
        };
        *seen += 1;
        if *seen > max {
            out.push(t.name.clone());
        }
    }
    out
}

fn describe(slots: &[Timestamp]) -> String {
    match (slots.first(), slots.last()) {
        (Some(a), Some(b)) if a != b => format!("{} run(s) from {a} to {b}", slots.len()),
        (Some(a), _) => format!("the run of {a}"),
        _ => "no run".into(),
    }
}

/// The plan for a schedule at `now`.
pub fn decide(seen: &Seen<'_>, now: Timestamp) -> Plan {
    let spec = seen.spec;
    let mut status = seen.status.clone();
    status.observed_generation = seen.generation;
    let mut notes = Vec::new();

    // What its Tasks say.
    let mut active: Vec<&Member> = seen.tasks.iter().filter(|t| !t.phase.is_terminal()).collect();
    active.sort_by(|a, b| (a.slot, &a.name).cmp(&(b.slot, &b.name)));
    status.active = active.iter().take(MAX_ACTIVE).map(|t| t.name.clone()).collect();
    status.active_count = i32::try_from(active.len()).unwrap_or(i32::MAX);
    let newest_finished = seen.tasks.iter().filter(|t| t.phase.is_terminal()).max_by_key(|t| (t.finished, t.slot));
    if let Some(t) = newest_finished {
        status.last_outcome = Some(Outcome { task: t.name.clone(), phase: t.phase, time: t.finished.map(rfc3339) });
    }
    let succeeded = seen.tasks.iter().filter(|t| t.phase == TaskPhase::Succeeded).filter_map(|t| t.finished).max();
    if let Some(s) = succeeded.filter(|s| parse(status.last_successful_time.as_deref()).is_none_or(|l| *s > l)) {
        status.last_successful_time = Some(rfc3339(s));
    }
    let delete = past_history(spec, seen.tasks);
    let mut plan = Plan { cancel: Vec::new(), create: Vec::new(), status, delete, notes: Vec::new(), after: None };

    let when = match When::of(spec, seen.created) {
        Ok(w) => w,
        Err(e) => {
            set_ready(&mut plan.status, false, Reason::InvalidSchedule, e.to_string(), seen.generation, now);
            plan.status.next_schedule_time = None;
            return plan;
        }
    };
    set_ready(&mut plan.status, true, Reason::Ready, String::new(), seen.generation, now);
    if spec.suspend {
        // Runs falling while suspended are missed (as by CronJob); on resume the starting
        // deadline decides which of them still run.
        plan.status.next_schedule_time = None;
        return plan;
    }

    // The slots due since the last one looked at.
    let mut t = parse(plan.status.last_schedule_time.as_deref()).unwrap_or_else(|| when.origin(seen.created));
    let mut due: VecDeque<Timestamp> = VecDeque::new();
    let (mut scanned, mut dropped) = (0usize, Vec::new());
    while let Some(slot) = when.next_after(t).filter(|s| *s <= now) {
        due.push_back(slot);
        if due.len() > MAX_CATCH_UP {
            dropped.extend(due.pop_front());
        }
        t = slot;
        scanned += 1;
        if scanned >= MAX_SCAN {
            break;
        }
    }
    // Cut short, this scan did not reach now: none of its slots is among the latest, as more are
    // due after them. All but the newest MAX_CATCH_UP are missed; those are scanned again next
    // time with the rest, so a long outage still makes only the latest (or the last 100) once.
    let truncated = scanned >= MAX_SCAN && when.next_after(t).is_some_and(|s| s <= now);
    if truncated {
        due.clear();
    }
    let last = if truncated { dropped.last().copied() } else { due.back().copied() };
    // A due slot whose Task exists was made already: its status write was lost (a conflict, a
    // crash) or the cache is behind. It is neither made again, nor skipped, nor replaced by itself.
    let made: std::collections::HashSet<&str> = seen.tasks.iter().map(|t| t.name.as_str()).collect();
    let unmade = |s: &Timestamp| !made.contains(task_name(seen.name, *s).as_str());
    due.retain(unmade);
    dropped.retain(unmade);
    // Within the starting deadline, each missed slot runs; without one, only the latest (CronJob).
    let deadline = spec.starting_deadline_seconds.map(SignedDuration::from_secs);
    let (late, mut runnable): (Vec<Timestamp>, Vec<Timestamp>) = match deadline {
        Some(d) => due.iter().partition(|s| now.duration_since(**s) > d),
        None => {
            let mut all: Vec<Timestamp> = due.iter().copied().collect();
            let latest = all.pop();
            (all, latest.into_iter().collect())
        }
    };
    let mut missed: Vec<Timestamp> = dropped;
    missed.extend(late);
    // Forbid and Replace keep at most one Task active: of several due runs only the latest is made.
    if spec.concurrency_policy != ConcurrencyPolicy::Allow && runnable.len() > 1 {
        let latest = runnable.split_off(runnable.len() - 1);
        missed.append(&mut runnable);
        runnable = latest;
    }
    let skipped_missed = i64::try_from(missed.len()).unwrap_or(i64::MAX);
    if !missed.is_empty() {
        let why = match deadline {
            Some(d) => format!("past the starting deadline of {}s", d.as_secs()),
            None => "not the latest (without startingDeadlineSeconds only the latest missed run is made)".into(),
        };
        let what = if spec.concurrency_policy != ConcurrencyPolicy::Allow && deadline.is_some() {
            format!("{why}, or not the latest under concurrencyPolicy {:?}", spec.concurrency_policy)
        } else {
            why
        };
        notes.push(Note {
            warning: true,
            reason: Reason::MissedRuns,
            message: format!("{} skipped: {what}", describe(&missed)),
        });
    }
    plan.status.skipped += skipped_missed;

    let live: Vec<&str> = active.iter().map(|t| t.name.as_str()).collect();
    match spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !live.is_empty() && !runnable.is_empty() => {
            let message = format!(
                "{} skipped: Task {} is still active (concurrencyPolicy Forbid)",
                describe(&runnable),
                live.join(", ")
            );
            notes.push(Note { warning: false, reason: Reason::ConcurrencyForbidden, message });
            plan.status.skipped += i64::try_from(runnable.len()).unwrap_or(i64::MAX);
            runnable.clear();
        }
        ConcurrencyPolicy::Replace if !live.is_empty() && !runnable.is_empty() => {
            plan.cancel = active.iter().filter(|t| !t.cancelling).map(|t| t.name.clone()).collect();
            if !plan.cancel.is_empty() {
                let message = format!("cancelled {} for {}", plan.cancel.join(", "), describe(&runnable));
                notes.push(Note { warning: false, reason: Reason::Replaced, message });
            }
        }
        _ => {}
    }
    for slot in runnable {
        plan.create.push(Run { slot, name: task_name(seen.name, slot) });
    }
    if let Some(last) = last {
        plan.status.last_schedule_time = Some(rfc3339(last));
    }
    let from = last.map_or(now, |l| l.max(now));
    let next = if truncated { Some(now) } else { when.next_after(from) };
    plan.status.next_schedule_time = next.map(rfc3339);
    plan.after = next.map(|n| n.duration_since(now).unsigned_abs());
    plan.notes = notes;
    plan
}
