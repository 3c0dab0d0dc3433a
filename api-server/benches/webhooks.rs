//! A burst of signed GitHub pushes: ack latency (p50/p99) and Tasks created per second of the real
//! endpoint (trigger lookup, HMAC, rate limit, CEL rules, Task creation in the local cluster, delivery
//! log) beside a bare axum handler doing the same HMAC and JSON work, in one run with the same
//! client: 32 concurrent connections, `BENCH_DELIVERIES` (default 1,000) distinct deliveries each.
//!
//! Run: `cargo bench -p ephemera-api --bench webhooks`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use ephemera_api::auth::oidc::{Oidc, OidcConfig};
use ephemera_api::auth::tokens::Tokens;
use ephemera_api::limits::RateLimiter;
use ephemera_api::webhooks::verify::{github, Delivery};
use ephemera_api::{router, AppState};
use ephemera_devcluster::testing::{kubectl, ok};
use ephemera_devcluster::{Config, DevCluster};

const CONCURRENCY: usize = 32;
const SECRET: &str = "bench secret";

/// The same verification and parsing, answered without a cluster.
async fn bare(headers: HeaderMap, body: Bytes) -> StatusCode {
    let d = Delivery { headers: &headers, body: &body, now: 0 };
    if github::verify(&d, &[SECRET.as_bytes()]).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) if v["ref"].as_str().is_some_and(|r| r.starts_with("refs/heads/")) => StatusCode::ACCEPTED,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn burst(url: String, n: usize, run: &str) -> (f64, Vec<Duration>) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..CONCURRENCY {
        let (http, url, run) = (http.clone(), url.clone(), run.to_string());
        handles.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for i in (w..n).step_by(CONCURRENCY) {
                let body = serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "after": format!("{i:040x}"),
                    "repository": {"full_name": "Codertocat/Hello-World", "id": 186853002}, "commits": [{"id": format!("{i:040x}")}]}))
                .unwrap();
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("{run}-{i}"))
                    .header("x-hub-signature-256", sign(&body))
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
                let _ = r.bytes().await;
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("worker"));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::var("BENCH_DELIVERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let _cluster =
        DevCluster::start(Config { kubeconfig: Some(kubeconfig.clone()), kubelet: None, ..Config::default() })
            .await
            .expect("cluster");
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/yaml");
    ok(kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds.to_str().unwrap_or_default()], None));
    ok(kubectl(
        &kubeconfig,
        &["wait", "--for=condition=Established", "crd/tasktriggers.ephemera.dev", "--timeout=30s"],
        None,
    ));
    let trigger = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hook}}\nstringData: {{secret: {SECRET}}}\n---\n\
         apiVersion: ephemera.dev/v1alpha1\nkind: TaskTrigger\nmetadata: {{name: gh}}\nspec:\n  source: github\n  \
         secretRef: {{name: hook, key: secret}}\n  rules:\n  - name: push\n    events: [push]\n    \
         filter: \"body.ref.startsWith('refs/heads/')\"\n    params: {{repo: body.repository.full_name, sha: body.after}}\n    \
         task: {{image: busybox, command: ['true']}}\n"
    );
    ok(kubectl(&kubeconfig, &["apply", "-n", "default", "-f", "-"], Some(&trigger)));
    let client = ephemera_devcluster::testing::client_for(&kubeconfig).await;
    let webhooks = ephemera_api::webhooks::Webhooks::start(client.clone());
    webhooks.triggers.ready().await;
    let state = Arc::new(AppState {
        client: client.clone(),
        tokens: Tokens::watch(client.clone(), "default").await,
        oidc: Oidc::new(OidcConfig::default()).expect("oidc"),
        limiter: RateLimiter::new(1_000_000, 1_000_000.0),
        metrics: Default::default(),
        request_timeout: Duration::from_secs(30),
        progress_key: None,
        event_ring: 100,
        hub: ephemera_api::stream::hub::Hub::start(client.clone(), Default::default()),
        stopping: ephemera_api::serve::Stopping::never(),
        intake: Default::default(),
        webhooks,
    });
    let real = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let real_url = format!("http://{}/webhooks/default/gh", real.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(real, router(state)).await });
    let baseline = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bare_url = format!("http://{}/webhooks/default/gh", baseline.local_addr().expect("addr"));
    let app = Router::new().route("/webhooks/{namespace}/{trigger}", post(bare));
    tokio::spawn(async move { axum::serve(baseline, app).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Warm-up, then the measured bursts.
    burst(bare_url.clone(), 100, "warm").await;
    burst(real_url.clone(), 100, "warm").await;
    let (bare_rate, bare_times) = burst(bare_url, n, "bare").await;
    let (real_rate, real_times) = burst(real_url, n, "real").await;
    println!("{n} deliveries, {CONCURRENCY} concurrent:");
    println!(
        "  real endpoint (HMAC, rules, Task created in the local cluster): {real_rate:.0} Tasks/s  ack p50 {:.2} ms  p99 {:.2} ms",
        pct(&real_times, 0.5),
        pct(&real_times, 0.99)
    );
    println!(
        "  bare axum, same HMAC and JSON work:                             {bare_rate:.0}/s        ack p50 {:.2} ms  p99 {:.2} ms",
        pct(&bare_times, 0.5),
        pct(&bare_times, 0.99)
    );
    println!(
        "  ratio throughput {:.2}x  p99 {:.1}x",
        real_rate / bare_rate,
        pct(&real_times, 0.99) / pct(&bare_times, 0.99)
    );
}
