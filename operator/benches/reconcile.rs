//! Operator throughput: 1,000 Tasks created at once in a queue without a concurrency limit. Reports
//! Tasks reconciled to a created Pod per second, create→Pod-created p50/p99 and the operator's RSS,
//! beside the baseline measured in the same run: the same client creating the same 1,000 Pods
//! directly (no operator). The dev cluster runs without its kubelet, so only the operator is timed.
//!
//! Then the steady case: Tasks created at a fixed rate (`BENCH_RATE`, 50/s, for `BENCH_STEADY_SECS`,
//! 20 s), create→Pod p50/p99 beside Pods created directly at the same rate. Tasks are created as
//! Ephemera's REST API, webhooks and schedules create them: with the operator's finalizer on.
//!
//! Run: `cargo bench -p ephemera-operator --bench reconcile` (`BENCH_TASKS` changes the count).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ephemera_crds::Task;
use ephemera_devcluster::testing::{bench_result, cpu_seconds, kubectl, ok, percentile_ms, rss_mib};
use ephemera_devcluster::{Config, DevCluster};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

const CONCURRENCY: usize = 32;

/// Waits for `n` Pods to appear in `ns`; returns the instant each was first seen.
async fn seen_pods(pods: Api<Pod>, n: usize) -> HashMap<String, Instant> {
    let mut seen = HashMap::new();
    let mut stream = pods.watch(&WatchParams::default().timeout(290), "0").await.expect("watch").boxed();
    let deadline = Instant::now() + Duration::from_secs(280);
    while seen.len() < n && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(p)))) => {
                seen.entry(p.metadata.name.unwrap_or_default()).or_insert_with(Instant::now);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    seen
}

/// Creates `m` objects at `rate` per second, each create on its own task so a slow one never
/// delays the next; returns each object's name (as the Pod watch will see it) and when its create
/// was sent.
async fn paced<F, Fut>(m: usize, rate: f64, make: F) -> Vec<(String, Instant)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = (String, Instant)> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut running = Vec::with_capacity(m);
    for i in 0..m {
        tick.tick().await;
        running.push(tokio::spawn(make(i)));
    }
    futures::future::join_all(running).await.into_iter().map(|r| r.expect("create")).collect()
}

/// Create→seen of every object seen, sorted.
fn latencies(starts: &[(String, Instant)], seen: &HashMap<String, Instant>) -> Vec<Duration> {
    let mut lat: Vec<Duration> =
        starts.iter().filter_map(|(name, s)| seen.get(name).map(|t| t.duration_since(*s))).collect();
    lat.sort();
    lat
}

fn task(name: &str) -> Task {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name, "finalizers": [ephemera_crds::CLEANUP_FINALIZER]},
        "spec": {"command": ["true"]},
    }))
    .expect("task")
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(
        serde_json::json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .expect("pod")
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_TASKS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let cluster =
        DevCluster::start(Config { kubeconfig: Some(kubeconfig.clone()), kubelet: None, ..Config::default() })
            .await
            .expect("cluster");
    let client = ephemera_devcluster::testing::client_for(&kubeconfig).await;
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/yaml");
    ok(kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds.to_str().unwrap_or_default()], None));
    ok(kubectl(&kubeconfig, &["wait", "--for=condition=Established", "crd/tasks.ephemera.dev", "--timeout=30s"], None));
    let steady_rate: f64 = std::env::var("BENCH_RATE").ok().and_then(|s| s.parse().ok()).unwrap_or(50.0);
    let steady_secs: f64 = std::env::var("BENCH_STEADY_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20.0);
    let m = (steady_rate * steady_secs) as usize;
    for ns in ["baseline", "bench", "steady-baseline", "steady"] {
        ok(kubectl(&kubeconfig, &["create", "namespace", ns], None));
    }

    // Baseline: the same client creates n Pods directly.
    let direct: Api<Pod> = Api::namespaced(client.clone(), "baseline");
    let watcher = tokio::spawn(seen_pods(direct.clone(), n));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let starts: Vec<(String, Instant)> = futures::stream::iter(0..n)
        .map(|i| {
            let api = direct.clone();
            async move {
                let start = Instant::now();
                api.create(&PostParams::default(), &pod(&format!("direct-{i}")))
                    .await
                    .map(|_| (format!("direct-{i}"), start))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .expect("direct creates");
    let seen = watcher.await.expect("watch");
    let base_rate = n as f64 / seen.values().max().map_or(t0.elapsed(), |last| last.duration_since(t0)).as_secs_f64();
    let base_lat = latencies(&starts, &seen);
    // The same client creating Pods directly at the steady rate.
    let direct: Api<Pod> = Api::namespaced(client.clone(), "steady-baseline");
    let watcher = tokio::spawn(seen_pods(direct.clone(), m));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let starts = paced(m, steady_rate, |i| {
        let api = direct.clone();
        async move {
            let start = Instant::now();
            api.create(&PostParams::default(), &pod(&format!("steady-{i}"))).await.expect("create");
            (format!("steady-{i}"), start)
        }
    })
    .await;
    let steady_base_lat = latencies(&starts, &watcher.await.expect("watch"));

    // The operator, as its own process, reconciling n Tasks.
    let mut op = Command::new(env!("CARGO_BIN_EXE_ephemera-operator"))
        .args([
            "--worker-image",
            "busybox",
            "--metrics-addr",
            "127.0.0.1:0",
            "--identity",
            "bench",
            "--lease-namespace",
            "bench",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("operator");
    let rss_idle = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss_mib(op.id())
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let tasks: Api<Task> = Api::namespaced(client.clone(), "bench");
    let watcher = tokio::spawn(seen_pods(pods, n));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu0 = cpu_seconds(op.id());
    let t0 = Instant::now();
    let starts: Vec<(String, Instant)> = futures::stream::iter(0..n)
        .map(|i| {
            let api = tasks.clone();
            async move {
                let start = Instant::now();
                api.create(&PostParams::default(), &task(&format!("t-{i}"))).await.map(|_| (format!("t-{i}-1"), start))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .expect("task creates");
    let seen = watcher.await.expect("watch");
    // What the burst cost the operator: every Task to its Pod, and the status writes on the way.
    let cpu_per_task = (cpu_seconds(op.id()) - cpu0) * 1000.0 / n as f64;
    let rate =
        seen.len() as f64 / seen.values().max().map_or(t0.elapsed(), |last| last.duration_since(t0)).as_secs_f64();
    let lat = latencies(&starts, &seen);
    let rss = rss_mib(op.id());
    // Steady: Tasks at the same rate as the direct Pods above.
    let steady: Api<Task> = Api::namespaced(client.clone(), "steady");
    let watcher = tokio::spawn(seen_pods(Api::namespaced(client.clone(), "steady"), m));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let starts = paced(m, steady_rate, |i| {
        let api = steady.clone();
        async move {
            let start = Instant::now();
            api.create(&PostParams::default(), &task(&format!("s-{i}"))).await.expect("create");
            (format!("s-{i}-1"), start)
        }
    })
    .await;
    let steady_lat = latencies(&starts, &watcher.await.expect("watch"));
    let rss_steady = rss_mib(op.id());
    let _ = op.kill();
    let _ = op.wait();
    drop(cluster);

    println!(
        "operator bench: {n} Tasks created at once (concurrency {CONCURRENCY}), no queue limit; {} Pods created",
        seen.len()
    );
    println!("result: bench | metric | operator | direct | ratio");
    let result =
        |metric: &str, ours: f64, base: Option<f64>| bench_result("operator, Tasks -> Pods", metric, ours, base);
    result("Pods created per second", rate, Some(base_rate));
    result("create->Pod p50 (ms)", percentile_ms(&lat, 0.5), Some(percentile_ms(&base_lat, 0.5)));
    result("create->Pod p99 (ms)", percentile_ms(&lat, 0.99), Some(percentile_ms(&base_lat, 0.99)));
    result(
        &format!("steady {steady_rate}/s: create->Pod p50 (ms)"),
        percentile_ms(&steady_lat, 0.5),
        Some(percentile_ms(&steady_base_lat, 0.5)),
    );
    result(
        &format!("steady {steady_rate}/s: create->Pod p99 (ms)"),
        percentile_ms(&steady_lat, 0.99),
        Some(percentile_ms(&steady_base_lat, 0.99)),
    );
    result("operator CPU per Task in the burst (ms)", cpu_per_task, None);
    result("operator RSS idle (MiB)", rss_idle, None);
    result(&format!("operator RSS, {n} Tasks cached (MiB)"), rss, None);
    result(&format!("operator RSS, {} Tasks cached (MiB)", n + m), rss_steady, None);
    println!("direct = the same client creating the same number of Pods itself, same run, same cluster");
}
