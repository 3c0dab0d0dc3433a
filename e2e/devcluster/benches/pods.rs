//! Pod start latency of the local kubelet: create → `Running` p50/p99 for 200 `busybox` Pods created
//! at once, and the dev cluster's own CPU time per Pod; beside what it is made of, measured in the
//! same run: the image pull (cold, and the warm manifest check every `:latest` container makes) and
//! runc starting the same container from the same bundle directly, without the API or kubelet.
//!
//! Run: `cargo bench -p ephemera-devcluster --bench pods` with the test registry up and its images
//! built (`e2e/scripts/registry.sh start && images/test/build.sh`; `EPHEMERA_TEST_REGISTRY`, default
//! `127.0.0.1:5000`). `BENCH_PODS` changes the count.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ephemera_devcluster::kubelet::bundle;
use ephemera_devcluster::kubelet::pull::{PullPolicy, Pulled, Puller};
use ephemera_devcluster::kubelet::runc::{Launch, Runtime};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The image's cost on its own: one cold pull (an empty store: manifest, config, layers, unpack)
/// and the warm pull every container of `busybox` (`:latest`, so `imagePullPolicy: Always`) makes
/// (the manifest asked again, everything else on the node).
async fn pulls(registry: &str, dir: &Path) -> (Duration, Duration, Pulled) {
    let puller =
        Puller::new(dir.join("bench-images"), vec![registry.into()], [("docker.io".into(), registry.into())].into());
    let t = Instant::now();
    let image = puller.pull("busybox", PullPolicy::Always, None).await.expect("cold pull");
    let cold = t.elapsed();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        puller.pull("busybox", PullPolicy::Always, None).await.expect("warm pull");
        warm.push(t.elapsed());
    }
    warm.sort();
    (cold, percentile(&warm, 0.5), image)
}

/// The floor: the same containers started by the kubelet's container runtime (runc from the same
/// bundle the kubelet builds) directly, all at once like the Pods, each timed from its start until
/// its first output line is in its log. What is left above this is the API, the kubelet and pulls.
async fn bare_starts(n: usize, dir: &Path, image: &Pulled) -> Vec<Duration> {
    let runtime = Runtime::new(dir.join("bench-runc"), tokio::runtime::Handle::current());
    let pod = json!({"metadata": {"name": "bare", "namespace": "default", "uid": "u"}, "spec": {}});
    let container = json!({"name": "c", "command": ["sh", "-c", "echo up; exec sleep 3600"]});
    let cmd = Some(vec!["sh".to_string(), "-c".to_string(), "echo up; exec sleep 3600".to_string()]);
    let b = bundle::bundle(&image.config, &image.accounts, &pod, &container, &[], cmd, None).expect("bundle");
    let mut started = Vec::new();
    for i in 0..n {
        let launch = Launch {
            id: format!("bench-{}-{i}", std::process::id()),
            bundle: dir.join(format!("bare-{i}")),
            image_root: image.rootfs.clone(),
            config: bundle::runtime_spec(&b, "rootfs", &format!("bare-{i}"), &[]),
            log: dir.join(format!("bare-{i}.log")),
        };
        let t = Instant::now();
        let (handle, exit) = runtime.start(launch).await.expect("start");
        started.push((i, t, handle, exit));
    }
    let mut out = Vec::new();
    for (i, t, handle, exit) in started {
        let log = dir.join(format!("bare-{i}.log"));
        while !std::fs::read_to_string(&log).unwrap_or_default().contains(" up")
            && t.elapsed()
                < Duration::from_secs(
                    std::env::var("BENCH_START_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(60),
                )
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        out.push(t.elapsed());
        handle.kill();
        let _ = exit.await;
    }
    out.sort();
    out
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_PODS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = std::env::var("EPHEMERA_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    let mut server = Command::new(env!("CARGO_BIN_EXE_ephemera-devcluster"))
        .args(["--listen", "127.0.0.1:0", "--insecure-registry", &registry])
        .arg("--registry-mirror")
        .arg(format!("docker.io={registry}"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("devcluster");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().expect("stdout")), &mut line)
        .expect("ready");
    let pid = server.id();
    let client = {
        let kc = Kubeconfig::read_from(Path::new(&kubeconfig)).expect("kubeconfig");
        kube::Client::try_from(
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config"),
        )
        .expect("client")
    };
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let rv = pods.list(&Default::default()).await.expect("list").metadata.resource_version.unwrap_or_default();
    let mut watch = pods.watch(&WatchParams::default().timeout(290), &rv).await.expect("watch").boxed();

    let cpu0 = cpu_ticks(pid);
    let mut created: HashMap<String, Instant> = HashMap::new();
    let t0 = Instant::now();
    let specs: Vec<Pod> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({"metadata": {"name": format!("p{i:04}")}, "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}))
            .expect("pod")
        })
        .collect();
    let names: Vec<(String, Instant)> = futures::stream::iter(specs)
        .map(|p| {
            let pods = pods.clone();
            async move {
                let start = Instant::now();
                pods.create(&PostParams::default(), &p).await.map(|c| (c.metadata.name.unwrap_or_default(), start))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
        .expect("create pods");
    created.extend(names);
    let creates_done = t0.elapsed();
    let mut latencies = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while latencies.len() < n && t0.elapsed() < Duration::from_secs(240) {
        let Some(Ok(ev)) = tokio::time::timeout(Duration::from_secs(30), watch.next()).await.ok().flatten() else {
            break;
        };
        if let WatchEvent::Modified(p) = ev {
            let name = p.metadata.name.clone().unwrap_or_default();
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && seen.insert(name.clone()) {
                if let Some(start) = created.get(&name) {
                    latencies.push(start.elapsed());
                }
            }
        }
    }
    let cpu_ms_per_pod = (cpu_ticks(pid) - cpu0) as f64 * 10.0 / n as f64;
    latencies.sort();
    let _ = server.kill();
    let _ = server.wait();
    let (cold, warm, image) = pulls(&registry, dir.path()).await;
    let bare = bare_starts(n, dir.path(), &image).await;
    println!(
        "kubelet bench: {n} busybox Pods created at once (16 concurrent creates); {} reached Running",
        latencies.len()
    );
    println!("result: bench | metric | devcluster | runtime only | ratio");
    let result = |metric: &str, ours: f64, base: Option<f64>| {
        ephemera_devcluster::testing::bench_result("local cluster Pods", metric, ours, base)
    };
    for (label, p) in [("create->Running p50 (ms)", 0.5), ("create->Running p99 (ms)", 0.99)] {
        let ours = percentile(&latencies, p).as_secs_f64() * 1000.0;
        let base = percentile(&bare, p).as_secs_f64() * 1000.0;
        result(label, ours, Some(base));
    }
    result("devcluster CPU per Pod (ms)", cpu_ms_per_pod, None);
    result("image pull, cold (ms)", cold.as_secs_f64() * 1000.0, None);
    result("image pull, warm p50 (ms)", warm.as_secs_f64() * 1000.0, None);
    result("all creates answered after (ms)", creates_done.as_secs_f64() * 1000.0, None);
    println!("runtime only = the same {} containers started at once by runc from the kubelet's bundle directly (no API, no kubelet, no pull), same run", bare.len());
}
