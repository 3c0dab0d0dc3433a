//! Test harness for this project's integration and end-to-end tests (feature `testing`): an
//! in-process dev cluster, the real reference CRD API server, kube clients for both, kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::{Config, DevCluster};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

/// A dev cluster started inside the test process, with its kubeconfig on disk.
pub struct Dev {
    /// The running cluster.
    pub cluster: DevCluster,
    /// Its data and kubeconfig (removed on drop).
    pub dir: tempfile::TempDir,
    /// The kubeconfig a client uses.
    pub kubeconfig: PathBuf,
}

impl Dev {
    /// Starts one with the default configuration.
    pub async fn start() -> Dev {
        Self::start_with(|_| {}).await
    }

    /// Starts one with the configuration changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Dev {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut config = Config { kubeconfig: Some(kubeconfig.clone()), ..Config::default() };
        if let Some(k) = config.kubelet.as_mut() {
            test_registries(k);
        }
        tweak(&mut config);
        let cluster = DevCluster::start(config).await.expect("start dev cluster");
        Dev { cluster, dir, kubeconfig }
    }

    /// A kube client for it.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    /// Runs kubectl against it.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig, args, None)
    }

    /// Runs kubectl against it with `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        kubectl(&self.kubeconfig, args, Some(stdin))
    }
}

/// The loopback test registry (`host:port`) the test command starts, from `EPHEMERA_TEST_REGISTRY`.
pub fn test_registry() -> String {
    std::env::var("EPHEMERA_TEST_REGISTRY").expect(
        "EPHEMERA_TEST_REGISTRY is not set: run ./e2e/scripts/test.sh, or start e2e/scripts/registry.sh, run \
         images/test/build.sh and export EPHEMERA_TEST_REGISTRY=127.0.0.1:5000",
    )
}

/// Test nodes pull Docker Hub's images from the loopback test registry (which holds the test
/// images under the same names: `busybox` is `docker.io/library/busybox`), and share one image
/// store, so each test does not unpack the same layers again. Without `EPHEMERA_TEST_REGISTRY` the
/// node pulls from the registries images name (tests that run no Pods need none).
fn test_registries(k: &mut crate::KubeletSettings) {
    let Ok(registry) = std::env::var("EPHEMERA_TEST_REGISTRY") else { return };
    k.registries.insecure.push(registry.clone());
    k.registries.mirrors.insert("docker.io".into(), registry);
    k.image_store = shared_image_store();
}

/// The image store test nodes share: a folder only this user may write (the root kubelet runs what
/// is unpacked there, so nobody else may plant an image); None (each node its own store) when the
/// folder exists but is not such a folder.
#[allow(unsafe_code)] // geteuid(2): no preconditions
fn shared_image_store() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    let dir = std::env::temp_dir().join("ephemera-devcluster-test-images");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    (meta.is_dir() && meta.uid() == me && meta.mode() & 0o077 == 0).then_some(dir)
}

/// A kube client from a kubeconfig file, exactly as a user's program would build one.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
    Client::try_from(config).expect("client")
}

/// Runs kubectl against a kubeconfig with an isolated discovery cache.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let cache = kubeconfig.parent().unwrap_or(Path::new(".")).join("kubectl-cache");
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .arg("--cache-dir")
        .arg(&cache)
        .args(args);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = cmd.spawn().expect("kubectl on PATH");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl ran")
}

/// stdout of a successful command, or a panic showing stderr.
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "command failed: {}\nstdout: {stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Where the reference CRD API server recipe lives: `EPHEMERA_CRD_APISERVER_DIR`, else the project's
/// own `e2e/crd-apiserver`.
pub fn reference_tool_dir() -> PathBuf {
    if let Ok(d) = std::env::var("EPHEMERA_CRD_APISERVER_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crd-apiserver")
}

/// The real apiextensions-apiserver + etcd built by `e2e/crd-apiserver`, stopped on drop.
pub struct Reference {
    /// Its data and kubeconfig (removed on drop).
    pub dir: tempfile::TempDir,
    /// The kubeconfig a client uses.
    pub kubeconfig: PathBuf,
}

impl Reference {
    /// Starts it (it must have been built: `e2e/crd-apiserver/build.sh`).
    pub fn start() -> Reference {
        let tool = reference_tool_dir();
        assert!(
            tool.join("start.sh").exists(),
            "reference CRD API server not found at {} (set EPHEMERA_CRD_APISERVER_DIR)",
            tool.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(tool.join("start.sh")).arg(dir.path()).output().expect("run start.sh");
        assert!(out.status.success(), "reference server failed to start: {}", String::from_utf8_lossy(&out.stderr));
        let kubeconfig = dir.path().join("kubeconfig");
        Reference { dir, kubeconfig }
    }

    /// A kube client for it.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    /// Runs kubectl against it.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig, args, None)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        stop_reference(self.dir.path());
    }
}

/// Stops what `start.sh DIR` started: it records etcd's and the server's pids in `DIR/pids`
/// (without this both outlive the test).
pub fn stop_reference(dir: &Path) {
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
    let pids: Vec<&str> = pids.split_whitespace().filter(|p| p.bytes().all(|b| b.is_ascii_digit())).collect();
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill").args(&pids).output();
    // Gone before the caller removes their directory (etcd writes to it while it stops).
    let alive = || pids.iter().any(|p| Path::new("/proc").join(p).exists());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        let _ = Command::new("kill").arg("-KILL").args(&pids).output();
    }
}

/// Polls until `f` returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident memory of a process in KiB (0 if it cannot be read), for benchmarks.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU seconds a process has used (0 if it cannot be read), for benchmarks.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the `(comm)` field: state is field 3, utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|s| s.parse().unwrap_or(0.0)).collect();
    // Clock ticks per second: asked once per process, not on every sample.
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / ticks
}

/// Resident memory of a process in MiB (0 if it cannot be read), for benchmarks.
pub fn rss_mib(pid: u32) -> f64 {
    rss_kib(pid) as f64 / 1024.0
}

/// The `p` percentile (0 to 1, nearest rank) of sorted durations, in milliseconds (NaN for none),
/// as every bench reports it.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// One result of a benchmark: a metric of Ephemera's and, where one is measured in the same run, of
/// its baseline. Printed as a `result:` line and, when `EPHEMERA_BENCH_RESULTS` names a file (as
/// `e2e/scripts/bench-all.sh` does), appended to it as a JSON line for the results table.
pub fn bench_result(bench: &str, metric: &str, ours: f64, baseline: Option<f64>) {
    let ratio = baseline.filter(|b| *b != 0.0).map(|b| ours / b);
    let shown = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    println!("result: {bench} | {metric} | {ours:.2} | {} | {}", shown(baseline), shown(ratio));
    let Some(path) = std::env::var_os("EPHEMERA_BENCH_RESULTS") else { return };
    let line =
        serde_json::json!({"bench": bench, "metric": metric, "ours": ours, "baseline": baseline, "ratio": ratio});
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("could not append to {}: {e}", std::path::Path::new(&path).display());
    }
}
