//! Live-status fan-out: status change → WebSocket client latency (p50/p99) and server memory per
//! connection, at 1,000 and 10,000 subscribers of one Task, beside a bare tokio broadcast channel
//! delivering the same payloads to the same number of tasks in the same run.
//!
//! The API server runs as its own process (`ephemera-api serve`, release build) against the local
//! cluster, so its RSS is its own; clients live in this process. A status change is timed from just
//! before the status write to the moment each client has the event.
//!
//! Run: `cargo bench -p ephemera-api --bench stream` (`BENCH_SUBSCRIBERS=1000,10000`, `BENCH_EVENTS=20`;
//! `BENCH_DEBUG=1` also prints each event's percentiles, to tell one slow event from a slow fan-out).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;
use common::pct;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_api::auth::tokens::{self, NewToken};
use ephemera_api::auth::Verb;
use ephemera_crds::{EventKind, ProgressEvent, Task};
use ephemera_devcluster::testing::rss_kib;
use futures::{SinkExt, StreamExt};
use kube::api::{Api, PostParams};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[allow(unsafe_code)] // getrlimit/setrlimit of this process
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// The payload clients receive for one event (about what the server sends).
fn payload(seq: i64) -> String {
    serde_json::json!({"type": "event", "namespace": "default", "task": "bench", "event": {"seq": seq, "kind": "Progress", "attempt": 1,
        "time": "2026-11-23T19:00:00.000Z", "percent": 50, "message": format!("step {seq}")}})
    .to_string()
}

async fn broadcast_baseline(n: usize, events: i64) -> (Vec<Duration>, f64) {
    let before = rss_kib(std::process::id());
    let (tx, _) = tokio::sync::broadcast::channel::<(i64, Arc<String>)>(1024);
    let mut sent: Vec<Instant> = Vec::with_capacity(usize::try_from(events).unwrap_or(0));
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let mut rx = tx.subscribe();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok((seq, text)) = rx.recv().await {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if v["event"]["seq"] == seq {
                    got.push((seq - 1, Instant::now()));
                }
                if seq == events {
                    break;
                }
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mem = (rss_kib(std::process::id()).saturating_sub(before)) as f64 / n as f64;
    for seq in 1..=events {
        sent.push(Instant::now());
        let _ = tx.send((seq, Arc::new(payload(seq))));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got = Vec::new();
    for h in handles {
        got.extend(h.await.unwrap_or_default());
    }
    (latencies(&sent, got), mem)
}

/// Each receipt's latency from its event's send, sorted. Receivers only note when each event
/// arrived, and the send times are matched afterwards: a lock shared by thousands of receivers on
/// the timed path would measure its own queue.
fn latencies(sent: &[Instant], got: Vec<(i64, Instant)>) -> Vec<Duration> {
    if std::env::var("BENCH_DEBUG").is_ok() {
        let mut per: std::collections::BTreeMap<i64, Vec<Duration>> = Default::default();
        for (i, at) in &got {
            if let Some(s) = sent.get(usize::try_from(*i).unwrap_or(usize::MAX)) {
                per.entry(*i).or_default().push(at.duration_since(*s));
            }
        }
        for (i, mut v) in per {
            v.sort();
            eprintln!(
                "event {i}: n {} p50 {:.1} p99 {:.1} max {:.1}",
                v.len(),
                pct(&v, 0.5),
                pct(&v, 0.99),
                pct(&v, 1.0)
            );
        }
    }
    let mut all: Vec<Duration> =
        got.into_iter().filter_map(|(i, at)| Some(at.duration_since(*sent.get(usize::try_from(i).ok()?)?))).collect();
    all.sort();
    all
}

/// Clients sized like the server's connections: small reads of small JSON frames.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

async fn websocket(
    url: &str,
    token: &str,
    server_pid: u32,
    tasks: &Api<Task>,
    n: usize,
    events: i64,
) -> (Vec<Duration>, f64) {
    let before = rss_kib(server_pid);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req =
            format!("{url}/api/v1/stream").replace("http://", "ws://").into_client_request().expect("request");
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        // tungstenite's default 128 KiB read buffer is zeroed on every read: at 10,000 clients that
        // memset was most of this process's CPU, and timed the client instead of the server.
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(req, Some(client_config()), false).await.expect("connect");
        ws.send(Message::Text(r#"{"type":"subscribe","namespace":"default","task":"bench"}"#.into()))
            .await
            .expect("subscribe");
        clients.push(ws);
    }
    // Let every subscription settle (snapshots delivered) before measuring.
    let mut ready = Vec::with_capacity(n);
    for mut ws in clients {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"snapshot\"") => break,
                Some(Ok(_)) => {}
                _ => panic!("a client lost its connection"),
            }
        }
        ready.push(ws);
    }
    let mem = (rss_kib(server_pid).saturating_sub(before)) as f64 / n as f64;
    let mut sent: Vec<Instant> = Vec::with_capacity(usize::try_from(events).unwrap_or(0));
    let base_seq = tasks.get("bench").await.expect("task").status.map(|s| s.last_seq).unwrap_or(0);
    let mut handles = Vec::with_capacity(n);
    for mut ws in ready {
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                let Some(seq) = v["event"]["seq"].as_i64() else { continue };
                got.push((seq - base_seq - 1, Instant::now()));
                if seq >= base_seq + events {
                    break;
                }
            }
            // Kept open until every client has the last event: 10,000 closes racing its
            // delivery would time the closes.
            (got, ws)
        }));
    }
    for _ in 0..events {
        let mut t = tasks.get("bench").await.expect("task");
        let mut st = t.status.clone().unwrap_or_default();
        let e = ProgressEvent {
            seq: 0,
            kind: EventKind::Progress,
            phase: None,
            attempt: 1,
            time: String::new(),
            percent: Some(50),
            message: "step".into(),
        };
        st.push_events([e], 100);
        t.status = Some(st);
        sent.push(Instant::now());
        tasks.replace_status("bench", &PostParams::default(), &t).await.expect("status");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut got, mut open) = (Vec::new(), Vec::with_capacity(n));
    for h in handles {
        if let Ok(Ok((g, ws))) = tokio::time::timeout(Duration::from_secs(60), h).await {
            got.extend(g);
            open.push(ws);
        }
    }
    drop(open);
    (latencies(&sent, got), mem)
}

#[tokio::main]
async fn main() {
    raise_fd_limit();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<usize> = std::env::var("BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let events: i64 = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let c = common::cluster().await;
    let (client, kubeconfig) = (c.client.clone(), c.kubeconfig.clone());
    let tasks: Api<Task> = Api::namespaced(client.clone(), "default");
    let t: Task = serde_json::from_value(serde_json::json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "metadata": {"name": "bench"}, "spec": {"command": ["true"]}})).expect("task");
    tasks.create(&PostParams::default(), &t).await.expect("create");
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).expect("time");
    let new =
        NewToken { namespaces: vec!["default".into()], verbs: vec![Verb::Read], expires, description: "bench".into() };
    let (_, token) = tokens::create(client.clone(), "default", &new).await.expect("token");

    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("ephemera-api")))
        .expect("target dir");
    assert!(bin.exists(), "build the API server first: cargo build --release -p ephemera-api");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut server = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate-burst",
            "1000000",
            "--rate-per-second",
            "1000000",
        ])
        .args(["--stream-connections", "1000000", "--stream-buffer", "4096"])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the API server");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/readyz")).await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Baselines first, while this process's memory is not yet full of client connections.
    let mut baselines = Vec::new();
    for &n in &sizes {
        baselines.push(broadcast_baseline(n, events).await);
    }
    for (n, (bc, bc_mem)) in sizes.into_iter().zip(baselines) {
        let (ws, ws_mem) = websocket(&url, &token, server.id(), &tasks, n, events).await;
        // A client cut off as slow, or one that timed out, would leave its slowest deliveries out
        // of the percentiles.
        let due = n * usize::try_from(events).unwrap_or(0);
        assert_eq!((ws.len(), bc.len()), (due, due), "every subscriber must get every change");
        println!("{n} subscribers, {events} status changes each:");
        println!("  WebSocket via the API server: p50 {:.2} ms  p99 {:.2} ms  ({} deliveries)  server memory {:.1} KiB/connection", pct(&ws, 0.5), pct(&ws, 0.99), ws.len(), ws_mem);
        println!("  bare tokio broadcast:         p50 {:.3} ms  p99 {:.3} ms  ({} deliveries)  memory {:.1} KiB/receiver task", pct(&bc, 0.5), pct(&bc, 0.99), bc.len(), bc_mem);
        println!("  ratio p50 {:.0}x  p99 {:.0}x", pct(&ws, 0.5) / pct(&bc, 0.5), pct(&ws, 0.99) / pct(&bc, 0.99));
        let result = ephemera_devcluster::testing::bench_result;
        let bench = format!("stream, {n} subscribers");
        result(&bench, "change -> client p50 (ms)", pct(&ws, 0.5), Some(pct(&bc, 0.5)));
        result(&bench, "change -> client p99 (ms)", pct(&ws, 0.99), Some(pct(&bc, 0.99)));
        result(&bench, "memory per connection (KiB)", ws_mem, Some(bc_mem));
    }
    let _ = server.kill();
    let _ = server.wait();
}
