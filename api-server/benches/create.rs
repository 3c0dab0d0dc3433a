//! Create-Task throughput and latency of the real handler (authentication, rate limiting, validation,
//! Task creation in the local cluster) beside a bare axum handler doing the same JSON work (parse,
//! validate, build the Task and its view, serialize) without auth or cluster, in the same run with
//! the same client: 32 concurrent connections, `BENCH_REQUESTS` (default 2,000) creates each.
//!
//! Run: `cargo bench -p ephemera-api --bench create`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;
use common::Side;

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use ephemera_api::auth::tokens::{self, NewToken};
use ephemera_api::auth::{Grant, Identity, Verb};
use ephemera_api::extract::ApiJson;
use ephemera_api::router;
use ephemera_api::tasks::model::{CreateTask, TaskView};

use common::CONCURRENCY;

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
    let mut t = ephemera_api::tasks::create::task(&ns, &req, None, &who);
    t.metadata.name = Some("bench".into());
    Ok((StatusCode::CREATED, Json(TaskView::from(&t))))
}

async fn load(url: String, token: String, n: usize) -> (f64, Vec<Duration>) {
    common::load(n, 201, move |http, i| {
        let body = serde_json::json!({"command": ["sf", "project", "deploy", "start"], "image": "busybox",
            "env": {"TARGET": "uat"}, "params": {"run": i.to_string()}, "labels": {"bench": "yes"}, "priority": 5});
        http.post(&url).bearer_auth(&token).json(&body)
    })
    .await
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let c = common::cluster().await;
    let client = c.client.clone();
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).expect("time");
    let new = NewToken {
        namespaces: vec!["default".into()],
        verbs: vec![Verb::Create],
        expires,
        description: "bench".into(),
    };
    let (_, token) = tokens::create(client.clone(), "default", &new).await.expect("token");
    let state = common::state(&client).await;
    let real_url = format!("http://{}/api/v1/namespaces/default/tasks", common::serve(router(state)).await);
    let bare_app = Router::new().route("/api/v1/namespaces/{namespace}/tasks", post(bare));
    let bare_url = format!("http://{}/api/v1/namespaces/default/tasks", common::serve(bare_app).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (bare_rate, bare_times) = load(bare_url, token.clone(), n).await;
    let (real_rate, real_times) = load(real_url, token, n).await;
    println!("{n} creates, {CONCURRENCY} concurrent:");
    common::report(
        "api create",
        "",
        Side { label: "real handler (auth + local cluster):", unit: " creates/s", rate: real_rate, times: &real_times },
        Side { label: "bare axum, same JSON work:          ", unit: " creates/s", rate: bare_rate, times: &bare_times },
    );
}
