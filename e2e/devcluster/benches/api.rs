//! Throughput and memory of the dev cluster, beside the real apiextensions-apiserver + etcd measured
//! in the same run (the baseline): creates/s, updates/s, watch events/s fanned out to 100 watchers,
//! and the server's RSS holding 10,000 objects.
//!
//! Run: `cargo bench -p ephemera-devcluster --bench api` (needs the `e2e/crd-apiserver` recipe for
//! the baseline; without it only our numbers are printed). `BENCH_OBJECTS` changes the object count.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_devcluster::testing::rss_kib;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::json;

const CONCURRENCY: usize = 32;
const WATCHERS: usize = 100;

const CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"items.bench.ephemera.dev"},
 "spec":{"group":"bench.ephemera.dev","scope":"Namespaced","names":{"plural":"items","singular":"item","kind":"Item"},
  "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
   "schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","properties":{
     "n":{"type":"integer","minimum":0},"payload":{"type":"string","maxLength":512}}},
     "status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}"#;

struct Server {
    name: &'static str,
    kubeconfig: PathBuf,
    pid: u32,
    _child: Option<Child>,
    /// What `start.sh` started, by its directory.
    reference_dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self._child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = &self.reference_dir {
            ephemera_devcluster::testing::stop_reference(dir);
        }
    }
}

fn start_ours(dir: &Path) -> Server {
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ephemera-devcluster"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start devcluster");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("ready line");
    assert!(line.contains("ready"), "devcluster did not start: {line}");
    Server { name: "devcluster", kubeconfig, pid: child.id(), _child: Some(child), reference_dir: None }
}

fn start_reference(dir: &Path) -> Option<Server> {
    let tool = std::env::var("EPHEMERA_CRD_APISERVER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../crd-apiserver"));
    if !tool.join("start.sh").exists() {
        eprintln!("reference server not found at {}: baseline skipped", tool.display());
        return None;
    }
    let out = Command::new(tool.join("start.sh")).arg(dir).output().ok()?;
    if !out.status.success() {
        eprintln!("reference server failed to start: baseline skipped");
        return None;
    }
    let pids = std::fs::read_to_string(dir.join("pids")).ok()?;
    // The apiserver is the second pid (etcd is first); memory is reported for both together.
    let pid = pids.lines().nth(1)?.trim().parse().ok()?;
    Some(Server {
        name: "real apiserver+etcd",
        kubeconfig: dir.join("kubeconfig"),
        pid,
        _child: None,
        reference_dir: Some(dir.to_path_buf()),
    })
}

fn etcd_rss(server: &Server) -> u64 {
    let Some(dir) = &server.reference_dir else { return 0 };
    std::fs::read_to_string(dir.join("pids"))
        .ok()
        .and_then(|p| p.lines().next().and_then(|l| l.trim().parse().ok()))
        .map(rss_kib)
        .unwrap_or(0)
}

async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(cfg).expect("client")
}

fn item(i: usize) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "bench.ephemera.dev/v1", "kind": "Item",
        "metadata": {"name": format!("item-{i:05}"), "labels": {"bench": "yes"}},
        "spec": {"n": i, "payload": "x".repeat(200)}
    }))
    .expect("item")
}

struct Numbers {
    creates: f64,
    updates: f64,
    fanout: f64,
    rss_mib: f64,
}

async fn measure(server: &Server, objects: usize) -> Numbers {
    let c = client(&server.kubeconfig).await;
    let crds: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_str(CRD).expect("crd");
    crds.create(&PostParams::default(), &crd).await.expect("install crd");
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("bench.ephemera.dev", "v1", "Item"),
        "items",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let t = Instant::now();
    loop {
        if api.list(&Default::default()).await.is_ok() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "CRD never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t = Instant::now();
    futures::stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &item(i)).await.map(|_| ()) }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("creates");
    let creates = objects as f64 / t.elapsed().as_secs_f64();
    let rss_mib = (rss_kib(server.pid) + etcd_rss(server)) as f64 / 1024.0;

    let updates_n = objects.min(5_000);
    let t = Instant::now();
    futures::stream::iter(0..updates_n)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = json!({"spec": {"n": i + 1}});
                api.patch(&format!("item-{i:05}"), &PatchParams::default(), &Patch::Merge(&p)).await.map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("updates");
    let updates = updates_n as f64 / t.elapsed().as_secs_f64();

    // Fan-out: 100 watchers from the current version, then a burst of status updates.
    let rv = api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let received = Arc::new(AtomicU64::new(0));
    let burst = 1_000usize.min(objects);
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let api = api.clone();
        let received = received.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            let wp = kube::api::WatchParams::default().timeout(290);
            let mut stream = api.watch(&wp, &rv).await.expect("watch").boxed();
            while let Some(ev) = stream.next().await {
                if matches!(ev, Ok(kube::api::WatchEvent::Modified(_))) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    futures::stream::iter(0..burst)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = json!({"status": {"tick": i}});
                api.patch_status(&format!("item-{i:05}"), &PatchParams::default(), &Patch::Merge(&p)).await.map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("status updates");
    let want = (burst * WATCHERS) as u64;
    while received.load(Ordering::Relaxed) < want && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fanout = received.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    for t in tasks {
        t.abort();
    }
    Numbers { creates, updates, fanout, rss_mib }
}

#[tokio::main]
async fn main() {
    let objects: usize = std::env::var("BENCH_OBJECTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let ours_dir = tempfile::tempdir().expect("tempdir");
    let ref_dir = tempfile::tempdir().expect("tempdir");
    let ours = start_ours(ours_dir.path());
    let a = measure(&ours, objects).await;
    drop(ours);
    let baseline = match start_reference(ref_dir.path()) {
        Some(r) => Some((r.name, measure(&r, objects).await)),
        None => None,
    };
    println!("devcluster API bench: {objects} objects, concurrency {CONCURRENCY}, {WATCHERS} watchers");
    println!("result: bench | metric | devcluster | baseline | ratio");
    let row = |name: &str, ours: f64, base: Option<f64>| {
        ephemera_devcluster::testing::bench_result("local cluster API", name, ours, base)
    };
    let b = baseline.as_ref().map(|(_, n)| n);
    row("creates/s", a.creates, b.map(|n| n.creates));
    row("updates/s", a.updates, b.map(|n| n.updates));
    row("watch events/s (100 watchers)", a.fanout, b.map(|n| n.fanout));
    row("RSS MiB with objects", a.rss_mib, b.map(|n| n.rss_mib));
    if let Some((name, _)) = baseline {
        println!("baseline: {name} (same machine, same client, same run); ratio > 1 means devcluster is higher");
    }
}
