//! A sustained run of every component: Tasks created through the REST API at a steady rate
//! (`BENCH_RATE` per second, 2) for `BENCH_MINUTES` (10), each a real Pod (runc containers from the
//! loopback registry) that reports progress through the API server and is deleted by its TTL 30 s
//! after it finishes. Reported per minute: Tasks created and finished, create→Succeeded p50/p99,
//! Tasks and Pods present, and the resident memory of the operator and of the API server (each
//! its own process, as in a cluster, started from this build's binaries) and of this process (the
//! local cluster, its kubelet and the client). The baseline is the run's own first minute: the
//! last minute beside it shows whether anything grows without bound.
//!
//! Run: `cargo bench -p ephemera-e2e --bench sustained` (with the test registry, as for the tests).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::process::{Child, Command, Stdio};

use ephemera_api::auth::Verb;
use ephemera_crds::{Task, TaskPhase};
use ephemera_devcluster::testing::{bench_result, cpu_seconds, percentile_ms, rss_mib};
use ephemera_e2e::api::api_token;
use ephemera_e2e::helm::free_port;
use ephemera_e2e::stack::{api_binary, operator_binary, stack, worker_image, OPERATOR_NAMESPACE};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use serde_json::json;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-bench-key";

/// What one minute of the run saw.
#[derive(Default)]
struct Minute {
    created: usize,
    failed_creates: usize,
    finished: Vec<Duration>,
    not_succeeded: usize,
}

/// A child process, killed when dropped (a panicking bench leaves nothing running).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the run saw at the start of one minute: objects present, then resident memory (MiB) and
/// CPU seconds used so far of the operator, the API server and this process.
#[derive(Clone, Copy)]
struct Sample {
    tasks: usize,
    pods: usize,
    rss: [f64; 3],
    cpu: [f64; 3],
}

impl Sample {
    const NONE: Sample = Sample { tasks: 0, pods: 0, rss: [f64::NAN; 3], cpu: [f64::NAN; 3] };

    fn take(tasks: usize, pods: usize, pids: [u32; 3]) -> Sample {
        Sample { tasks, pods, rss: pids.map(rss_mib), cpu: pids.map(cpu_seconds) }
    }
}

/// Starts one of this build's binaries against the local cluster, its warnings and errors written
/// to `log` (shown if it does not come up or stops during the run).
fn spawn(bin: &std::path::Path, args: &[&str], kubeconfig: &std::path::Path, log: &std::path::Path) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    Process(child)
}

/// Panics, with its log, if the process has exited.
fn still_running(p: &mut Process, what: &str, log: &std::path::Path) {
    if let Ok(Some(status)) = p.0.try_wait() {
        panic!("the {what} exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

#[tokio::main]
async fn main() {
    let minutes: usize = std::env::var("BENCH_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let rate: f64 = std::env::var("BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0);
    let s = stack().await;
    // The key the operator signs reporting tokens with and the API server checks them with.
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("progress-key");
    std::fs::write(&key_file, KEY).expect("key file");
    let key_file = key_file.to_str().expect("utf-8 path");
    let operator_bin = operator_binary();
    let api_bin = api_binary();
    let api_url = format!("http://127.0.0.1:{}", free_port());
    let (api_log, op_log) = (dir.path().join("api.log"), dir.path().join("operator.log"));
    let mut api = spawn(
        &api_bin,
        &[
            "serve",
            "--listen",
            api_url.trim_start_matches("http://"),
            "--metrics-listen",
            "127.0.0.1:0",
            "--rate-burst",
            "100000",
            "--rate-per-second",
            "100000",
            "--progress-key-file",
            key_file,
        ],
        &s.dev.kubeconfig,
        &api_log,
    );
    let handoff = format!("127.0.0.1:{}", free_port());
    let mut op = spawn(
        &operator_bin,
        &[
            "--worker-image",
            &worker_image(),
            "--default-task-image",
            "busybox",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--identity",
            "sustained",
            "--lease-seconds",
            "3",
            "--metrics-addr",
            "127.0.0.1:0",
            "--handoff-addr",
            &handoff,
            "--handoff-url",
            &format!("http://{handoff}"),
            "--progress-url",
            &api_url,
            "--progress-key-file",
            key_file,
        ],
        &s.dev.kubeconfig,
        &op_log,
    );
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 2).await;
    let http = reqwest::Client::new();
    let url = format!("{api_url}/api/v1/namespaces/default/tasks");
    // The API server serves once its caches are filled, and token Secrets are watched: wait until
    // it answers with this one.
    let ready = async {
        while !http.get(&url).bearer_auth(&token).send().await.is_ok_and(|r| r.status().is_success()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), ready).await.is_err() {
        still_running(&mut api, "API server", &api_log);
        panic!("the API server did not answer in 60 s:\n{}", std::fs::read_to_string(&api_log).unwrap_or_default());
    }
    // The operator holds its Lease and has listed the Tasks (idle, before the first create).
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_running(&mut op, "operator", &op_log);

    let t0 = Instant::now();
    let minute_of = move |at: Instant| (at.duration_since(t0).as_secs() / 60) as usize;
    let stats: Arc<Mutex<Vec<Minute>>> = Arc::new(Mutex::new((0..minutes + 1).map(|_| Minute::default()).collect()));
    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();

    // Every Task's end, seen on a watch (as a client following it would).
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let (ends, ends_stats, ends_created) = (tasks.clone(), stats.clone(), created_at.clone());
    let watching = tokio::spawn(async move {
        let stream = watcher(ends, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            // A relist (after a 410) reports Tasks as InitApply: ends seen then count too.
            let Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) = ev else { continue };
            let Some(st) = t.status.as_ref().filter(|st| st.phase.is_terminal()) else { continue };
            let name = t.metadata.name.clone().unwrap_or_default();
            let Some(at) = ends_created.lock().unwrap().remove(&name) else { continue };
            let mut m = ends_stats.lock().unwrap();
            let now = Instant::now();
            let minute = &mut m[minute_of(at).min(minutes)];
            if st.phase == TaskPhase::Succeeded {
                minute.finished.push(now.duration_since(at));
            } else {
                minute.not_succeeded += 1;
            }
        }
    });

    let body = json!({
        "image": "busybox",
        "command": ["sh", "-c", "echo '::progress 50 halfway'; echo done > \"$EPHEMERA_RESULT_FILE\""],
        "ttlSecondsAfterFinished": 30,
    });
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut samples = Vec::new();
    let mut next_sample = t0;
    let end = t0 + Duration::from_secs(60 * minutes as u64);
    while Instant::now() < end {
        tick.tick().await;
        if Instant::now() >= next_sample {
            still_running(&mut op, "operator", &op_log);
            still_running(&mut api, "API server", &api_log);
            let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
            let present = tasks.list_metadata(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
            let pods = pods.list_metadata(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
            samples.push(Sample::take(present, pods, [op.0.id(), api.0.id(), std::process::id()]));
            next_sample += Duration::from_secs(60);
        }
        let (http, url, token, body) = (http.clone(), url.clone(), token.clone(), body.clone());
        let (stats, created_at) = (stats.clone(), created_at.clone());
        tokio::spawn(async move {
            let at = Instant::now();
            let made = http.post(url).bearer_auth(token).json(&body).send().await;
            let name = match made {
                Ok(r) if r.status().as_u16() == 201 => {
                    r.json::<serde_json::Value>().await.ok().and_then(|v| v["name"].as_str().map(String::from))
                }
                _ => None,
            };
            let mut m = stats.lock().unwrap();
            match name {
                Some(name) => {
                    created_at.lock().unwrap().insert(name, at);
                    m[minute_of(at).min(minutes)].created += 1;
                }
                None => m[minute_of(at).min(minutes)].failed_creates += 1,
            }
        });
    }
    // Closes the last minute (for its CPU seconds).
    samples.push(Sample::take(0, 0, [op.0.id(), api.0.id(), std::process::id()]));
    // The last Tasks' ends.
    tokio::time::sleep(Duration::from_secs(30)).await;
    watching.abort();
    drop((op, api));

    println!(
        "sustained run: {minutes} minute(s) at {rate} Tasks/s through the REST API; resident memory (MiB) at the minute's start and CPU seconds in the minute of the operator, the API server and this process (local cluster, kubelet, client)"
    );
    println!(
        "minute  created  create-errors  succeeded  other-ends  p50 ms  p99 ms  tasks  pods  operator     api  cluster  cpu: op   api  cluster"
    );
    // CPU seconds each process used in minute i (the samples open each minute; one more closes the last).
    let cpu_in = |i: usize| -> [f64; 3] {
        match (samples.get(i), samples.get(i + 1)) {
            (Some(a), Some(b)) => [0, 1, 2].map(|k| b.cpu[k] - a.cpu[k]),
            _ => [f64::NAN; 3],
        }
    };
    let m = stats.lock().unwrap();
    for (i, minute) in m.iter().take(minutes).enumerate() {
        let mut fin = minute.finished.clone();
        fin.sort();
        let Sample { tasks, pods, rss: [operator, api, cluster], .. } = samples.get(i).copied().unwrap_or(Sample::NONE);
        let [op_cpu, api_cpu, cluster_cpu] = cpu_in(i);
        println!(
            "{:>6}  {:>7}  {:>13}  {:>9}  {:>10}  {:>6.0}  {:>6.0}  {tasks:>5}  {pods:>4}  {operator:>8.1}  {api:>6.1}  {cluster:>7.1}  {op_cpu:>7.1}  {api_cpu:>4.1}  {cluster_cpu:>7.1}",
            i + 1,
            minute.created,
            minute.failed_creates,
            fin.len(),
            minute.not_succeeded,
            percentile_ms(&fin, 0.5),
            percentile_ms(&fin, 0.99)
        );
    }
    let unfinished = created_at.lock().unwrap().len();
    println!("Tasks created but not seen to end 30 s after the last create: {unfinished}");
    let sorted = |i: usize| {
        let mut f = m[i].finished.clone();
        f.sort();
        f
    };
    let (first, last) = (sorted(0), sorted(minutes.saturating_sub(1)));
    let bench = format!("sustained, {rate} Tasks/s for {minutes} min (last minute vs first)");
    let result = |metric: &str, ours: f64, base: f64| bench_result(&bench, metric, ours, Some(base));
    let total: usize = m.iter().map(|x| x.finished.len()).sum();
    let created: usize = m.iter().map(|x| x.created).sum();
    result("Tasks succeeded per minute", last.len() as f64, first.len() as f64);
    result("create -> Succeeded p50 (ms)", percentile_ms(&last, 0.5), percentile_ms(&first, 0.5));
    result("create -> Succeeded p99 (ms)", percentile_ms(&last, 0.99), percentile_ms(&first, 0.99));
    // The memory of the last minute's start beside the first's; CPU of the last minute beside the first's.
    if let (Some(a), Some(b)) = (samples.first(), samples.get(minutes.saturating_sub(1))) {
        let (first_cpu, last_cpu) = (cpu_in(0), cpu_in(minutes.saturating_sub(1)));
        for (k, who) in ["operator", "API server", "local cluster + client"].into_iter().enumerate() {
            result(&format!("{who} RSS (MiB)"), b.rss[k], a.rss[k]);
            result(&format!("{who} CPU seconds per minute"), last_cpu[k], first_cpu[k]);
        }
    }
    bench_result(&bench, "Tasks succeeded of those created", total as f64, Some(created as f64));
}
