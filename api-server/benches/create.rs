//! Create-Task throughput and latency of the real handler (authentication, rate limiting, validation,
//! Task creation in the local cluster) beside a bare axum handler doing the same JSON work (parse,
//! validate, build the Task and its view, serialize) without auth or cluster, in the same run with
//! the same client: 32 concurrent connections, `BENCH_REQUESTS` (default 2,000) creates each.
//!
//! Run: `cargo bench -p ephemera-api --bench create`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use ephemera_api::auth::oidc::{Oidc, OidcConfig};
use ephemera_api::auth::tokens::{self, NewToken, Tokens};
use ephemera_api::auth::{Grant, Identity, Verb};
use ephemera_api::extract::ApiJson;
use ephemera_api::limits::RateLimiter;
use ephemera_api::tasks::model::{CreateTask, TaskView};
use ephemera_api::{router, AppState};
use ephemera_devcluster::testing::{kubectl, ok};
use ephemera_devcluster::{Config, DevCluster};

const CONCURRENCY: usize = 32;

async fn bare(
    Path(ns): Path<String>,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<TaskView>), StatusCode> {
    req.validate().map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
    let who = Identity {
        id: "bench".into(),
        grants: vec![Grant { namespaces: vec!["*".into()], verbs: [Verb::Create].into() }],
        valid_until: None,
    };
    let mut t = ephemera_api::tasks::create::task(&ns, &req, &who);
    t.metadata.name = Some("bench".into());
    Ok((StatusCode::CREATED, Json(TaskView::from(&t))))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

async fn load(url: String, token: String, n: usize) -> (f64, Vec<Duration>) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..CONCURRENCY {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for i in (w..n).step_by(CONCURRENCY) {
                let body = serde_json::json!({"command": ["sf", "project", "deploy", "start"], "image": "busybox",
                    "env": {"TARGET": "uat"}, "params": {"run": i.to_string()}, "labels": {"bench": "yes"}, "priority": 5});
                let t = Instant::now();
                let r = http.post(&url).bearer_auth(&token).json(&body).send().await.expect("request");
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
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
    let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let _cluster =
        DevCluster::start(Config { kubeconfig: Some(kubeconfig.clone()), kubelet: None, ..Config::default() })
            .await
            .expect("cluster");
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/yaml");
    ok(kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds.to_str().unwrap_or_default()], None));
    ok(kubectl(&kubeconfig, &["wait", "--for=condition=Established", "crd/tasks.ephemera.dev", "--timeout=30s"], None));
    let client = ephemera_devcluster::testing::client_for(&kubeconfig).await;
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).expect("time");
    let new = NewToken {
        namespaces: vec!["default".into()],
        verbs: vec![Verb::Create],
        expires,
        description: "bench".into(),
    };
    let (_, token) = tokens::create(client.clone(), "default", &new).await.expect("token");
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
        webhooks: ephemera_api::webhooks::Webhooks::start(client.clone()),
    });
    let real = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let real_url = format!("http://{}/api/v1/namespaces/default/tasks", real.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(real, router(state)).await });
    let baseline = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bare_url = format!("http://{}/api/v1/namespaces/default/tasks", baseline.local_addr().expect("addr"));
    let app = Router::new().route("/api/v1/namespaces/{namespace}/tasks", post(bare));
    tokio::spawn(async move { axum::serve(baseline, app).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (bare_rate, bare_times) = load(bare_url, token.clone(), n).await;
    let (real_rate, real_times) = load(real_url, token, n).await;
    println!("{n} creates, {CONCURRENCY} concurrent:");
    println!(
        "  real handler (auth + local cluster): {real_rate:.0}/s  p50 {:.2} ms  p99 {:.2} ms",
        pct(&real_times, 0.5),
        pct(&real_times, 0.99)
    );
    println!(
        "  bare axum, same JSON work:           {bare_rate:.0}/s  p50 {:.2} ms  p99 {:.2} ms",
        pct(&bare_times, 0.5),
        pct(&bare_times, 0.99)
    );
    println!(
        "  ratio throughput {:.2}x  p99 {:.1}x",
        real_rate / bare_rate,
        pct(&real_times, 0.99) / pct(&bare_times, 0.99)
    );
}
