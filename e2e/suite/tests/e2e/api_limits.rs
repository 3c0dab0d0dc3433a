//! The API server as a hostile or careless client meets it: connections that never finish their
//! headers (slowloris) or sit idle, more connections than the cap, log follows past the caller's
//! stream limit or outliving their token, and a SIGTERM drain with streams open.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use ephemera_api::auth::oidc::OidcConfig;
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::serve::ServeLimits;
use ephemera_api::stream::hub::Limits;
use ephemera_crds::{Task, TaskPhase};
use ephemera_devcluster::testing::eventually;
use ephemera_e2e::api::{api_token, ApiServer, Live};
use ephemera_e2e::stack::{create, operator, phase, stack};
use kube::api::Api;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Reads until the server closes the connection (or `within` passes); says whether it closed.
async fn closed_within(conn: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn addr(api: &ApiServer) -> String {
    api.url.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_idle_connections_and_floods_are_cut_off_before_authentication() {
    let s = stack().await;
    let limits =
        ServeLimits { max_connections: 4, header_read_timeout: Duration::from_secs(1), ..ServeLimits::default() };
    let api = ApiServer::start_with(&s, OidcConfig::default(), RateLimiter::new(100, 100.0), None, limits).await;
    // Slowloris: a request line and half a header, then nothing.
    let mut slow = tokio::net::TcpStream::connect(addr(&api)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "a connection that never ends its headers is closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(900), "after the header timeout, not before");
    // An idle kept-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr(&api)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served first");
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await, "then closed once idle");
    // A flood: four connections fill the cap; the fifth is closed at once, before any request.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(addr(&api)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(addr(&api)).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_within(&mut extra, Duration::from_millis(800)).await, "over the cap: closed without an answer");
    // The held ones time out on their own, and the server serves again.
    drop(held);
    eventually(10, "served again", || async {
        reqwest::get(format!("{}/healthz", api.url)).await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    let m = reqwest::get(format!("{}/metrics", api.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(!m.contains("ephemera_api_connections_refused_total 0"), "refusals are counted: {m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_follows_count_against_the_stream_limit_end_when_the_token_is_revoked_and_on_drain() {
    let s = stack().await;
    let op = operator(&s.client, "op-1");
    let live = Live {
        key: b"0123456789abcdef0123456789abcdef-test-key".to_vec(),
        ring: 8,
        limits: Limits { connections_per_identity: 1, ..Limits::default() },
        send_buffer: None,
    };
    let api = ApiServer::start_with(
        &s,
        OidcConfig::default(),
        RateLimiter::new(100, 100.0),
        Some(live),
        ServeLimits { drain: Duration::from_secs(10), ..ServeLimits::default() },
    )
    .await;
    let token = api_token(&s, &["default"], &[Verb::Read, Verb::Create], 1).await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "chatty", serde_json::json!({"command": ["sh", "-c", "while true; do echo tick; sleep 1; done"]}))
        .await;
    phase(&tasks, "chatty", TaskPhase::Running).await;
    let url = format!("{}/api/v1/namespaces/default/tasks/chatty/logs?follow=true", api.url);
    let http = reqwest::Client::new();
    let mut first = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert!(first.chunk().await.unwrap().is_some(), "the follow streams");
    // The caller's one stream slot is taken: a second follow is refused, not queued.
    let second = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(second.status().as_u16(), 429);
    assert!(second.headers().contains_key("retry-after"));
    // Revoking the token ends the follow at the next credential check.
    let id = token.split('_').nth(1).unwrap().to_string();
    ephemera_api::auth::tokens::revoke(s.client.clone(), "default", &id).await.unwrap();
    let ended =
        tokio::time::timeout(Duration::from_secs(40), async { while let Ok(Some(_)) = first.chunk().await {} }).await;
    assert!(ended.is_ok(), "a follow does not outlive its token");
    let m = reqwest::get(format!("{}/metrics", api.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(m.contains("ephemera_api_streams_reauth_ended_total 1"), "{m}");

    // A drain (what SIGTERM starts) ends a live follow cleanly and the server stops well within it.
    let token = api_token(&s, &["default"], &[Verb::Read], 1).await;
    let mut follow = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(follow.status().as_u16(), 200);
    assert!(follow.chunk().await.unwrap().is_some());
    let started = Instant::now();
    api.stop.send(true).unwrap();
    let drained =
        tokio::time::timeout(Duration::from_secs(8), async { while let Ok(Some(_)) = follow.chunk().await {} }).await;
    assert!(drained.is_ok(), "the follow ended on drain");
    tokio::time::timeout(Duration::from_secs(8), api.stopped).await.expect("the server stopped").unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "the drain did not wait for its whole period");
    assert!(reqwest::get(format!("{}/healthz", api.url)).await.is_err(), "no new connections after the drain");
    tasks
        .patch("chatty", &Default::default(), &kube::api::Patch::Merge(serde_json::json!({"spec": {"cancel": true}})))
        .await
        .unwrap();
    op.abort();
}
