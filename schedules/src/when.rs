//! When a schedule runs: a cron expression in a time zone, `@every <duration>` counted from the
//! schedule's creation, or a single `runAt` time. Each run has a scheduled time (its slot); a slot
//! names its Task, so a slot is run at most once however often the operator restarts.

use std::time::Duration;

use ephemera_crds::schedule::TaskScheduleSpec;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::cron::Cron;

/// The shortest `@every` interval.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// A schedule's times.
#[derive(Clone, Debug)]
pub enum When {
    /// A cron expression read in a time zone.
    Cron(Box<Cron>, TimeZone),
    /// Every interval, from an anchor (the schedule's creation).
    Every(Duration, Timestamp),
    /// Once.
    Once(Timestamp),
}

/// Why a schedule's times cannot be known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// The `schedule` does not parse.
    #[error("schedule {0:?}: {1}")]
    Schedule(String, String),
    /// The `timeZone` is not in the time zone database.
    #[error("timeZone {0:?} is not an IANA time zone (e.g. Europe/Berlin)")]
    TimeZone(String),
    /// The `runAt` is not an RFC 3339 time.
    #[error("runAt {0:?} is not an RFC 3339 time with an offset (e.g. 2026-12-24T18:00:00+01:00)")]
    RunAt(String),
    /// Neither or both of `schedule` and `runAt`.
    #[error("set exactly one of schedule and runAt")]
    Neither,
}

/// A Go-style duration of hours, minutes and seconds (`1h30m`, `90s`, `2s`).
fn duration(s: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut digits = String::new();
    if s.is_empty() {
        return Err("the duration is empty".into());
    }
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("{s:?} is not a duration of whole h, m and s (e.g. 1h30m, 90s)")),
        };
        let n: u64 = digits.parse().map_err(|_| format!("{s:?}: a number comes before each unit"))?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("{s:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{s:?}: the last number has no unit (h, m or s)"));
    }
    Ok(Duration::from_secs(total))
}

impl When {
    /// The times of `spec`, for a schedule created at `created`.
    pub fn of(spec: &TaskScheduleSpec, created: Timestamp) -> Result<When, WhenError> {
        match (&spec.schedule, &spec.run_at) {
            (Some(s), None) => {
                let trimmed = s.trim();
                if let Some(rest) = trimmed.strip_prefix("@every") {
                    let every = duration(rest.trim()).map_err(|e| WhenError::Schedule(s.clone(), e))?;
                    if every < MIN_EVERY {
                        return Err(WhenError::Schedule(s.clone(), "the interval is at least 1s".into()));
                    }
                    return Ok(When::Every(every, created));
                }
                let cron: Cron =
                    trimmed.parse().map_err(|e: crate::cron::CronError| WhenError::Schedule(s.clone(), e.0))?;
                let name = spec.time_zone.as_deref().unwrap_or("UTC");
                let tz = TimeZone::get(name).map_err(|_| WhenError::TimeZone(name.to_string()))?;
                Ok(When::Cron(Box::new(cron), tz))
            }
            (None, Some(at)) => at.parse::<Timestamp>().map(When::Once).map_err(|_| WhenError::RunAt(at.clone())),
            _ => Err(WhenError::Neither),
        }
    }

    /// The first slot after `after` (for `Once`: its time if that is after `after`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            When::Cron(cron, tz) => cron.next_after(after, tz),
            When::Every(every, anchor) => {
                let step = i64::try_from(every.as_secs()).ok().filter(|s| *s > 0)?;
                let since = after.as_second().saturating_sub(anchor.as_second());
                let k = if since < 0 { 1 } else { since / step + 1 };
                anchor.checked_add(SignedDuration::from_secs(k.checked_mul(step)?)).ok()
            }
            When::Once(t) => (*t > after).then_some(*t),
        }
    }

    /// Where slots are counted from when none was run yet: the schedule's creation for recurring
    /// schedules; for `runAt`, any time before it (a `runAt` already past is still due).
    pub fn origin(&self, created: Timestamp) -> Timestamp {
        match self {
            When::Once(t) => t.checked_sub(SignedDuration::from_secs(1)).unwrap_or(*t),
            _ => created,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> TaskScheduleSpec {
        let mut v = json;
        v["task"] = serde_json::json!({"spec": {"command": ["true"]}});
        serde_json::from_value(v).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn every_counts_whole_intervals_from_the_schedules_creation() {
        let created = at("2026-12-01T10:00:00Z");
        let w = When::of(&spec(serde_json::json!({"schedule": "@every 1m30s"})), created).unwrap();
        assert_eq!(w.next_after(created), Some(at("2026-12-01T10:01:30Z")));
        assert_eq!(w.next_after(at("2026-12-01T10:01:30Z")), Some(at("2026-12-01T10:03:00Z")));
        assert_eq!(w.next_after(at("2026-12-01T10:02:59Z")), Some(at("2026-12-01T10:03:00Z")));
    }

    #[test]
    fn run_at_is_one_slot_even_in_the_past() {
        let created = at("2026-12-01T10:00:00Z");
        let w = When::of(&spec(serde_json::json!({"runAt": "2026-12-01T09:00:00+01:00"})), created).unwrap();
        let t = at("2026-12-01T08:00:00Z");
        assert_eq!(w.next_after(w.origin(created)), Some(t), "an hour before creation, still due");
        assert_eq!(w.next_after(t), None);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let created = at("2026-12-01T10:00:00Z");
        let rows = [
            (serde_json::json!({"schedule": "@every 0s"}), "at least 1s"),
            (serde_json::json!({"schedule": "@every 5"}), "has no unit"),
            (serde_json::json!({"schedule": "@every 1d"}), "not a duration of whole h, m and s"),
            (serde_json::json!({"schedule": "0 * * * *", "timeZone": "Mars/Olympus"}), "not an IANA time zone"),
            (serde_json::json!({"runAt": "tomorrow"}), "not an RFC 3339 time"),
            (serde_json::json!({"schedule": "0 0 * *"}), "has 4 fields"),
        ];
        for (s, want) in rows {
            let err = When::of(&spec(s.clone()), created).unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }
}
