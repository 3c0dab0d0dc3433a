//! What a schedule does, case by case: each row is a schedule, its Tasks and the time, and the plan.

use ephemera_crds::schedule::{TaskScheduleSpec, TaskScheduleStatus};
use ephemera_crds::TaskPhase;
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::*;

const CREATED: &str = "2026-12-01T10:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(v: Value) -> TaskScheduleSpec {
    let mut base = json!({"task": {"spec": {"command": ["true"]}}});
    base.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn member(name: &str, slot: &str, phase: TaskPhase) -> Member {
    Member {
        name: name.into(),
        slot: Some(at(slot)),
        phase,
        finished: phase.is_terminal().then(|| at(slot)),
        cancelling: false,
    }
}

fn plan(spec: &TaskScheduleSpec, status: &TaskScheduleStatus, tasks: &[Member], now: &str) -> Plan {
    decide(&Seen { name: "nightly", created: at(CREATED), generation: Some(1), spec, status, tasks }, at(now))
}

fn last(s: &str) -> TaskScheduleStatus {
    TaskScheduleStatus { last_schedule_time: Some(s.into()), ..Default::default() }
}

/// A plan in one line: `create [..] cancel [..] skipped N next T`.
fn line(p: &Plan) -> String {
    let names: Vec<&str> = p.create.iter().map(|r| r.name.as_str()).collect();
    format!(
        "create {names:?} cancel {:?} skipped {} last {} next {}",
        p.cancel,
        p.status.skipped,
        p.status.last_schedule_time.as_deref().unwrap_or("-"),
        p.status.next_schedule_time.as_deref().unwrap_or("-")
    )
}

/// What, the schedule, its status, its Tasks, now, the plan.
type Row = (&'static str, TaskScheduleSpec, TaskScheduleStatus, Vec<Member>, &'static str, &'static str);

#[test]
fn runs_follow_the_schedule_and_its_concurrency_policy() {
    let every = |policy: &str| spec(json!({"schedule": "@every 2s", "concurrencyPolicy": policy}));
    let running = [member("nightly-1796119202", "2026-12-01T10:00:02Z", TaskPhase::Running)];
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        ("nothing is due right after creation", every("Allow"), TaskScheduleStatus::default(), vec![], "2026-12-01T10:00:01Z",
            r#"create [] cancel [] skipped 0 last - next 2026-12-01T10:00:02Z"#),
        ("a due slot makes its Task, named by the slot", every("Allow"), TaskScheduleStatus::default(), vec![], "2026-12-01T10:00:02Z",
            r#"create ["nightly-1796119202"] cancel [] skipped 0 last 2026-12-01T10:00:02Z next 2026-12-01T10:00:04Z"#),
        ("a slot already recorded is not made again", every("Allow"), last("2026-12-01T10:00:02Z"), vec![], "2026-12-01T10:00:03Z",
            r#"create [] cancel [] skipped 0 last 2026-12-01T10:00:02Z next 2026-12-01T10:00:04Z"#),
        ("Allow runs beside an active Task", every("Allow"), last("2026-12-01T10:00:02Z"), running.to_vec(), "2026-12-01T10:00:04Z",
            r#"create ["nightly-1796119204"] cancel [] skipped 0 last 2026-12-01T10:00:04Z next 2026-12-01T10:00:06Z"#),
        ("Forbid skips while a Task is active, and counts it", every("Forbid"), last("2026-12-01T10:00:02Z"), running.to_vec(), "2026-12-01T10:00:04Z",
            r#"create [] cancel [] skipped 1 last 2026-12-01T10:00:04Z next 2026-12-01T10:00:06Z"#),
        ("Replace cancels the active Task and runs", every("Replace"), last("2026-12-01T10:00:02Z"), running.to_vec(), "2026-12-01T10:00:04Z",
            r#"create ["nightly-1796119204"] cancel ["nightly-1796119202"] skipped 0 last 2026-12-01T10:00:04Z next 2026-12-01T10:00:06Z"#),
        ("Replace never cancels the run it made when that status write was lost", every("Replace"), TaskScheduleStatus::default(), running.to_vec(), "2026-12-01T10:00:03Z",
            r#"create [] cancel [] skipped 0 last 2026-12-01T10:00:02Z next 2026-12-01T10:00:04Z"#),
        ("nor does Forbid count that run as skipped", every("Forbid"), TaskScheduleStatus::default(), running.to_vec(), "2026-12-01T10:00:03Z",
            r#"create [] cancel [] skipped 0 last 2026-12-01T10:00:02Z next 2026-12-01T10:00:04Z"#),
        ("suspended: nothing runs and nothing is next", spec(json!({"schedule": "@every 2s", "suspend": true})), TaskScheduleStatus::default(), vec![], "2026-12-01T10:00:09Z",
            r#"create [] cancel [] skipped 0 last - next -"#),
        ("a runAt in the past runs at once", spec(json!({"runAt": "2026-12-01T09:00:00Z"})), TaskScheduleStatus::default(), vec![], "2026-12-01T10:00:01Z",
            r#"create ["nightly-1796115600"] cancel [] skipped 0 last 2026-12-01T09:00:00Z next -"#),
        ("and only once", spec(json!({"runAt": "2026-12-01T09:00:00Z"})), last("2026-12-01T09:00:00Z"), vec![], "2026-12-01T10:00:05Z",
            r#"create [] cancel [] skipped 0 last 2026-12-01T09:00:00Z next -"#),
        ("a runAt in the future waits for its time", spec(json!({"runAt": "2026-12-01T12:00:00+01:00"})), TaskScheduleStatus::default(), vec![], "2026-12-01T10:00:01Z",
            r#"create [] cancel [] skipped 0 last - next 2026-12-01T11:00:00Z"#),
        ("a runAt past its starting deadline is skipped, not run late", spec(json!({"runAt": "2026-12-01T09:00:00Z", "startingDeadlineSeconds": 60})), TaskScheduleStatus::default(), vec![], "2026-12-01T10:00:01Z",
            r#"create [] cancel [] skipped 1 last 2026-12-01T09:00:00Z next -"#),
        ("missed runs inside the starting deadline each run", spec(json!({"schedule": "@every 1m", "startingDeadlineSeconds": 150})), last("2026-12-01T10:00:00Z"), vec![], "2026-12-01T10:10:00Z",
            r#"create ["nightly-1796119680", "nightly-1796119740", "nightly-1796119800"] cancel [] skipped 7 last 2026-12-01T10:10:00Z next 2026-12-01T10:11:00Z"#),
        ("without a deadline only the latest missed run is made, as by CronJob", spec(json!({"schedule": "*/5 * * * *"})), last("2026-12-01T10:00:00Z"), vec![], "2026-12-01T10:17:00Z",
            r#"create ["nightly-1796120100"] cancel [] skipped 2 last 2026-12-01T10:15:00Z next 2026-12-01T10:20:00Z"#),
        ("Forbid catches up with the latest missed run only", spec(json!({"schedule": "@every 1m", "startingDeadlineSeconds": 600, "concurrencyPolicy": "Forbid"})), last("2026-12-01T10:00:00Z"), vec![], "2026-12-01T10:03:30Z",
            r#"create ["nightly-1796119380"] cancel [] skipped 2 last 2026-12-01T10:03:00Z next 2026-12-01T10:04:00Z"#),
    ];
    for (what, spec, status, tasks, now, want) in rows {
        assert_eq!(line(&plan(&spec, &status, &tasks, now)), want, "{what}");
    }
}

#[test]
fn a_crash_between_creating_a_run_and_recording_it_makes_the_same_run_again() {
    // The Task was created, the status write was lost: the same slot, so the same name (the create
    // finds it), and no slot in between is lost.
    let s = spec(json!({"schedule": "@every 2s", "startingDeadlineSeconds": 30}));
    let before = plan(&s, &TaskScheduleStatus::default(), &[], "2026-12-01T10:00:02Z");
    let after_restart = plan(&s, &TaskScheduleStatus::default(), &[], "2026-12-01T10:00:07Z");
    assert_eq!(before.create[0].name, "nightly-1796119202");
    let names: Vec<&str> = after_restart.create.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["nightly-1796119202", "nightly-1796119204", "nightly-1796119206"]);
}

#[test]
fn events_say_what_was_skipped_and_why() {
    let s = spec(json!({"schedule": "@every 1m", "startingDeadlineSeconds": 90}));
    let p = plan(&s, &last("2026-12-01T10:00:00Z"), &[], "2026-12-01T10:05:00Z");
    let missed = p.notes.iter().find(|n| n.reason == Reason::MissedRuns).unwrap();
    assert!(missed.warning);
    assert_eq!(
        missed.message,
        "3 run(s) from 2026-12-01T10:01:00Z to 2026-12-01T10:03:00Z skipped: past the starting deadline of 90s"
    );
    let forbid = spec(json!({"schedule": "@every 1m", "concurrencyPolicy": "Forbid"}));
    let active = [member("nightly-1", "2026-12-01T10:00:00Z", TaskPhase::Pending)];
    let p = plan(&forbid, &last("2026-12-01T10:00:00Z"), &active, "2026-12-01T10:01:00Z");
    assert_eq!(
        p.notes[0].message,
        "the run of 2026-12-01T10:01:00Z skipped: Task nightly-1 is still active (concurrencyPolicy Forbid)"
    );
}

#[test]
fn history_limits_keep_the_newest_finished_tasks_of_each_kind() {
    let s = spec(json!({"schedule": "@every 1m", "successfulTasksHistoryLimit": 2, "failedTasksHistoryLimit": 1}));
    let tasks = [
        member("s1", "2026-12-01T10:01:00Z", TaskPhase::Succeeded),
        member("s2", "2026-12-01T10:02:00Z", TaskPhase::Succeeded),
        member("f3", "2026-12-01T10:03:00Z", TaskPhase::Failed),
        member("s4", "2026-12-01T10:04:00Z", TaskPhase::Succeeded),
        member("c5", "2026-12-01T10:05:00Z", TaskPhase::Cancelled),
        member("r6", "2026-12-01T10:06:00Z", TaskPhase::Running),
    ];
    let p = plan(&s, &last("2026-12-01T10:06:00Z"), &tasks, "2026-12-01T10:06:30Z");
    assert_eq!(p.delete, ["f3", "s1"]);
    assert_eq!((p.status.active.clone(), p.status.active_count), (vec!["r6".to_string()], 1));
    let o = p.status.last_outcome.unwrap();
    assert_eq!((o.task.as_str(), o.phase), ("c5", TaskPhase::Cancelled));
    assert_eq!(p.status.last_successful_time.as_deref(), Some("2026-12-01T10:04:00Z"));
}

#[test]
fn an_invalid_schedule_makes_nothing_and_says_why() {
    let s = spec(json!({"schedule": "0 25 * * *"}));
    let p = plan(&s, &TaskScheduleStatus::default(), &[], "2026-12-01T11:00:00Z");
    assert!(p.create.is_empty() && p.after.is_none());
    let c = &p.status.conditions[0];
    assert_eq!((c.type_.as_str(), c.status.as_str(), c.reason.as_str()), ("Ready", "False", "InvalidSchedule"));
    assert_eq!(c.message, "schedule \"0 25 * * *\": hour field: 25 is outside 0-23");
}

#[test]
fn a_cron_schedule_in_a_time_zone_is_due_on_its_wall_clock() {
    let s = spec(json!({"schedule": "0 9 * * MON-FRI", "timeZone": "America/New_York"}));
    let p = plan(&s, &TaskScheduleStatus::default(), &[], "2026-12-04T15:00:00Z");
    assert_eq!(p.status.next_schedule_time.as_deref(), Some("2026-12-07T14:00:00Z"), "Monday 09:00 EST");
    assert_eq!(p.after, Some(std::time::Duration::from_secs(3 * 86400 - 3600)));
}

#[test]
fn a_long_outage_of_a_one_second_schedule_still_makes_only_the_latest_runs_once() {
    // Three days of one-second slots: more than one decision scans (MAX_SCAN).
    let now = "2026-12-04T10:00:00Z";
    let latest =
        |n: i64| -> Vec<String> { (0..n).rev().map(|k| format!("nightly-{}", at(now).as_second() - k)).collect() };
    let cases = [
        ("without a starting deadline only the latest", json!({"schedule": "@every 1s"}), latest(1)),
        (
            "within a deadline the newest hundred",
            json!({"schedule": "@every 1s", "startingDeadlineSeconds": 400_000}),
            latest(crate::decide::MAX_CATCH_UP as i64),
        ),
    ];
    for (what, s, want) in cases {
        let spec = spec(s);
        let mut status = TaskScheduleStatus::default();
        let (mut made, mut decisions) = (Vec::new(), 0);
        loop {
            let p = plan(&spec, &status, &[], now);
            made.extend(p.create.iter().map(|r| r.name.clone()));
            status = p.status;
            decisions += 1;
            if p.after != Some(std::time::Duration::ZERO) {
                break;
            }
            assert!(decisions < 10, "{what}: the scan goes on");
        }
        assert!(decisions > 1, "{what}: the outage is longer than one scan");
        assert_eq!(made, want, "{what}");
        assert_eq!(status.skipped, 3 * 86_400 - want.len() as i64, "{what}: every other slot is counted skipped");
        assert_eq!(status.last_schedule_time.as_deref(), Some(now), "{what}");
    }
}
