//! One hostile Task's write amplification through progress intake. The command can read its
//! attempt's reporting token, so the bench plays that command: for `BENCH_SECONDS` it posts 20
//! batches a second, each as large as a request body may be (10 events of 1,000 control characters),
//! straight to the API server. Measured on a watch of the Task (what every API server replica and every other watcher
//! receives): status writes per second and bytes per second, against the bytes the attacker posted
//! (amplification = watched bytes / posted bytes). A well-behaved Task (one progress line a second)
//! is the baseline in the same run.
//!
//! Run: `cargo bench -p ephemera-e2e --bench progress_flood`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_api::auth::oidc::OidcConfig;
use ephemera_api::limits::RateLimiter;
use ephemera_crds::{Task, TaskPhase};
use ephemera_e2e::api::{ApiServer, Live};
use ephemera_e2e::stack::{config, create, operator_with, phase, stack};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::json;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-bench-key";

struct Watched {
    writes: AtomicU64,
    bytes: AtomicU64,
}

/// Counts the Task's updates and their size while `load` runs.
async fn watch_while(tasks: &Api<Task>, name: &str, load: impl std::future::Future<Output = u64>) -> (u64, u64, u64) {
    let seen = Arc::new(Watched { writes: AtomicU64::new(0), bytes: AtomicU64::new(0) });
    let counter = seen.clone();
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(tasks.clone(), cfg);
    let watching = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            if let watcher::Event::Apply(t) = ev {
                counter.writes.fetch_add(1, Ordering::Relaxed);
                counter.bytes.fetch_add(serde_json::to_vec(&t).map(|v| v.len() as u64).unwrap_or(0), Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (w0, b0) = (seen.writes.load(Ordering::Relaxed), seen.bytes.load(Ordering::Relaxed));
    let posted = load.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watching.abort();
    (seen.writes.load(Ordering::Relaxed) - w0, seen.bytes.load(Ordering::Relaxed) - b0, posted)
}

/// Posts `per_second` batches of `events` events (message `msg`) for `secs` seconds; returns bytes posted.
async fn post(url: String, token: String, per_second: u32, events: usize, msg: String, secs: u64) -> u64 {
    let http = reqwest::Client::new();
    let posted = Arc::new(AtomicU64::new(0));
    let mut wseq = 0i64;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut inflight = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let batch: Vec<_> = (0..events)
            .map(|_| {
                wseq += 1;
                json!({"wseq": wseq, "time": "2026-12-01T00:00:00Z", "message": msg})
            })
            .collect();
        let body = serde_json::to_vec(&json!({"attempt": 1, "events": batch})).unwrap_or_default();
        let (http, url, token, posted) = (http.clone(), url.clone(), token.clone(), posted.clone());
        inflight.push(tokio::spawn(async move {
            posted.fetch_add(body.len() as u64, Ordering::Relaxed);
            let _ =
                http.post(url).bearer_auth(token).header("content-type", "application/json").body(body).send().await;
        }));
    }
    for f in inflight {
        let _ = f.await;
    }
    posted.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let s = stack().await;
    let live = Live { key: KEY.to_vec(), ring: 100, limits: Default::default(), send_buffer: None };
    let api = ApiServer::start_live(&s, OidcConfig::default(), RateLimiter::new(1_000, 1_000.0), Some(live)).await;
    let mut cfg = config("bench");
    cfg.progress = Some(ephemera_operator::ProgressConfig { url: api.url.clone(), key: Arc::new(KEY.to_vec().into()) });
    let op = operator_with(&s.client, cfg);
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), "default");
    let mut rows = Vec::new();
    for (name, per_second, events, msg) in [
        ("polite", 1, 1, "deploying metadata".to_string()),
        // As much as a request body may hold (64 KiB): 10 events of 1,000 control characters, each
        // escaped to 6 bytes of JSON.
        ("hostile", 20, 10, "\u{7}".repeat(1000)),
    ] {
        create(&tasks, name, json!({"image": "busybox", "command": ["sleep", "600"]})).await;
        phase(&tasks, name, TaskPhase::Running).await;
        let secret = secrets.get(&format!("{name}-1-attempt")).await.expect("reporting Secret");
        let token = String::from_utf8(secret.data.unwrap_or_default()["progress-token"].0.clone()).unwrap_or_default();
        let url = format!("{}/api/v1/namespaces/default/tasks/{name}/progress", api.url);
        let (writes, bytes, posted) = watch_while(&tasks, name, post(url, token, per_second, events, msg, secs)).await;
        rows.push((name, writes as f64 / secs as f64, bytes as f64 / secs as f64, posted as f64 / secs as f64));
        tasks.patch(name, &Default::default(), &kube::api::Patch::Merge(json!({"spec": {"cancel": true}}))).await.ok();
    }
    println!("progress intake, {secs} s per Task, measured on a watch of the Task:");
    for (name, writes, bytes, posted) in &rows {
        println!(
            "  {name:8} posted {:>9.0} B/s -> {writes:5.1} status writes/s, {:>9.0} B/s to every watcher (amplification {:.2}x)",
            posted,
            bytes,
            bytes / posted.max(1.0)
        );
    }
    let (polite, hostile) = (&rows[0], &rows[1]);
    println!(
        "  hostile vs polite: {:.1}x the writes, {:.1}x the watched bytes",
        hostile.1 / polite.1.max(0.001),
        hostile.2 / polite.2.max(1.0)
    );
    let result = ephemera_devcluster::testing::bench_result;
    result("progress flood", "status writes/s, hostile vs polite reporter", hostile.1, Some(polite.1));
    result("progress flood", "bytes/s to every watcher, hostile vs polite", hostile.2, Some(polite.2));
    op.abort();
}
