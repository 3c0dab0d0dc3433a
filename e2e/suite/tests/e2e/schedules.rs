//! TaskSchedules against the local cluster and the operator: `@every 2s` makes Tasks on time, each
//! named by its slot, with Allow, Forbid and Replace observable; `runAt` in the past and in the
//! future each run once; suspend holds runs and resume starts them; a schedule across an operator
//! kill makes exactly one Task per slot; history limits prune; and the schema refuses what it should.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use ephemera_crds::{Task, TaskPhase, TaskSchedule};
use ephemera_devcluster::testing::{eventually, ok};
use ephemera_e2e::stack::{operator, stack, Stack};
use jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::templates::call;

async fn schedule(s: &Stack, name: &str, spec: Value) -> TaskSchedule {
    let api: Api<TaskSchedule> = Api::namespaced(s.client.clone(), "default");
    let obj: TaskSchedule =
        serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskSchedule",
        "metadata": {"name": name}, "spec": spec}))
        .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

fn busybox(script: &str) -> Value {
    json!({"spec": {"image": "busybox", "command": ["sh", "-c", script]}})
}

/// The schedule's Tasks, by name.
async fn runs(s: &Stack, schedule: &str) -> Vec<Task> {
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let mut items =
        tasks.list(&ListParams::default().labels(&format!("ephemera.dev/schedule={schedule}"))).await.unwrap().items;
    items.sort_by_key(|t| t.metadata.name.clone());
    items
}

/// The slot a Task was made for (from its name), in seconds after the schedule's creation.
fn offset(t: &Task, created: i64) -> i64 {
    let name = t.metadata.name.clone().unwrap();
    let slot: i64 = name.rsplit('-').next().unwrap().parse().unwrap();
    let annotated: Timestamp = t.metadata.annotations.as_ref().unwrap()["ephemera.dev/scheduled-time"].parse().unwrap();
    assert_eq!(annotated.as_second(), slot, "the name and the annotation agree");
    slot - created
}

fn created(s: &TaskSchedule) -> i64 {
    s.metadata.creation_timestamp.as_ref().unwrap().0.as_second()
}

fn active(tasks: &[Task]) -> usize {
    tasks.iter().filter(|t| !t.status.as_ref().is_some_and(|s| s.phase.is_terminal())).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_two_seconds_makes_tasks_on_time_with_allow_forbid_and_replace() {
    let s = stack().await;
    let op = operator(&s.client, "op-schedules");
    let limits = json!({"successfulTasksHistoryLimit": 50, "failedTasksHistoryLimit": 50});
    let with = |policy: &str, script: &str| {
        let mut v = json!({"schedule": "@every 2s", "concurrencyPolicy": policy, "task": busybox(script)});
        v.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
        v
    };
    let allow = schedule(&s, "allow", with("Allow", "sleep 5")).await;
    let forbid = schedule(&s, "forbid", with("Forbid", "sleep 5")).await;
    let replace = schedule(&s, "replace", with("Replace", "sleep 60")).await;

    // Watch for 11 s: how many of each schedule's Tasks are active at once.
    let (mut most_allow, mut most_forbid, mut most_replace) = (0, 0, 0);
    let until = tokio::time::Instant::now() + Duration::from_secs(11);
    while tokio::time::Instant::now() < until {
        most_allow = most_allow.max(active(&runs(&s, "allow").await));
        most_forbid = most_forbid.max(active(&runs(&s, "forbid").await));
        most_replace = most_replace.max(active(&runs(&s, "replace").await));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Allow: a run every 2 s, each named by its slot, made when it is due; they overlap.
    let made = runs(&s, "allow").await;
    let slots: Vec<i64> = made.iter().map(|t| offset(t, created(&allow))).collect();
    assert!(made.len() >= 4, "{slots:?}");
    for (i, slot) in slots.iter().enumerate() {
        assert_eq!(*slot, 2 * (i as i64 + 1), "one Task per slot, none missing: {slots:?}");
    }
    for t in &made {
        let slot = offset(t, 0);
        let made_at = t.metadata.creation_timestamp.as_ref().unwrap().0.as_second();
        assert!(
            (0..=2).contains(&(made_at - slot)),
            "{} made {}s after its slot",
            t.metadata.name.clone().unwrap(),
            made_at - slot
        );
    }
    assert!(most_allow >= 2, "Allow runs overlap: at most {most_allow} active at once");
    // Forbid: never two at once, and the runs that fell while one was active were skipped.
    assert_eq!(most_forbid, 1, "Forbid keeps one active");
    let schedules: Api<TaskSchedule> = Api::namespaced(s.client.clone(), "default");
    let st = schedules.get("forbid").await.unwrap().status.unwrap();
    assert!(st.skipped >= 2, "skipped runs are counted: {st:?}");
    let forbidden = runs(&s, "forbid").await;
    assert!(forbidden.len() >= 2 && forbidden.len() < made.len(), "{} forbid vs {} allow", forbidden.len(), made.len());
    assert!(forbidden.iter().all(|t| offset(t, created(&forbid)) % 2 == 0), "Forbid runs are slots too");
    // Replace: each run cancels the one before; only the newest is left running.
    assert!(most_replace <= 2, "a replaced Task may still be stopping: {most_replace}");
    let replaced = runs(&s, "replace").await;
    let replaced_slots: Vec<i64> = replaced.iter().map(|t| offset(t, created(&replace))).collect();
    assert_eq!(
        replaced_slots,
        (1..=replaced.len() as i64).map(|k| 2 * k).collect::<Vec<_>>(),
        "Replace runs every slot"
    );
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let first = replaced[0].metadata.name.clone().unwrap();
    let t = eventually(30, "the first replaced Task is cancelled", || async {
        tasks.get(&first).await.ok().filter(|t| t.status.as_ref().is_some_and(|s| s.phase == TaskPhase::Cancelled))
    })
    .await;
    assert!(t.spec.cancel);
    let origin = t.spec.origin.unwrap();
    assert_eq!((origin.source.as_str(), origin.requester.as_str()), ("schedule", "schedule:default/replace"));
    let st = schedules.get("replace").await.unwrap().status.unwrap();
    assert_eq!(st.active.last(), replaced.last().unwrap().metadata.name.as_ref(), "{st:?}");
    assert!(st.next_schedule_time.is_some() && st.last_schedule_time.is_some(), "{st:?}");

    // kubectl shows the schedule's columns.
    let table = ok(s.dev.kubectl(&["get", "etsched"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "NEXT", "AGE"], "{table}");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn run_at_runs_once_in_the_past_or_the_future_and_suspend_holds_runs_until_resumed() {
    let s = stack().await;
    let op = operator(&s.client, "op-run-at");
    let hour_ago = Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(1)).unwrap();
    let soon = Timestamp::now().checked_add(jiff::SignedDuration::from_secs(4)).unwrap();
    schedule(
        &s,
        "past",
        json!({"runAt": hour_ago.to_string(), "task": busybox("echo past > \"$EPHEMERA_RESULT_FILE\"")}),
    )
    .await;
    schedule(&s, "future", json!({"runAt": soon.to_string(), "task": busybox("true")})).await;
    // A namespace member plants a Task under the name of a future run, with the schedule's label
    // and even its owner reference copied: the run is skipped and said so, never taken as made.
    let squat_at = Timestamp::now().checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
    let squat = schedule(&s, "squat", json!({"runAt": squat_at.to_string(), "task": busybox("true")})).await;
    let planted: Task = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": format!("squat-{}", squat_at.as_second()), "labels": {"ephemera.dev/schedule": "squat"},
            "ownerReferences": [{"apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskSchedule", "name": "squat",
                "uid": squat.metadata.uid.clone().unwrap(), "controller": true}]},
        "spec": {"image": "busybox", "command": ["sleep", "30"]}}))
    .unwrap();
    Api::<Task>::namespaced(s.client.clone(), "default").create(&PostParams::default(), &planted).await.unwrap();
    let held = schedule(&s, "held", json!({"schedule": "@every 2s", "suspend": true, "task": busybox("true")})).await;
    // A Task the API server refuses (a label value no object may carry) skips its run, loudly.
    let mut bad_labels = busybox("true");
    bad_labels["labels"] = json!({"team": "not a label value!"});
    schedule(&s, "badlabels", json!({"runAt": hour_ago.to_string(), "task": bad_labels})).await;

    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let past = format!("past-{}", hour_ago.as_second());
    let t = eventually(30, "the past runAt ran", || async {
        tasks.get(&past).await.ok().filter(|t| t.status.as_ref().is_some_and(|s| s.phase == TaskPhase::Succeeded))
    })
    .await;
    assert_eq!(t.status.unwrap().result.trim(), "past");
    assert!(runs(&s, "future").await.is_empty(), "not before its time");
    let schedules: Api<TaskSchedule> = Api::namespaced(s.client.clone(), "default");
    let st = schedules.get("future").await.unwrap().status.unwrap_or_default();
    assert_eq!(
        st.next_schedule_time.as_deref().map(|n| n.parse::<Timestamp>().unwrap().as_second()),
        Some(soon.as_second())
    );
    eventually(20, "the future runAt ran", || async { (runs(&s, "future").await.len() == 1).then_some(()) }).await;
    assert_eq!(runs(&s, "future").await[0].metadata.name.clone().unwrap(), format!("future-{}", soon.as_second()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs(&s, "past").await.len(), 1, "a runAt runs once");
    assert_eq!(runs(&s, "future").await.len(), 1, "a runAt runs once");
    let st = schedules.get("past").await.unwrap().status.unwrap();
    assert_eq!(st.next_schedule_time, None);
    let st = eventually(20, "the squatted run is skipped", || async {
        schedules.get("squat").await.ok()?.status.filter(|st| st.last_schedule_time.is_some())
    })
    .await;
    assert_eq!((st.skipped, st.active_count, st.active.len()), (1, 0, 0), "{st:?}");
    let events = ok(s.dev.kubectl(&["get", "events", "--field-selector", "involvedObject.name=squat"]));
    assert!(
        events.contains("NameTaken") && events.contains("was not made by this schedule") && !events.contains("Created"),
        "{events}"
    );

    let st = eventually(20, "the refused run is skipped", || async {
        schedules.get("badlabels").await.ok()?.status.filter(|st| st.last_schedule_time.is_some())
    })
    .await;
    assert_eq!((st.skipped, st.active_count), (1, 0), "{st:?}");
    assert!(runs(&s, "badlabels").await.is_empty());
    let events = ok(s.dev.kubectl(&["get", "events", "--field-selector", "involvedObject.name=badlabels"]));
    assert!(events.contains("TaskRefused") && events.contains("not a label value!"), "{events}");

    // Suspended: no runs; resumed: the latest missed run at once (no starting deadline), then on time.
    assert!(runs(&s, "held").await.is_empty(), "a suspended schedule makes nothing");
    let resume = json!({"spec": {"suspend": false}});
    schedules.patch("held", &PatchParams::default(), &Patch::Merge(&resume)).await.unwrap();
    let resumed_at = Timestamp::now().as_second();
    eventually(20, "the resumed schedule runs", || async { (runs(&s, "held").await.len() >= 2).then_some(()) }).await;
    let made = runs(&s, "held").await;
    let slot = offset(&made[0], created(&held)) + created(&held);
    // The operator may see the resume after a further slot has passed (a loaded machine); the slot it
    // runs is then that one. What must hold: never an older missed slot, never one not yet due.
    let made_at = made[0].metadata.creation_timestamp.as_ref().unwrap().0.as_second();
    assert!(
        slot >= resumed_at - 2 && slot <= made_at,
        "the latest missed slot ran: slot {slot}, resumed {resumed_at}, made {made_at}"
    );
    let st = schedules.get("held").await.unwrap().status.unwrap();
    assert!(st.skipped >= 1, "the older missed runs are counted: {st:?}");

    // The schema refuses what cannot be meant.
    let bad = [
        (
            json!({"schedule": "@every 2s", "runAt": soon.to_string(), "task": busybox("true")}),
            "set exactly one of schedule and runAt",
        ),
        (
            json!({"runAt": soon.to_string(), "timeZone": "Europe/Berlin", "task": busybox("true")}),
            "timeZone applies to schedule",
        ),
        (
            json!({"schedule": "@daily", "task": {"spec": {"command": ["true"], "origin": {"source": "api", "requester": "someone"}}}}),
            "a scheduled Task's origin is its schedule",
        ),
    ];
    let api: Api<TaskSchedule> = Api::namespaced(s.client.clone(), "default");
    for (i, (spec, want)) in bad.into_iter().enumerate() {
        let obj: TaskSchedule =
            serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskSchedule",
            "metadata": {"name": format!("bad-{i}")}, "spec": spec}))
            .unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(e)) => assert!(e.code == 422 && e.message.contains(want), "{want}: {e:?}"),
            other => panic!("{want}: accepted {other:?}"),
        }
    }
    let long: TaskSchedule =
        serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskSchedule",
        "metadata": {"name": "a".repeat(43)}, "spec": {"schedule": "@daily", "task": busybox("true")}}))
        .unwrap();
    let err = api.create(&PostParams::default(), &long).await.unwrap_err().to_string();
    assert!(err.contains("at most 42 characters"), "{err}");
    // A schedule the schema cannot judge is refused by the operator, readably.
    schedule(&s, "typo", json!({"schedule": "0 25 * * *", "task": busybox("true")})).await;
    let st = eventually(20, "the typo is reported", || async {
        api.get("typo").await.ok()?.status.filter(|s| !s.conditions.is_empty())
    })
    .await;
    let c = &st.conditions[0];
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidSchedule"));
    assert_eq!(c.message, "schedule \"0 25 * * *\": hour field: 25 is outside 0-23");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_across_an_operator_kill_makes_exactly_one_task_per_slot_and_prunes_its_history() {
    let s = stack().await;
    let op = operator(&s.client, "op-before");
    let sched = schedule(
        &s,
        "steady",
        json!({"schedule": "@every 2s", "startingDeadlineSeconds": 60,
        "successfulTasksHistoryLimit": 100, "task": busybox("true")}),
    )
    .await;
    let pruned = schedule(
        &s,
        "pruned",
        json!({"schedule": "@every 2s", "successfulTasksHistoryLimit": 2,
        "failedTasksHistoryLimit": 1, "task": busybox("true")}),
    )
    .await;
    eventually(20, "two runs", || async { (runs(&s, "steady").await.len() >= 2).then_some(()) }).await;
    // The operator dies; runs fall due while none is running; a new one takes over.
    op.abort();
    let _ = op.await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let during = runs(&s, "steady").await.len();
    let op = operator(&s.client, "op-after");
    let schedules: Api<TaskSchedule> = Api::namespaced(s.client.clone(), "default");
    let caught_up = Timestamp::now().as_second() + 3;
    eventually(30, "the new operator caught up", || async {
        let last: Timestamp = schedules.get("steady").await.ok()?.status?.last_schedule_time?.parse().ok()?;
        (last.as_second() >= caught_up).then_some(())
    })
    .await;
    let made = runs(&s, "steady").await;
    let mut slots: Vec<i64> = made.iter().map(|t| offset(t, created(&sched))).collect();
    slots.sort();
    let want: Vec<i64> = (1..=slots.len() as i64).map(|k| 2 * k).collect();
    assert_eq!(slots, want, "one Task per slot, none twice, none skipped inside the deadline");
    assert!(
        made.len() > during + 3,
        "the missed runs were made after the restart ({during} before, {} after)",
        made.len()
    );
    let unique: BTreeSet<String> = made.iter().map(|t| t.metadata.name.clone().unwrap()).collect();
    assert_eq!(unique.len(), made.len());

    // History: of the pruned schedule's succeeded Tasks, the newest two are kept.
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    eventually(30, "history pruned to its limit", || async {
        let all = runs(&s, "pruned").await;
        let done: Vec<&Task> =
            all.iter().filter(|t| t.status.as_ref().is_some_and(|s| s.phase == TaskPhase::Succeeded)).collect();
        (all.len() >= 2 && done.len() == 2 && offset(all.last()?, created(&pruned)) >= 10).then_some(())
    })
    .await;
    let kept = runs(&s, "pruned").await;
    assert!(kept.len() <= 3, "at most the two kept and one running: {}", kept.len());
    let st = schedules.get("pruned").await.unwrap().status.unwrap();
    assert_eq!(st.last_outcome.as_ref().map(|o| o.phase), Some(TaskPhase::Succeeded), "{st:?}");
    assert!(st.last_successful_time.is_some());
    drop(tasks);
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_creates_lists_suspends_resumes_and_deletes_schedules() {
    ephemera_e2e::tls();
    let s = stack().await;
    let op = operator(&s.client, "op-schedule-api");
    ok(s.dev.kubectl(&[
        "apply",
        "-f",
        ephemera_e2e::stack::repo().join("e2e/examples/template-greet.yaml").to_str().unwrap(),
    ]));
    let api = ephemera_e2e::api::ApiServer::start(
        &s,
        ephemera_api::auth::oidc::OidcConfig::default(),
        ephemera_api::limits::RateLimiter::new(1000, 1000.0),
    )
    .await;
    let verbs = [
        ephemera_api::auth::Verb::Create,
        ephemera_api::auth::Verb::Read,
        ephemera_api::auth::Verb::Cancel,
        ephemera_api::auth::Verb::Delete,
    ];
    let token = ephemera_e2e::api::api_token(&s, &["default"], &verbs, 1).await;
    let reader = ephemera_e2e::api::api_token(&s, &["default"], &[ephemera_api::auth::Verb::Read], 1).await;
    let http = reqwest::Client::new();
    let base = format!("{}/api/v1/namespaces/default/schedules", api.url);
    eventually(10, "the tokens are known", || async {
        (call(&http, "GET", &base, &token, None).await.0 == 200).then_some(())
    })
    .await;

    // Bad input: every wrong field named, nothing created.
    let (st, b) = call(
        &http,
        "POST",
        &base,
        &token,
        Some(json!({"name": "x".repeat(43), "schedule": "0 25 * * *",
        "task": {"name": "mine"}, "startingDeadlineSeconds": -1})),
    )
    .await;
    assert_eq!(st, 422, "{b}");
    let mut fields: Vec<&str> = b["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["name", "schedule", "startingDeadlineSeconds", "task.command", "task.name"], "{b}");
    let (st, b) = call(
        &http,
        "POST",
        &base,
        &token,
        Some(json!({"name": "t", "schedule": "@hourly",
        "task": {"template": "greet", "params": {"times": 9}}})),
    )
    .await;
    assert_eq!(st, 422);
    let mut fields: Vec<&str> = b["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["task.params.times", "task.params.who"], "{b}");
    let (st, _) = call(
        &http,
        "POST",
        &base,
        &reader,
        Some(json!({"name": "t", "schedule": "@hourly", "task": {"command": ["true"]}})),
    )
    .await;
    assert_eq!(st, 403);

    // A schedule from a template, every 2 s; its Tasks run the template.
    let body = json!({"name": "greeter", "schedule": "@every 2s", "concurrencyPolicy": "Forbid",
        "task": {"template": "greet", "params": {"who": "cron"}, "labels": {"team": "a"}}});
    let (st, b) = call(&http, "POST", &base, &token, Some(body.clone())).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        (b["template"].as_str(), b["concurrencyPolicy"].as_str()),
        (Some("ClusterTaskTemplate/greet"), Some("Forbid"))
    );
    assert_eq!(call(&http, "POST", &base, &token, Some(body)).await.0, 409, "the name is taken");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let first = eventually(30, "a run succeeded", || async {
        runs(&s, "greeter")
            .await
            .into_iter()
            .find(|t| t.status.as_ref().is_some_and(|s| s.phase == TaskPhase::Succeeded))
    })
    .await;
    assert_eq!(first.status.unwrap().result, "cron|--times=2|plain|");
    assert_eq!(first.metadata.labels.unwrap()["team"], "a");
    let (_, view) = call(&http, "GET", &format!("{base}/greeter"), &token, None).await;
    assert!(view["lastScheduleTime"].is_string() && view["ready"] == true, "{view}");
    let (_, list) = call(&http, "GET", &base, &reader, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // Stop recurring: suspend; nothing new is made; resume makes runs again.
    let (st, v) = call(&http, "POST", &format!("{base}/greeter/suspend"), &token, None).await;
    assert_eq!((st, v["suspend"].as_bool()), (200, Some(true)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = runs(&s, "greeter").await.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(runs(&s, "greeter").await.len(), before, "a suspended schedule makes nothing");
    let (_, v) = call(&http, "GET", &format!("{base}/greeter"), &token, None).await;
    assert!(v["nextScheduleTime"].is_null(), "{v}");
    assert_eq!(call(&http, "POST", &format!("{base}/greeter/resume"), &reader, None).await.0, 403);
    let (st, _) = call(&http, "POST", &format!("{base}/greeter/resume"), &token, None).await;
    assert_eq!(st, 200);
    eventually(20, "runs again", || async { (runs(&s, "greeter").await.len() > before).then_some(()) }).await;

    // Delete: the schedule goes, and its Tasks with it.
    let (st, _) = call(&http, "DELETE", &format!("{base}/greeter"), &token, None).await;
    assert_eq!(st, 202);
    assert_eq!(call(&http, "GET", &format!("{base}/greeter"), &token, None).await.0, 404);
    eventually(30, "its Tasks are deleted with it", || async { runs(&s, "greeter").await.is_empty().then_some(()) })
        .await;
    drop(tasks);
    op.abort();
}
