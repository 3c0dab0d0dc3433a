//! A burst of signed GitHub pushes: ack latency (p50/p99) and Tasks created per second of the real
//! endpoint (trigger lookup, HMAC, rate limit, CEL rules, Task creation in the local cluster, delivery
//! log) beside a bare axum handler doing the same HMAC and JSON work, in one run with the same
//! client: 32 concurrent connections, `BENCH_DELIVERIES` (default 1,000) distinct deliveries each.
//!
//! Run: `cargo bench -p ephemera-api --bench webhooks`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;
use common::Side;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use ephemera_api::router;
use ephemera_api::webhooks::verify::{github, Delivery};
use ephemera_devcluster::testing::{kubectl, ok};

use common::CONCURRENCY;
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

fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn burst(url: String, n: usize, run: &str) -> (f64, Vec<Duration>) {
    let run = run.to_string();
    common::load(n, 202, move |http, i| {
        // Every push of every run is another commit: GitHub deliveries dedupe on their signed bytes.
        let body = serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "after": format!("{i:040x}"),
            "repository": {"full_name": "Codertocat/Hello-World", "id": 186853002}, "commits": [{"id": format!("{i:040x}")}],
            "pusher": {"name": run}}))
        .unwrap();
        http.post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("{run}-{i}"))
            .header("x-hub-signature-256", sign(&body))
            .body(body)
    })
    .await
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_DELIVERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let c = common::cluster().await;
    let kubeconfig = c.kubeconfig.clone();
    let trigger = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hook}}\nstringData: {{secret: {SECRET}}}\n---\n\
         apiVersion: ephemera.dev/v1alpha1\nkind: TaskTrigger\nmetadata: {{name: gh}}\nspec:\n  source: github\n  \
         secretRef: {{name: hook, key: secret}}\n  rules:\n  - name: push\n    events: [push]\n    \
         filter: \"body.ref.startsWith('refs/heads/')\"\n    params: {{repo: body.repository.full_name, sha: body.after}}\n    \
         task: {{image: busybox, command: ['true']}}\n"
    );
    ok(kubectl(&kubeconfig, &["apply", "-n", "default", "-f", "-"], Some(&trigger)));
    let state = common::state(&c.client).await;
    let real_url = format!("http://{}/webhooks/default/gh", common::serve(router(state)).await);
    let bare_app = Router::new().route("/webhooks/{namespace}/{trigger}", post(bare));
    let bare_url = format!("http://{}/webhooks/default/gh", common::serve(bare_app).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Warm-up, then the measured bursts.
    burst(bare_url.clone(), 100, "warm").await;
    burst(real_url.clone(), 100, "warm").await;
    let (bare_rate, bare_times) = burst(bare_url, n, "bare").await;
    let (real_rate, real_times) = burst(real_url, n, "real").await;
    println!("{n} deliveries, {CONCURRENCY} concurrent:");
    common::report(
        "webhook burst",
        "ack ",
        Side {
            label: "real endpoint (HMAC, rules, Task created in the local cluster):",
            unit: " Tasks/s",
            rate: real_rate,
            times: &real_times,
        },
        Side {
            label: "bare axum, same HMAC and JSON work:                            ",
            unit: "/s      ",
            rate: bare_rate,
            times: &bare_times,
        },
    );
}
