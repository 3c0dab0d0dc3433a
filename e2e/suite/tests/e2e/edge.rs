//! The Caddy edge (the repository's Caddyfile, run by the real Caddy) in front of API server
//! replicas: TLS with its internal CA, the HTTP→HTTPS redirect, HSTS, routing, body limits per
//! route, problem documents for the edge's own errors, request ids, forwarding headers set by the
//! edge only, credentials kept out of its access log, WebSocket and SSE streams passing through
//! unbuffered, and a dead replica taken out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use ephemera_api::auth::oidc::OidcConfig;
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::stream::hub::Limits;
use ephemera_crds::{Task, TaskPhase};
use ephemera_e2e::api::{api_token, ApiServer, Live};
use ephemera_e2e::edge::Edge;
use ephemera_e2e::stack::{config, create, operator_with, stack, Stack};
use futures::{SinkExt, StreamExt};
use kube::api::Api;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn upstream(api: &ApiServer) -> String {
    api.url.trim_start_matches("http://").to_string()
}

/// A stack with one API server behind the edge, and a token that may create and read in `default`
/// (the stack and API server are returned so they live as long as the test).
async fn edge_before_one_api() -> (Stack, ApiServer, Edge, String) {
    ephemera_e2e::tls();
    let s = stack().await;
    let api = ApiServer::start(&s, OidcConfig::default(), RateLimiter::new(1000, 1000.0)).await;
    let edge = Edge::start(&[upstream(&api)], &[]).await;
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 1).await;
    (s, api, edge, token)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_terminates_tls_redirects_routes_limits_bodies_and_keeps_credentials_out_of_its_log() {
    let (_s, _api, edge, token) = edge_before_one_api().await;
    let http = edge.client();

    // TLS from the internal CA; the edge answers its own health; security headers; no banner.
    let r = http.get(format!("{}/healthz", edge.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().get("server").is_none(), "{:?}", r.headers());
    assert!(is_uuid(r.headers()["x-request-id"].to_str().unwrap()));

    // Plain HTTP is redirected to the same path on the public HTTPS port.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://localhost:{}/api/v1/queues?x=1", edge.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], format!("https://localhost:{}/api/v1/queues?x=1", edge.https));

    // Routing: the API and its OpenAPI document reach the API server; the client's request id is
    // replaced by the edge's, which the API server answers with.
    let r = http
        .get(format!("{}/api/v1/namespaces/default/tasks", edge.url()))
        .bearer_auth(&token)
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(is_uuid(&id) && id != "client-chosen-id", "{id}");
    assert!(r.headers().get("server").is_none());
    let r = http.get(format!("{}/openapi.json", edge.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["openapi"].is_string());

    // The dashboard is routed to the API server, with the API server's page policy.
    let r = http.get(format!("{}/", edge.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert!(r.text().await.unwrap().contains("/dashboard/app.js"));
    assert_eq!(http.get(format!("{}/dashboard/app.js", edge.url())).send().await.unwrap().status(), 200);
    assert_eq!(http.post(format!("{}/", edge.url())).send().await.unwrap().status(), 404);

    // The edge's own errors are problem documents too.
    let r = http.get(format!("{}/not-a-route", edge.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], 404, "{p}");

    // Credentials in headers and query strings stay out of the access log.
    let _ = http
        .get(format!("{}/api/v1/stream?ticket=ticket-secret-value", edge.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&edge.access_log).unwrap();
    assert!(log.lines().count() >= 6, "{log}");
    for line in log.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["request"]["uri"].is_string(), "{line}");
    }
    assert!(log.contains(&id), "the access log names the request id the API server logged");
    assert!(!log.contains(&token) && !log.contains("ticket-secret-value"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_a_routes_limit_are_refused_at_the_edge_and_webhooks_take_larger_ones() {
    let (_s, _api, edge, token) = edge_before_one_api().await;
    // One client, so requests follow each other on a kept-alive connection: every refusal must
    // leave it in step (an answer sent before the body was read once made the edge parse the rest
    // of that body as the next request, 431, or answer 502 and take the replica out).
    let http = edge.client();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let over_the_apis_own_limit = vec![b'x'; 200 * 1024];
    let problem =
        |r: &reqwest::Response| r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    for round in 0..8 {
        // Body limits per route: 2 MB is passed on for webhooks (GitHub sends up to 25 MB), where the
        // API server judges it (here: no such trigger, answered before it reads the body).
        let r = http
            .post(format!("{}/webhooks/default/no-such-trigger", edge.url()))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let (st, ct) = (r.status(), problem(&r));
        let body = r.text().await.unwrap_or_default();
        assert_eq!((st.as_u16(), ct.as_str()), (404, "application/problem+json"), "round {round}: {body}");

        // Refused by the API server before and after reading part of the body.
        let r = http
            .post(format!("{}/api/v1/namespaces/default/tasks", edge.url()))
            .header("content-type", "application/json")
            .body(over_the_apis_own_limit.clone())
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), problem(&r).as_str()), (401, "application/problem+json"), "round {round}");
        let r = http
            .post(format!("{}/api/v1/namespaces/default/tasks", edge.url()))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(over_the_apis_own_limit.clone())
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), problem(&r).as_str()), (413, "application/problem+json"), "round {round}");

        // 2 MB is refused at the edge for the API.
        let r = http
            .post(format!("{}/api/v1/namespaces/default/tasks", edge.url()))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let (st, headers) = (r.status(), r.headers().clone());
        let body = r.text().await.unwrap_or_default();
        assert_eq!(st, 413, "round {round}: {headers:?} {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(body.contains("refused at the edge"), "{body}");
    }
    // The replica was never counted as failing: it still answers at once.
    let r = http.get(format!("{}/api/v1/queues", edge.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// An upstream that answers every request with the headers it received.
async fn echo() -> String {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let mut out = serde_json::Map::new();
        for (k, v) in &headers {
            out.insert(k.as_str().to_string(), Value::String(v.to_str().unwrap_or("").to_string()));
        }
        axum::Json(Value::Object(out))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_reaching_the_api_are_the_edges_own() {
    ephemera_e2e::tls();
    let edge = Edge::start(&[echo().await], &[]).await;
    let r = edge
        .client()
        .get(format!("{}/api/v1/queues", edge.url()))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6;proto=http")
        .header("x-real-ip", "6.6.6.6")
        .header("true-client-ip", "6.6.6.6")
        .header("x-request-id", "client-chosen-id")
        .header("connection", "x-hop-secret")
        .header("x-hop-secret", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answered_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "the client's own claim is dropped: {seen}");
    assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");
    assert_eq!(seen["x-forwarded-host"], format!("localhost:{}", edge.https), "{seen}");
    for spoofable in ["forwarded", "x-real-ip", "true-client-ip", "x-hop-secret"] {
        assert!(seen.get(spoofable).is_none(), "{spoofable} reached the upstream: {seen}");
    }
    assert!(is_uuid(seen["x-request-id"].as_str().unwrap()), "{seen}");
    assert_eq!(seen["x-request-id"].as_str().unwrap(), answered_id, "one id for the request, both ways");
}

fn key() -> Vec<u8> {
    b"0123456789abcdef0123456789abcdef-edge-test-key".to_vec()
}

async fn replica(s: &Stack) -> ApiServer {
    let live = Live { key: key(), ring: 100, limits: Limits::default(), send_buffer: None };
    ApiServer::start_live(s, OidcConfig::default(), RateLimiter::new(10_000, 10_000.0), Some(live)).await
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A WebSocket to the edge's `/api/v1/stream`, over TLS trusting only the edge's CA.
async fn wss(edge: &Edge, token: &str) -> Wss {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", edge.https)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(edge.rustls_config()).connect(name, tcp).await.unwrap();
    let mut req = format!("wss://localhost:{}/api/v1/stream", edge.https).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::client_async(req, tls).await.unwrap().0
}

const STEPS: &str = "for i in 1 2 3 4 5 6; do echo \"::progress pct=$((i*15)) msg=step $i\"; sleep 0.5; done";

#[tokio::test(flavor = "multi_thread")]
async fn streams_pass_through_the_edge_live_and_a_dead_replica_is_taken_out() {
    ephemera_e2e::tls();
    let s = stack().await;
    let a = replica(&s).await;
    let b = replica(&s).await;
    let mut cfg = config("op-edge");
    cfg.progress =
        Some(ephemera_operator::ProgressConfig { url: a.url.clone(), key: std::sync::Arc::new(key().into()) });
    let _op = operator_with(&s.client, cfg);
    let edge = Edge::start(&[upstream(&a), upstream(&b)], &[]).await;
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 1).await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");

    // WebSocket: the upgrade passes through the edge; events arrive as they happen.
    let mut ws = wss(&edge, &token).await;
    ws.send(Message::Text(
        json!({"type": "subscribe", "namespace": "default", "task": "edge-live"}).to_string().into(),
    ))
    .await
    .unwrap();
    create(&tasks, "edge-live", json!({"image": "busybox", "command": ["sh", "-c", STEPS]})).await;

    // SSE through the edge, unbuffered: the first progress event arrives while the Task still runs.
    let sse = edge
        .client()
        .get(format!("{}/api/v1/namespaces/default/tasks/edge-live/events", edge.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    assert!(sse.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = sse.bytes_stream();
    let mut text = String::new();
    let mut phase_at_first_progress = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !text.contains("event: end") {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(60), body.next()).await else { break };
        text.push_str(&String::from_utf8_lossy(&chunk));
        if phase_at_first_progress.is_none() && text.contains("step 1") {
            let t = tasks.get("edge-live").await.unwrap();
            phase_at_first_progress = Some(t.status.map(|s| s.phase).unwrap_or_default());
        }
    }
    assert!(text.contains("event: end"), "{text}");
    assert_eq!(phase_at_first_progress, Some(TaskPhase::Running), "SSE events were held back: {text}");

    let mut seen = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("a message").unwrap().unwrap();
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        let end = v["type"] == "end";
        seen.push(v);
        if end {
            break;
        }
    }
    let progress = seen.iter().filter(|m| m["type"] == "event" && m["event"]["kind"] == "Progress").count();
    assert_eq!(progress, 6, "{seen:?}");
    assert_eq!(seen.last().unwrap()["phase"], "Succeeded");

    // Replica B dies: the edge's health checks take it out, and no request fails.
    b.stop.send(true).unwrap();
    b.stopped.await.unwrap();
    let http = edge.client();
    for i in 0..20 {
        let r = http.get(format!("{}/api/v1/queues", edge.url())).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i} after replica B stopped");
    }
}
