//! Live status end to end: operator + worker Pods reporting progress + two API server replicas.
//! Subscribers see every phase and progress event in order, resume on the other replica with no gap
//! and no duplicate, get a snapshot when they resume from before the retained events, are refused
//! namespaces they may not read, and a consumer that stops reading is cut off without affecting the
//! others. A worker whose API server is down still finishes its task. Streams end when the
//! credentials they were opened with are revoked or expire.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use ephemera_api::auth::oidc::{OidcConfig, Rule};
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::stream::hub::Limits;
use ephemera_crds::{Task, TaskPhase};
use ephemera_devcluster::testing::eventually;
use ephemera_e2e::api::{api_token, ApiServer, Live};
use ephemera_e2e::fakes::oidc::FakeIssuer;
use ephemera_e2e::stack::{config, create, operator_with, phase, stack, Stack};
use futures::{SinkExt, StreamExt};
use kube::api::Api;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const RING: usize = 8;

fn key() -> Vec<u8> {
    b"0123456789abcdef0123456789abcdef-test-key".to_vec()
}

async fn replica(s: &Stack, limits: Limits, send_buffer: Option<u32>) -> ApiServer {
    let live = Live { key: key(), ring: RING, limits, send_buffer };
    ApiServer::start_live(s, OidcConfig::default(), RateLimiter::new(10_000, 10_000.0), Some(live)).await
}

fn operator(s: &Stack, progress_url: &str) -> tokio::task::JoinHandle<()> {
    let mut cfg = config("op-1");
    cfg.progress =
        Some(ephemera_operator::ProgressConfig { url: progress_url.into(), key: std::sync::Arc::new(key().into()) });
    cfg.event_ring = RING;
    operator_with(&s.client, cfg)
}

/// A stream ticket (`POST /api/v1/stream/tickets`) for `bearer`.
async fn ticket(api: &ApiServer, bearer: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/api/v1/stream/tickets", api.url))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(api: &ApiServer, token: &str) -> Ws {
    let mut req = format!("{}/api/v1/stream", api.url.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Reads messages until `stop` says so; returns them.
async fn read_until(ws: &mut Ws, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(m) = next_json(ws).await {
        let done = stop(&m);
        out.push(m);
        if done {
            break;
        }
    }
    out
}

/// The event sequence numbers a client saw, from snapshots and events, in order.
fn seqs(msgs: &[Value]) -> Vec<i64> {
    let mut out = Vec::new();
    for m in msgs {
        match m["type"].as_str() {
            Some("snapshot") => out.extend(m["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap())),
            Some("event") => out.push(m["event"]["seq"].as_i64().unwrap()),
            _ => {}
        }
    }
    out
}

fn events(msgs: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for m in msgs {
        match m["type"].as_str() {
            Some("snapshot") => out.extend(m["events"].as_array().unwrap().iter().cloned()),
            Some("event") => out.push(m["event"].clone()),
            _ => {}
        }
    }
    out
}

const STEPS: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do echo \"::progress pct=$((i*10)) msg=step $i\"; sleep 0.3; done";

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_follow_live_resume_on_the_other_replica_and_get_snapshots() {
    ephemera_e2e::tls();
    let s = stack().await;
    let a = replica(&s, Limits::default(), None).await;
    let b = replica(&s, Limits::default(), None).await;
    let op = operator(&s, &a.url);
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 1).await;
    let outsider = api_token(&s, &["other"], &[Verb::Read], 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Refused: a namespace the caller may not read.
    let mut ws = connect(&a, &outsider).await;
    send(&mut ws, json!({"type": "subscribe", "namespace": "default"})).await;
    let m = next_json(&mut ws).await.unwrap();
    assert_eq!((m["type"].as_str(), m["code"].as_str()), (Some("error"), Some("forbidden")), "{m}");

    // X follows the whole Task on replica A; Y drops out after step 3 and resumes on replica B.
    let mut x = connect(&a, &token).await;
    send(&mut x, json!({"type": "subscribe", "namespace": "default", "task": "live"})).await;
    let mut y = connect(&a, &token).await;
    send(&mut y, json!({"type": "subscribe", "namespace": "default", "task": "live"})).await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "live", json!({"image": "busybox", "command": ["sh", "-c", STEPS]})).await;
    let x_msgs = tokio::spawn(async move { read_until(&mut x, |m| m["type"] == "end").await });
    let y_first = read_until(&mut y, |m| m["type"] == "event" && m["event"]["message"] == "step 3").await;
    drop(y);
    let last_seen = *seqs(&y_first).last().unwrap();
    let mut y2 = connect(&b, &token).await;
    send(&mut y2, json!({"type": "subscribe", "namespace": "default", "task": "live", "since": last_seen})).await;
    let y_rest = read_until(&mut y2, |m| m["type"] == "end").await;
    let x_msgs = x_msgs.await.unwrap();

    let all = seqs(&x_msgs);
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "X saw every event once, in order: {all:?}");
    let x_events = events(&x_msgs);
    let progress: Vec<&str> =
        x_events.iter().filter(|e| e["kind"] == "Progress").map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(progress, (1..=10).map(|i| format!("step {i}")).collect::<Vec<_>>(), "{x_events:?}");
    let phases: Vec<&str> =
        x_events.iter().filter(|e| e["kind"] == "Phase").map(|e| e["phase"].as_str().unwrap()).collect();
    let status = serde_json::to_string_pretty(&tasks.get("live").await.unwrap().status).unwrap();
    assert!(phases.ends_with(&["Running", "Succeeded"]) && phases.contains(&"Scheduled"), "{phases:?} {status}");
    assert_eq!(x_msgs.last().unwrap()["phase"], "Succeeded");
    let mut y_all = seqs(&y_first);
    y_all.extend(seqs(&y_rest));
    assert_eq!(y_all, all, "Y, across a reconnect to the other replica: no gap, no duplicate");

    // Resuming from before what is retained: told so, then a fresh snapshot.
    let mut late = connect(&b, &token).await;
    send(&mut late, json!({"type": "subscribe", "namespace": "default", "task": "live", "since": 1})).await;
    let msgs = read_until(&mut late, |m| m["type"] == "end").await;
    let kinds: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["subscribed", "resync", "snapshot", "end"], "{msgs:?}");
    assert_eq!(msgs[2]["events"].as_array().unwrap().len(), RING);
    let st = tasks.get("live").await.unwrap().status.unwrap();
    assert!(st.progress_compacted > 0 && st.progress.len() == RING && st.last_seq == *all.last().unwrap());

    // SSE on replica B with Last-Event-ID: exactly the events after it, then the end.
    let resume_from = all[all.len() - 3];
    let text = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces/default/tasks/live/events", b.url))
        .bearer_auth(&token)
        .header("Last-Event-ID", resume_from.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ids: Vec<i64> = text.lines().filter_map(|l| l.strip_prefix("id: ")).map(|i| i.parse().unwrap()).collect();
    assert_eq!(ids, vec![all[all.len() - 2], all[all.len() - 1], all[all.len() - 1]], "{text}");
    assert!(text.contains("event: end"), "{text}");

    // Intake refuses anything but the current attempt of the Task its token names.
    let uid = tasks.get("live").await.unwrap().metadata.uid.unwrap();
    let now = jiff::Timestamp::now().as_second();
    let claims = |task: &str, attempt: i32, expires: i64| ephemera_crds::attempt_token::AttemptClaims {
        namespace: "default".into(),
        task: task.into(),
        uid: uid.clone(),
        attempt,
        expires,
    };
    let batch = json!({"attempt": 1, "events": [{"wseq": 99, "time": "2026-01-01T00:00:00Z", "message": "forged"}]});
    let post = |token: Option<String>| {
        let (url, batch) = (format!("{}/api/v1/namespaces/default/tasks/live/progress", a.url), batch.clone());
        async move {
            let mut r = reqwest::Client::new().post(url).json(&batch);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    let sign = |c| ephemera_crds::attempt_token::sign(&key(), &c);
    assert_eq!(post(None).await, 401, "no token");
    assert_eq!(
        post(Some(ephemera_crds::attempt_token::sign(
            b"another key that is long enough!!",
            &claims("live", 1, now + 60)
        )))
        .await,
        401,
        "forged"
    );
    assert_eq!(post(Some(sign(claims("live", 1, now - 1)))).await, 401, "expired");
    assert_eq!(post(Some(sign(claims("other", 1, now + 60)))).await, 403, "another Task");
    assert_eq!(
        post(Some(sign(claims("live", 2, now + 60)))).await,
        403,
        "a batch for an attempt its token does not name"
    );
    let mut recreated = claims("live", 1, now + 60);
    recreated.uid = "00000000-0000-0000-0000-000000000000".into();
    assert_eq!(post(Some(sign(recreated))).await, 403, "an earlier Task of the same name");
    assert_eq!(
        post(Some(sign(claims("live", 1, now + 60)))).await,
        409,
        "the attempt is over: replaying its token does nothing"
    );
    assert!(!tasks.get("live").await.unwrap().status.unwrap().progress.iter().any(|e| e.message == "forged"));

    // Browsers: a ticket, or the token as a subprotocol.
    let ticket = ticket(&a, &token).await;
    let url =
        format!("{}/api/v1/stream?ticket={}", b.url.replace("http://", "ws://"), ticket["ticket"].as_str().unwrap());
    let (mut t, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send(&mut t, json!({"type": "subscribe", "namespace": "default", "task": "live", "since": all[all.len() - 1]}))
        .await;
    assert_eq!(next_json(&mut t).await.unwrap()["type"], "subscribed");
    // A ticket opens one stream: the same ticket again (from a URL log, say) is refused on any replica.
    for replica in [&a, &b] {
        let again = format!(
            "{}/api/v1/stream?ticket={}",
            replica.url.replace("http://", "ws://"),
            ticket["ticket"].as_str().unwrap()
        );
        match tokio_tungstenite::connect_async(again).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
            other => panic!("a replayed ticket opened a stream: {:?}", other.map(|_| ())),
        }
    }
    let mut req = format!("{}/api/v1/stream", a.url.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", format!("ephemera.v1, bearer.{token}").parse().unwrap());
    let (_, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "ephemera.v1");

    // Grants are re-read at every heartbeat: a token whose Secret no longer grants the namespace
    // loses its subscription there (the stream itself stays for what it may still read).
    let narrowed = api_token(&s, &["default", "other"], &[Verb::Read], 1).await;
    let mut nws = eventually(10, "the new token known", || async {
        let mut req = format!("{}/api/v1/stream", a.url.replace("http://", "ws://")).into_client_request().ok()?;
        req.headers_mut().insert("authorization", format!("Bearer {narrowed}").parse().ok()?);
        tokio_tungstenite::connect_async(req).await.ok().map(|c| c.0)
    })
    .await;
    send(&mut nws, json!({"type": "subscribe", "namespace": "default"})).await;
    let nid = narrowed.split('_').nth(1).unwrap().to_string();
    let token_secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(s.client.clone(), "default");
    token_secrets
        .patch(
            &format!("ephemera-api-token-{nid}"),
            &Default::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"namespaces": "other"}})),
        )
        .await
        .unwrap();
    let dropped = read_until(&mut nws, |m| m["type"] == "error" && m["code"] == "forbidden").await;
    let last = dropped.last().unwrap();
    assert!(last["message"].as_str().unwrap().contains("no longer read Tasks in namespace \"default\""), "{last}");

    // Revoking a token ends the streams it opened (checked at every heartbeat), with close code 4001.
    let doomed = api_token(&s, &["default"], &[Verb::Read], 1).await;
    let mut ws = eventually(10, "the new token known", || async {
        let mut req = format!("{}/api/v1/stream", a.url.replace("http://", "ws://")).into_client_request().ok()?;
        req.headers_mut().insert("authorization", format!("Bearer {doomed}").parse().ok()?);
        tokio_tungstenite::connect_async(req).await.ok().map(|c| c.0)
    })
    .await;
    send(&mut ws, json!({"type": "subscribe", "namespace": "default"})).await;
    let id = doomed.split('_').nth(1).unwrap().to_string();
    ephemera_api::auth::tokens::revoke(s.client.clone(), "default", &id).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(4001), "the revoked token's stream was closed");
    op.abort();
}

/// The close code the server ends `ws` with (streams re-check credentials every 15 s heartbeat).
async fn close_code(ws: &mut Ws) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the server closed the stream")
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_end_when_the_oidc_token_they_came_from_expires() {
    ephemera_e2e::tls();
    let s = stack().await;
    let issuer = FakeIssuer::start().await;
    let oidc = issuer.config(Rule {
        matches: [("repository".to_string(), "acme/app".to_string())].into(),
        namespaces: vec!["default".into()],
        verbs: vec![Verb::Read],
    });
    let live = Live { key: key(), ring: RING, limits: Limits::default(), send_buffer: None };
    let api = ApiServer::start_live(&s, oidc, RateLimiter::new(10_000, 10_000.0), Some(live)).await;
    // Past `exp`, inside the server's 60 s leeway: good for about 12 more seconds.
    let now = jiff::Timestamp::now().as_second();
    let id_token = issuer
        .token(json!({"sub": "ci", "aud": "ephemera", "repository": "acme/app", "iat": now - 120, "exp": now - 48}));
    let ticket = ticket(&api, &id_token).await;
    let lifetime = ticket["expiresInSeconds"].as_i64().unwrap();
    assert!(lifetime <= 12, "a ticket outlives the token it came from: {ticket}");
    let url =
        format!("{}/api/v1/stream?ticket={}", api.url.replace("http://", "ws://"), ticket["ticket"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send(&mut ws, json!({"type": "subscribe", "namespace": "default"})).await;
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "subscribed");

    // SSE with the ID token itself, on a Task that never ends (no operator runs here).
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "waiting", json!({"image": "busybox", "command": ["true"]})).await;
    let mut sse = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces/default/tasks/waiting/events", api.url))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    assert_eq!(close_code(&mut ws).await, Some(4001), "the stream outlived the ID token behind its ticket");
    let text = tokio::time::timeout(Duration::from_secs(40), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = sse.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the SSE stream outlived its ID token");
    assert!(text.contains("event: error") && text.contains("\"unauthorized\""), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_consumer_is_cut_off_and_a_worker_without_api_still_finishes() {
    ephemera_e2e::tls();
    let s = stack().await;
    let limits = Limits { buffer: 16, ..Limits::default() };
    let api = replica(&s, limits, Some(4096)).await;
    // The workers report to an address nobody listens on: their tasks must finish anyway.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let op = operator(&s, &format!("http://127.0.0.1:{closed}"));
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "unreported", json!({"image": "busybox", "command": ["sh", "-c", "echo '::progress pct=50 msg=half'; echo done > \"$EPHEMERA_RESULT_FILE\""]})).await;
    let t = phase(&tasks, "unreported", TaskPhase::Succeeded).await;
    assert_eq!(t.status.unwrap().result, "done\n", "the task finished although its progress could not be delivered");

    // A slow consumer (tiny receive window, never reads) and a normal one watch the same namespace.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(api.url.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let mut req = format!("{}/api/v1/stream", api.url.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut slow, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    send(&mut slow, json!({"type": "subscribe", "namespace": "default"})).await;
    let mut fast = connect(&api, &token).await;
    send(&mut fast, json!({"type": "subscribe", "namespace": "default"})).await;
    let n = 40;
    let fast_reader = tokio::spawn(async move {
        let mut ended = std::collections::BTreeSet::new();
        while ended.len() < n {
            let Some(m) = next_json(&mut fast).await else { break };
            if m["type"] == "end" {
                ended.insert(m["task"].as_str().unwrap().to_string());
            }
        }
        ended.len()
    });
    for i in 0..n {
        create(&tasks, &format!("flood-{i}"), json!({"image": "busybox", "command": ["sh", "-c", "echo '::progress pct=1 msg=padding padding padding padding padding padding padding padding'"]}))
            .await;
    }
    assert_eq!(fast_reader.await.unwrap(), n, "the reading subscriber saw every Task end");
    // The slow one was cut off: reading now drains what was buffered, then the connection ends.
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        let mut count = 0;
        loop {
            match slow.next().await {
                Some(Ok(Message::Close(frame))) => return (count, frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => count += 1,
                Some(Err(_)) | None => return (count, None),
            }
        }
    })
    .await
    .expect("the slow consumer's connection ended");
    let metrics = reqwest::get(format!("{}/metrics", api.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ephemera_api_slow_consumers_total 1"), "{metrics}");
    if let Some(code) = drained.1 {
        assert_eq!(code, 4008, "closed as a slow consumer");
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_flooding_progress_with_its_token_costs_about_one_status_write_a_second() {
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::Secret;
    use kube::runtime::watcher;
    let s = stack().await;
    let api = replica(&s, Limits::default(), None).await;
    let op = operator(&s, &api.url);
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "flood", json!({"command": ["sleep", "60"]})).await;
    phase(&tasks, "flood", TaskPhase::Running).await;
    // The command can read its reporting token (it is mounted in its container): play that command.
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), "default");
    let secret = secrets.get("flood-1-attempt").await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["progress-token"].0.clone()).unwrap();
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = writes.clone();
    let stream = watcher(tasks.clone(), watcher::Config::default().fields("metadata.name=flood"));
    let watching = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            if matches!(ev, watcher::Event::Apply(_)) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes.load(std::sync::atomic::Ordering::Relaxed);
    let started = std::time::Instant::now();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/default/tasks/flood/progress", api.url);
    let (mut limited, mut accepted, mut wseq) = (0, 0, 0);
    let junk = format!("\u{1b}[2J\u{1b}]0;owned\u{7}{}\u{202e}tail", "\u{7}".repeat(990));
    for _ in 0..60 {
        let events: Vec<Value> = (0..10)
            .map(|_| {
                wseq += 1;
                json!({"wseq": wseq, "time": "2026-12-01T00:00:00Z", "message": junk})
            })
            .collect();
        let r =
            http.post(&url).bearer_auth(&token).json(&json!({"attempt": 1, "events": events})).send().await.unwrap();
        match r.status().as_u16() {
            202 => accepted += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"), "told when to come back");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let intake_writes = writes.load(std::sync::atomic::Ordering::Relaxed) - before;
    watching.abort();
    // The limiter allows a burst of two, then one write a second.
    assert!(accepted as f64 <= elapsed + 2.0 + 1.0, "{accepted} writes accepted in {elapsed:.1} s");
    assert!(intake_writes as f64 <= elapsed + 3.0, "{intake_writes} status writes in {elapsed:.1} s");
    assert!(limited > 40, "the rest were refused with 429: {limited}");
    let st = tasks.get("flood").await.unwrap().status.unwrap();
    let stored: Vec<_> = st.progress.iter().filter(|e| e.kind == ephemera_crds::EventKind::Progress).collect();
    assert!(!stored.is_empty());
    for e in stored {
        assert!(e.message.len() <= 200, "messages are bounded to 200 bytes: {}", e.message.len());
        assert!(!e.message.chars().any(|c| c.is_control() || c == '\u{202e}'), "no control characters are stored");
    }
    tasks
        .patch("flood", &Default::default(), &kube::api::Patch::Merge(json!({"spec": {"cancel": true}})))
        .await
        .unwrap();
    op.abort();
}
