//! Cron expressions as Kubernetes CronJob reads them (robfig/cron's standard parser): five fields,
//! minute hour day-of-month month day-of-week, each `*`, `?`, a value, a range, a list and a
//! `/step`; month and weekday names; the descriptors `@yearly` .. `@hourly`. When day-of-month and
//! day-of-week are both restricted, either matching is enough; when either is `*` or `?` (with no
//! step above 1), both must match. Written here rather than taken from a crate: the Rust cron
//! crates either count weekdays from 1 = Sunday and match both day fields together, or bring
//! chrono and its time zone database beside the jiff this project already uses.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed expression: each field as the set of values it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Either day field is unrestricted (`*`, `?`, `*/1`): both must match, else either.
    day_star: bool,
}

/// Why an expression does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY: Field = Field { name: "day of month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
};
// 7 is Sunday too, as in Vixie cron.
const WEEKDAY: Field =
    Field { name: "day of week", min: 0, max: 7, names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] };

impl Field {
    fn value(&self, s: &str) -> Result<u32, CronError> {
        let upper = s.to_ascii_uppercase();
        let named = self.names.iter().position(|n| *n == upper);
        let v = match named {
            // Names count from the field's minimum (JAN = 1, SUN = 0).
            Some(i) => u32::try_from(i).unwrap_or(0) + self.min,
            None => s
                .parse::<u32>()
                .map_err(|_| CronError(format!("{} field: {s:?} is not a number or a name", self.name)))?,
        };
        if !(self.min..=self.max).contains(&v) {
            return Err(CronError(format!("{} field: {v} is outside {}-{}", self.name, self.min, self.max)));
        }
        Ok(v)
    }

    /// The bits a field expression sets, and whether it is unrestricted as robfig/cron (and so
    /// CronJob) reads it: one of its parts is `*` or `?` with no step above 1 (`*/2` is a
    /// restriction, unlike in Vixie cron, which looks at the first character only).
    fn parse(&self, expr: &str) -> Result<(u64, bool), CronError> {
        let mut bits = 0u64;
        let mut star = false;
        for part in expr.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        CronError(format!("{} field: step {s:?} is not a positive number", self.name))
                    })?;
                    (r, Some(step))
                }
                None => (part, None),
            };
            let (lo, hi) = match range {
                "*" | "?" => {
                    star |= step.unwrap_or(1) == 1;
                    (self.min, self.max)
                }
                r => match r.split_once('-') {
                    Some((a, b)) => (self.value(a)?, self.value(b)?),
                    // `5/15` means from 5 to the end, every 15.
                    None if step.is_some() => (self.value(r)?, self.max),
                    None => {
                        let v = self.value(r)?;
                        (v, v)
                    }
                },
            };
            if lo > hi {
                return Err(CronError(format!("{} field: range {lo}-{hi} runs backwards", self.name)));
            }
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                // A step beyond the field's range ends it (and never overflows).
                let Some(next) = v.checked_add(step) else { break };
                v = next;
            }
        }
        Ok((bits, star))
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, CronError> {
        let s = s.trim();
        let expanded = match s.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            d if d.starts_with('@') => return Err(CronError(format!("unknown descriptor {s:?}"))),
            _ => s,
        };
        if expanded.starts_with("TZ=") || expanded.starts_with("CRON_TZ=") {
            return Err(CronError("set the time zone in timeZone, not in the schedule".into()));
        }
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(CronError(format!(
                "{s:?} has {} fields; a schedule has five (minute hour day-of-month month day-of-week)",
                fields.len()
            )));
        };
        let (day_bits, day_star) = DAY.parse(day)?;
        let (mut weekday_bits, weekday_star) = WEEKDAY.parse(weekday)?;
        if weekday_bits & (1 << 7) != 0 {
            weekday_bits = (weekday_bits & !(1 << 7)) | 1;
        }
        Ok(Cron {
            minutes: MINUTE.parse(minute)?.0,
            hours: HOUR.parse(hour)?.0,
            days: day_bits,
            months: MONTH.parse(month)?.0,
            weekdays: weekday_bits,
            day_star: day_star || weekday_star,
        })
    }
}

fn has(bits: u64, v: impl TryInto<u32>) -> bool {
    v.try_into().ok().is_some_and(|v: u32| v < 64 && bits & (1 << v) != 0)
}

impl Cron {
    fn day_matches(&self, d: Date) -> bool {
        let dom = has(self.days, d.day());
        let dow = has(self.weekdays, d.weekday().to_sunday_zero_offset());
        if self.day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time after `after` the expression matches, read in `tz`; `None` when it never
    /// matches within five years (e.g. `0 0 30 2 *`).
    ///
    /// A wall time that does not exist (the clock jumps forward over it) runs as if the clock had
    /// not jumped (02:30 in a gap 02:00-03:00 runs at 03:30); a wall time that happens twice (the
    /// clock goes back) runs once, at its first occurrence; no instant runs twice.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let limit = start.date().checked_add(5.years()).ok()?;
        // The next whole minute of wall time after `after`.
        let mut t = start.with().second(0).subsec_nanosecond(0).build().ok()?.checked_add(1.minute()).ok()?;
        while t.date() < limit {
            if !has(self.months, t.month()) {
                t = first_of_next_month(t.date())?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().tomorrow().ok()?.to_datetime(Time::midnight());
                continue;
            }
            if !has(self.hours, t.hour()) {
                t = t.with().minute(0).build().ok()?.checked_add(1.hour()).ok()?;
                continue;
            }
            if !has(self.minutes, t.minute()) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // `compatible`: a gap moves forward by its length, a fold takes the earlier instant.
            let at = tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if at > after {
                return Some(at);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

fn first_of_next_month(d: Date) -> Option<DateTime> {
    let first = d.first_of_month();
    first.checked_add(1.month()).ok().map(|d| d.to_datetime(Time::midnight()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(expr: &str, after: &str, tz: &str) -> Option<String> {
        let cron: Cron = expr.parse().unwrap();
        let tz = TimeZone::get(tz).unwrap();
        cron.next_after(at(after), &tz).map(|t| t.to_zoned(tz.clone()).to_string())
    }

    #[test]
    fn expressions_match_as_cronjob_reads_them() {
        let rows = [
            ("*/15 * * * *", "2026-12-01T10:07:00Z", "2026-12-01T10:15:00+00:00[UTC]"),
            ("0 9-17 * * MON-FRI", "2026-12-04T17:30:00Z", "2026-12-07T09:00:00+00:00[UTC]"),
            ("30 2 1 * *", "2026-12-01T03:00:00Z", "2027-01-01T02:30:00+00:00[UTC]"),
            // Both day fields restricted: the 1st of the month or any Monday.
            ("0 0 1 * MON", "2026-12-01T01:00:00Z", "2026-12-07T00:00:00+00:00[UTC]"),
            // A day field that is `*` (or `*/1`): both must match (every Monday).
            ("0 0 * * MON", "2026-12-01T01:00:00Z", "2026-12-07T00:00:00+00:00[UTC]"),
            ("0 0 */1 * MON", "2026-12-01T01:00:00Z", "2026-12-07T00:00:00+00:00[UTC]"),
            // `*/2` restricts, as robfig/cron reads it: odd days or Mondays (the 3rd comes first).
            ("0 0 */2 * MON", "2026-12-01T01:00:00Z", "2026-12-03T00:00:00+00:00[UTC]"),
            ("0 0 1 * */2", "2026-12-01T01:00:00Z", "2026-12-03T00:00:00+00:00[UTC]"),
            ("0 0 1,* * MON", "2026-12-01T01:00:00Z", "2026-12-07T00:00:00+00:00[UTC]"),
            ("0 0 * * 7", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00+00:00[UTC]"),
            ("5/20 * * * *", "2026-12-01T10:06:00Z", "2026-12-01T10:25:00+00:00[UTC]"),
            ("0 12 * JAN,jul *", "2026-12-01T00:00:00Z", "2027-01-01T12:00:00+00:00[UTC]"),
            ("@hourly", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00+00:00[UTC]"),
            ("@weekly", "2026-12-01T10:00:00Z", "2026-12-06T00:00:00+00:00[UTC]"),
            ("@yearly", "2026-12-01T10:00:00Z", "2027-01-01T00:00:00+00:00[UTC]"),
            ("0 0 29 2 *", "2026-12-01T00:00:00Z", "2028-02-29T00:00:00+00:00[UTC]"),
        ];
        for (expr, after, want) in rows {
            assert_eq!(next(expr, after, "UTC").as_deref(), Some(want), "{expr} after {after}");
        }
        assert_eq!(next("0 0 30 2 *", "2026-12-01T00:00:00Z", "UTC"), None, "never");
    }

    #[test]
    fn a_time_zone_is_read_on_the_wall_clock_across_daylight_saving_changes() {
        // Europe/Berlin springs forward on 2027-03-28 at 02:00 (to 03:00) and falls back on
        // 2026-10-25 at 03:00 (to 02:00).
        let b = "Europe/Berlin";
        assert_eq!(
            next("0 9 * * *", "2026-12-01T09:00:00Z", b).as_deref(),
            Some("2026-12-02T09:00:00+01:00[Europe/Berlin]")
        );
        // The gap: 02:30 does not exist that day and runs at 03:30, once.
        assert_eq!(
            next("30 2 * * *", "2027-03-27T12:00:00Z", b).as_deref(),
            Some("2027-03-28T03:30:00+02:00[Europe/Berlin]")
        );
        // The fold: 02:30 happens twice and runs at its first occurrence only.
        assert_eq!(
            next("30 2 * * *", "2026-10-24T12:00:00Z", b).as_deref(),
            Some("2026-10-25T02:30:00+02:00[Europe/Berlin]")
        );
        assert_eq!(
            next("30 2 * * *", "2026-10-25T00:30:00Z", b).as_deref(),
            Some("2026-10-26T02:30:00+01:00[Europe/Berlin]"),
            "not again in the repeated hour"
        );
        // Every 30 minutes through the gap: 02:00 and 02:30 land on 03:00 and 03:30, each once.
        let cron: Cron = "*/30 * * * *".parse().unwrap();
        let tz = TimeZone::get(b).unwrap();
        let mut t = at("2027-03-28T00:15:00Z");
        let mut seen = Vec::new();
        for _ in 0..4 {
            t = cron.next_after(t, &tz).unwrap();
            seen.push(t.to_zoned(tz.clone()).time().to_string());
        }
        assert_eq!(seen, ["01:30:00", "03:00:00", "03:30:00", "04:00:00"]);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let rows = [
            ("* * * *", "has 4 fields"),
            ("61 * * * *", "minute field: 61 is outside 0-59"),
            ("* * * FOO *", "month field: \"FOO\" is not a number or a name"),
            ("*/0 * * * *", "step \"0\" is not a positive number"),
            ("5-1 * * * *", "range 5-1 runs backwards"),
            ("@fortnightly", "unknown descriptor"),
            ("TZ=UTC 0 * * * *", "set the time zone in timeZone"),
            ("5/4294967295 99 * * *", "hour field: 99 is outside 0-23"),
        ];
        for (expr, want) in rows {
            let err = expr.parse::<Cron>().unwrap_err().0;
            assert!(err.contains(want), "{expr}: {err}");
        }
    }
}
