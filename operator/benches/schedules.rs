//! Schedules at scale: 1,000 TaskSchedules firing at the same second of every minute (`* * * * *`).
//! Reports, per minute, how late the runs' Tasks appear after their slot (p50/p99, first to last),
//! the operator's CPU time, schedule reconciles per run, and its RSS before and after; beside the
//! baseline measured in the same run: the same client creating the same 1,000 Tasks at once itself
//! (what the writes alone cost on this cluster). The dev cluster runs without its kubelet.
//!
//! Run: `cargo bench -p ephemera-operator --bench schedules` (`BENCH_SCHEDULES`, `BENCH_MINUTES`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ephemera_crds::Task;
use ephemera_devcluster::testing::{bench_result, cpu_seconds, kubectl, ok};
use ephemera_devcluster::{Config, DevCluster};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const CONCURRENCY: usize = 32;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The operator's counter `name` from its metrics endpoint.
async fn counter(metrics: &str, name: &str) -> f64 {
    let text = reqwest::get(metrics).await.expect("metrics").text().await.expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Every Task added until `until` (or until `want` were), with the wall-clock millisecond each was
/// first seen.
async fn seen_tasks(tasks: Api<Task>, until: Instant, want: usize) -> Vec<(Task, i64)> {
    let mut seen = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut stream = tasks.watch(&WatchParams::default().timeout(290), "0").await.expect("watch").boxed();
    while Instant::now() < until && seen.len() < want {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(t)))) => {
                if names.insert(t.metadata.name.clone().unwrap_or_default()) {
                    seen.push((t, now_ms()));
                }
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    seen
}

fn task_json(name: &str) -> serde_json::Value {
    json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "metadata": {"name": name}, "spec": {"command": ["true"]}})
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_SCHEDULES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    // One watch (the server ends it after at most 290 s) covers the whole window: 1 to 3 minutes.
    let minutes: u64 = std::env::var("BENCH_MINUTES").ok().and_then(|s| s.parse().ok()).unwrap_or(2).clamp(1, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let cluster =
        DevCluster::start(Config { kubeconfig: Some(kubeconfig.clone()), kubelet: None, ..Config::default() })
            .await
            .expect("cluster");
    let client = ephemera_devcluster::testing::client_for(&kubeconfig).await;
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/yaml");
    ok(kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds.to_str().unwrap_or_default()], None));
    for crd in ["tasks.ephemera.dev", "taskschedules.ephemera.dev"] {
        ok(kubectl(
            &kubeconfig,
            &["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=30s"],
            None,
        ));
    }
    for ns in ["baseline", "bench"] {
        ok(kubectl(&kubeconfig, &["create", "namespace", ns], None));
    }

    // Baseline: the same client creates the n Tasks of one minute itself, all at once.
    let direct: Api<Task> = Api::namespaced(client.clone(), "baseline");
    let watch = tokio::spawn(seen_tasks(direct.clone(), Instant::now() + Duration::from_secs(120), n));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = now_ms();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = direct.clone();
            let task: Task = serde_json::from_value(task_json(&format!("d-{i}"))).expect("task");
            async move { api.create(&PostParams::default(), &task).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("direct creates");
    let direct_seen: Vec<i64> = watch.await.expect("watch").into_iter().map(|(_, at)| at).collect();
    ok(kubectl(&kubeconfig, &["delete", "tasks", "--all", "-n", "baseline", "--wait=false"], None));

    // n schedules, each firing at second 0 of every minute (no kubelet: their runs never finish).
    let schedules: Api<ephemera_crds::TaskSchedule> = Api::namespaced(client.clone(), "bench");
    futures::stream::iter(0..n)
        .map(|i| {
            let api = schedules.clone();
            let s: ephemera_crds::TaskSchedule = serde_json::from_value(json!({
                    "apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskSchedule", "metadata": {"name": format!("s-{i}")},
                    "spec": {"schedule": "* * * * *", "startingDeadlineSeconds": 50, "successfulTasksHistoryLimit": 1,
                        "failedTasksHistoryLimit": 1, "task": {"spec": {"command": ["true"]}}}
            }))
            .expect("schedule");
            async move { api.create(&PostParams::default(), &s).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("schedule creates");

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut op = Command::new(env!("CARGO_BIN_EXE_ephemera-operator"))
        .args(["--worker-image", "busybox", "--identity", "bench", "--lease-namespace", "bench"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("operator");

    // Settle: the operator lists the schedules and waits; measure from the next minute but one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ms_to_minute = 60_000 - now_ms().rem_euclid(60_000);
    tokio::time::sleep(Duration::from_millis(ms_to_minute as u64 + 30_000)).await;
    let rss_loaded = ephemera_devcluster::testing::rss_kib(op.id()) as f64 / 1024.0;
    let (cpu0, reconciles0) =
        (cpu_seconds(op.id()), counter(&metrics, "ephemera_schedule_reconcile_duration_seconds_count").await);
    let first_slot = (now_ms() / 60_000 + 1) * 60_000;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "bench");
    let until = Instant::now() + Duration::from_millis((first_slot - now_ms()) as u64 + minutes * 60_000);
    let seen = seen_tasks(tasks, until, usize::MAX).await;
    let cpu = cpu_seconds(op.id()) - cpu0;
    let reconciles = counter(&metrics, "ephemera_schedule_reconcile_duration_seconds_count").await - reconciles0;
    let runs = counter(&metrics, "ephemera_schedule_runs_total").await;
    let rss_after = ephemera_devcluster::testing::rss_kib(op.id()) as f64 / 1024.0;
    let _ = op.kill();
    let _ = op.wait();
    drop(cluster);

    // Lateness of each run: seen minus its slot, per minute.
    let mut per_minute: HashMap<i64, Vec<f64>> = HashMap::new();
    for (t, at) in &seen {
        let slot = t.metadata.annotations.as_ref().and_then(|a| a.get("ephemera.dev/scheduled-time"));
        let Some(slot) = slot.and_then(|s| s.parse::<jiff::Timestamp>().ok()) else { continue };
        let slot_ms = slot.as_millisecond();
        if slot_ms >= first_slot {
            per_minute.entry(slot_ms).or_default().push((at - slot_ms) as f64);
        }
    }
    let mut late: Vec<f64> = per_minute.values().flatten().copied().collect();
    late.sort_by(f64::total_cmp);
    let spread: Vec<f64> = per_minute
        .values()
        .map(|v| v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min))
        .collect();
    let spread_max = spread.iter().copied().fold(0.0, f64::max);
    let runs_in_window = late.len();
    let mut base: Vec<f64> = direct_seen.iter().map(|ms| (ms - t0) as f64).collect();
    base.sort_by(f64::total_cmp);
    let base_spread = base.last().copied().unwrap_or(f64::NAN);

    println!(
        "schedules bench: {n} TaskSchedules at `* * * * *`, {minutes} minute(s) measured; {runs_in_window} runs seen \
         ({} expected), {runs} made in all",
        n as u64 * minutes
    );
    println!("result: bench | metric | operator | direct | ratio");
    let result = |metric: &str, ours: f64, base: Option<f64>| bench_result("schedules", metric, ours, base);
    result("slot (or start) -> Task seen p50 (ms)", pct(&late, 0.5), Some(pct(&base, 0.5)));
    result("slot (or start) -> Task seen p99 (ms)", pct(&late, 0.99), Some(pct(&base, 0.99)));
    result("first -> last Task of a minute (ms)", spread_max, Some(base_spread));
    result("operator CPU seconds per minute", cpu / minutes as f64, None);
    result("operator CPU ms per run", cpu * 1000.0 / runs_in_window.max(1) as f64, None);
    result("schedule reconciles per run", reconciles / runs_in_window.max(1) as f64, None);
    result("operator RSS, schedules loaded (MiB)", rss_loaded, None);
    result("operator RSS after (MiB)", rss_after, None);
    println!("direct = the same client creating {n} Tasks at once itself, same run, same cluster");
}
