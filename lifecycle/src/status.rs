//! Editing a Task's status: conditions, the bounded result, and the status as it is written (the
//! event ring belongs to the stored object, which the progress intake appends to).

use ephemera_crds::task::MAX_RESULT_BYTES;
use ephemera_crds::{Condition, ConditionType, EventKind, ProgressEvent, Reason, TaskStatus};
use k8s_openapi::jiff::Timestamp;

/// RFC 3339 at second precision, as the operator writes times in status.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A time written by [`rfc3339`] (or any RFC 3339 time).
pub fn parse(ts: &str) -> Option<Timestamp> {
    ts.parse().ok()
}

/// The result cut to what status keeps, saying so when it was cut.
pub fn truncate(mut s: String) -> String {
    if s.len() > MAX_RESULT_BYTES {
        let mut cut = MAX_RESULT_BYTES - 20;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n[truncated]");
    }
    s
}

/// Sets a condition; its transition time moves only when its status does.
pub fn set_condition(
    status: &mut TaskStatus,
    type_: ConditionType,
    ok: bool,
    reason: &Reason,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let value = if ok { "True" } else { "False" };
    match status.conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Some(rfc3339(now));
            }
            c.status = value.into();
            c.reason = reason.as_str().into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => status.conditions.push(Condition {
            type_: type_.as_str().into(),
            status: value.into(),
            reason: reason.as_str().into(),
            message: message.into(),
            last_transition_time: Some(rfc3339(now)),
            observed_generation: generation,
        }),
    }
}

/// Removes a condition.
pub fn clear_condition(status: &mut TaskStatus, type_: ConditionType) {
    status.conditions.retain(|c| c.type_ != type_.as_str());
}

/// Whether a condition is present with status `False`.
pub fn is_false(status: &TaskStatus, type_: ConditionType) -> bool {
    status.conditions.iter().any(|c| c.type_ == type_.as_str() && c.status == "False")
}

/// The status to write over `stored`, or `None` when nothing would change. The event ring and the
/// worker's counters are taken from `stored` (the caller's copy may be older, and the progress intake
/// appends to it); a phase change adds a phase event, and a new attempt resets the worker's sequence.
pub fn for_write(stored: Option<&TaskStatus>, mut next: TaskStatus, now: Timestamp, ring: usize) -> Option<TaskStatus> {
    let before = stored.cloned().unwrap_or_default();
    next.progress = before.progress;
    next.last_seq = before.last_seq;
    next.progress_compacted = before.progress_compacted;
    next.progress_dropped = before.progress_dropped;
    next.worker_seq = if next.attempt == before.attempt { before.worker_seq } else { 0 };
    if next.phase != before.phase {
        let event = ProgressEvent {
            seq: 0,
            kind: EventKind::Phase,
            phase: Some(next.phase),
            attempt: next.attempt,
            time: rfc3339(now),
            percent: None,
            message: next.message.chars().take(1024).collect(),
        };
        next.push_events([event], ring);
    }
    (stored != Some(&next)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::TaskPhase;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_flips() {
        let mut s = TaskStatus::default();
        let t = ConditionType::QueueAccepted;
        set_condition(&mut s, t, false, &Reason::UnknownQueue, "no", None, at("2026-12-01T10:00:00Z"));
        set_condition(&mut s, t, false, &Reason::UnknownQueue, "still no", None, at("2026-12-01T10:05:00Z"));
        assert_eq!(s.conditions[0].last_transition_time.as_deref(), Some("2026-12-01T10:00:00Z"));
        set_condition(&mut s, t, true, &Reason::QueueFound, "", Some(2), at("2026-12-01T10:06:00Z"));
        let c = &s.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "QueueFound"));
        assert_eq!(c.last_transition_time.as_deref(), Some("2026-12-01T10:06:00Z"));
        assert_eq!(s.conditions.len(), 1);
    }

    #[test]
    fn a_write_keeps_the_stored_ring_and_adds_one_event_per_phase_change() {
        let now = at("2026-12-01T10:00:00Z");
        let mut stored = TaskStatus { attempt: 1, worker_seq: 7, ..Default::default() };
        stored.push_events(
            [ProgressEvent {
                seq: 0,
                kind: EventKind::Progress,
                phase: None,
                attempt: 1,
                time: rfc3339(now),
                percent: Some(50),
                message: "half".into(),
            }],
            100,
        );
        // The caller's copy predates the progress event.
        let unchanged = TaskStatus { attempt: 1, ..Default::default() };
        assert_eq!(for_write(Some(&stored), unchanged, now, 100), None, "nothing of the operator's changed");
        let running = TaskStatus { attempt: 1, phase: TaskPhase::Running, ..Default::default() };
        let w = for_write(Some(&stored), running, now, 100).unwrap();
        assert_eq!(w.progress.len(), 2);
        assert_eq!(
            (w.progress[1].kind, w.progress[1].phase, w.progress[1].seq),
            (EventKind::Phase, Some(TaskPhase::Running), 2)
        );
        assert_eq!(w.worker_seq, 7, "same attempt: the worker's sequence carries on");
        let retry = TaskStatus { attempt: 2, phase: TaskPhase::Running, ..Default::default() };
        assert_eq!(for_write(Some(&stored), retry, now, 100).unwrap().worker_seq, 0, "a new attempt starts over");
    }

    #[test]
    fn results_are_cut_on_a_character_boundary_and_say_so() {
        let long = "é".repeat(MAX_RESULT_BYTES);
        let cut = truncate(long);
        assert!(cut.len() <= MAX_RESULT_BYTES && cut.ends_with("[truncated]"));
        assert_eq!(truncate("short".into()), "short");
    }
}
