//! What the API server's benches share: a local cluster with the CRDs installed, the server's state
//! over it, and percentiles.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each bench uses part of it

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ephemera_api::auth::oidc::{Oidc, OidcConfig};
use ephemera_api::auth::tokens::Tokens;
use ephemera_api::limits::RateLimiter;
use ephemera_api::AppState;
use ephemera_devcluster::testing::{kubectl, ok};
use ephemera_devcluster::{Config, DevCluster};

/// A local cluster (no kubelet) with every CRD established; stopped on drop.
pub struct Cluster {
    _cluster: DevCluster,
    _dir: tempfile::TempDir,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// A client.
    pub client: kube::Client,
}

/// Starts one.
pub async fn cluster() -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let cluster =
        DevCluster::start(Config { kubeconfig: Some(kubeconfig.clone()), kubelet: None, ..Config::default() })
            .await
            .expect("cluster");
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/yaml");
    ok(kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds.to_str().unwrap_or_default()], None));
    ok(kubectl(&kubeconfig, &["wait", "--for=condition=Established", "crd", "--all", "--timeout=30s"], None));
    let client = ephemera_devcluster::testing::client_for(&kubeconfig).await;
    Cluster { _cluster: cluster, _dir: dir, kubeconfig, client }
}

/// The API server's state over `client`, with limits out of the way.
pub async fn state(client: &kube::Client) -> Arc<AppState> {
    let webhooks = ephemera_api::webhooks::Webhooks::start(client.clone());
    webhooks.triggers.ready().await;
    Arc::new(AppState {
        client: client.clone(),
        tokens: Tokens::watch(client.clone(), "default").await,
        oidc: Oidc::new(OidcConfig::default()).expect("oidc"),
        limiter: RateLimiter::new(1_000_000, 1_000_000.0),
        metrics: Default::default(),
        request_timeout: Duration::from_secs(30),
        // Webhook Task names are keyed by it (the webhook bench needs one).
        progress_key: Some(std::sync::Arc::new(secrecy::SecretSlice::from(
            b"bench shared key, 32 bytes long!".to_vec(),
        ))),
        event_ring: 100,
        hub: ephemera_api::stream::hub::Hub::start(client.clone(), Default::default()),
        stopping: ephemera_api::serve::Stopping::never(),
        intake: Default::default(),
        webhooks,
        trusted_proxies: Default::default(),
    })
}

/// Concurrent connections of [`load`].
pub const CONCURRENCY: usize = 32;

/// `n` requests from [`CONCURRENCY`] closed-loop workers, each built by `request(client, i)` and
/// expected to answer `want`: the rate per second and the sorted latencies.
pub async fn load<F>(n: usize, want: u16, request: F) -> (f64, Vec<Duration>)
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let (http, request) = (reqwest::Client::new(), Arc::new(request));
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    for w in 0..CONCURRENCY {
        let (http, request) = (http.clone(), request.clone());
        handles.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for i in (w..n).step_by(CONCURRENCY) {
                let req = request(&http, i);
                let t = std::time::Instant::now();
                let r = req.send().await.expect("request");
                assert_eq!(r.status().as_u16(), want, "{}", r.text().await.unwrap_or_default());
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

/// Serves `app` on a loopback port in the background; its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// One side of a comparison: what was measured and its result.
pub struct Side<'a> {
    /// What it is, with its colon, padded as it should print.
    pub label: &'a str,
    /// The rate's unit (`/s`, ` Tasks/s`).
    pub unit: &'a str,
    /// Requests per second.
    pub rate: f64,
    /// Sorted latencies.
    pub times: &'a [Duration],
}

/// Prints both sides and their ratios (throughput, p99).
pub fn report(bench: &str, latency: &str, real: Side<'_>, bare: Side<'_>) {
    for s in [&real, &bare] {
        println!(
            "  {} {:.0}{}  {latency}p50 {:.2} ms  p99 {:.2} ms",
            s.label,
            s.rate,
            s.unit,
            pct(s.times, 0.5),
            pct(s.times, 0.99)
        );
    }
    println!(
        "  ratio throughput {:.2}x  p99 {:.1}x",
        real.rate / bare.rate,
        pct(real.times, 0.99) / pct(bare.times, 0.99)
    );
    let result = ephemera_devcluster::testing::bench_result;
    result(bench, &format!("throughput ({})", real.unit.trim()), real.rate, Some(bare.rate));
    result(bench, &format!("{latency}p50 (ms)"), pct(real.times, 0.5), Some(pct(bare.times, 0.5)));
    result(bench, &format!("{latency}p99 (ms)"), pct(real.times, 0.99), Some(pct(bare.times, 0.99)));
}

pub use ephemera_devcluster::testing::percentile_ms as pct;
