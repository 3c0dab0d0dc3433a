//! The local stack the full-stack tests run on: a dev cluster whose kubelet pulls the worker image
//! built from this checkout and the Task images from the test registry, the CRDs applied with
//! kubectl, and operator replicas.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ephemera_crds::{Task, TaskPhase, TaskQueue, TaskQueueSpec};
use ephemera_devcluster::testing::{kubectl, ok, Dev};
use ephemera_operator::Config;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `ephemera-operator` binary of this build (built with the workspace's binaries when missing
/// or older than its sources).
pub fn operator_binary() -> PathBuf {
    // Test binaries live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let bin = profile_dir.join("ephemera-operator");
    if stale(&bin, &["operator", "crds", "lifecycle", "schedules", "serve"]) {
        // The same command the test script runs first, so no dependency is built twice.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(repo()).args(["build", "--workspace", "--bins"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let ok = build.status().expect("cargo");
        assert!(ok.success() && bin.exists(), "could not build ephemera-operator at {}", bin.display());
    }
    bin
}

/// The `ephemera-api` binary of this build (built when missing or older than its sources).
pub fn api_binary() -> PathBuf {
    sibling_binary("ephemera-api", "ephemera-api", &["api-server", "crds", "schedules", "webhooks", "serve"])
}

/// The `ephemera` CLI of this build (built when missing or older than its sources).
pub fn cli_binary() -> PathBuf {
    sibling_binary("ephemera", "ephemera-cli", &["cli"])
}

/// The binary `name` of `package`, beside the operator's, built (in the same profile) when missing
/// or older than the sources under `dirs`.
fn sibling_binary(name: &str, package: &str, dirs: &[&str]) -> PathBuf {
    let bin = operator_binary().with_file_name(name);
    if stale(&bin, dirs) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(repo()).args(["build", "-p", package, "--bins"]);
        if bin.parent().is_some_and(|d| d.ends_with("release")) {
            build.arg("--release");
        }
        let ok = build.status().expect("cargo");
        assert!(ok.success() && bin.exists(), "could not build {name} at {}", bin.display());
    }
    bin
}

/// Whether `built` is missing or older than the sources under the repository's `dirs`.
fn stale(built: &Path, dirs: &[&str]) -> bool {
    let at = std::fs::metadata(built).and_then(|m| m.modified()).ok();
    at.is_none_or(|b| dirs.iter().any(|d| newest_source(&repo().join(d)) > Some(b)))
}

/// The worker image the test command built into the test registry, by digest (`images/build.sh
/// --profile dev --component worker`); built here when missing or older than the worker's sources.
pub fn worker_image() -> String {
    test_images("test-images.env", &["worker"], &["worker", "crds", "images"]).remove(0)
}

/// Dev-profile images of `components` in the test registry, by digest, in the order given: built
/// with `images/build.sh` into `target/images/<env_file>` when that file is missing or older than
/// the sources under `sources`.
pub fn test_images(env_file: &str, components: &[&str], sources: &[&str]) -> Vec<String> {
    let env_file = repo().join("target/images").join(env_file);
    if stale(&env_file, sources) {
        let registry = ephemera_devcluster::testing::test_registry();
        // One build at a time across test processes (nextest runs each test in its own). `-o`: the
        // build may start the registry, which must not inherit the lock and hold it for good.
        let mut build = Command::new("flock");
        build
            .arg("-o")
            .arg(repo().join("target/images.lock"))
            .arg(repo().join("images/build.sh"))
            .args(["--profile", "dev"]);
        for c in components {
            build.args(["--component", c]);
        }
        let status = build
            .args(["--tag", "test", "--registry"])
            .arg(format!("{registry}/ephemera-dev"))
            .arg("--env-file")
            .arg(&env_file)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("images/build.sh");
        assert!(status.success(), "could not build the test images {components:?}");
    }
    let text = std::fs::read_to_string(&env_file).expect("the test images' env file");
    components
        .iter()
        .map(|c| {
            let var = format!("EPHEMERA_{}_IMAGE=", c.to_uppercase());
            text.lines()
                .find_map(|l| l.strip_prefix(var.as_str()))
                .map(|r| r.trim().to_string())
                .unwrap_or_else(|| panic!("{var} in {}", env_file.display()))
        })
        .collect()
}

/// The newest modification time of the files under `dir` (recursively).
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() { newest_source(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(t);
    }
    newest
}

/// A dev cluster with the CRDs installed, and a client.
pub struct Stack {
    /// The cluster.
    pub dev: Dev,
    /// Admin client.
    pub client: Client,
}

/// Starts the stack.
pub async fn stack() -> Stack {
    stack_with(None).await
}

/// Starts the stack; with `slow_pull`, the first pull of each Docker Hub image (the Task images)
/// takes that long (the node pulls them through [`crate::slow_registry`]).
pub async fn stack_with(slow_pull: Option<Duration>) -> Stack {
    stack_configured(slow_pull, None).await
}

/// Starts the stack with the cluster's audit log (one JSON line per request) written to `path`.
pub async fn stack_audited(path: PathBuf) -> Stack {
    stack_configured(None, Some(path)).await
}

async fn stack_configured(slow_pull: Option<Duration>, audit_log: Option<PathBuf>) -> Stack {
    let slow = match slow_pull {
        Some(delay) => Some(crate::slow_registry::start(&ephemera_devcluster::testing::test_registry(), delay).await),
        None => None,
    };
    let dev = Dev::start_with(|c| {
        c.audit_log = audit_log;
        if let Some(k) = c.kubelet.as_mut() {
            k.backoff_base = Duration::from_millis(500);
            if let Some(slow) = slow {
                k.registries.insecure.push(slow.clone());
                k.registries.mirrors.insert("docker.io".into(), slow);
            }
        }
    })
    .await;
    ok(kubectl(
        &dev.kubeconfig,
        &["apply", "--server-side", "-f", repo().join("crds/yaml").to_str().unwrap_or_default()],
        None,
    ));
    for crd in [
        "tasks.ephemera.dev",
        "taskqueues.ephemera.dev",
        "credentials.ephemera.dev",
        "tasktemplates.ephemera.dev",
        "clustertasktemplates.ephemera.dev",
        "taskschedules.ephemera.dev",
    ] {
        ok(kubectl(
            &dev.kubeconfig,
            &["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=30s"],
            None,
        ));
    }
    // The operator's own namespace (its attempt records live there, out of the tenants' reach).
    ok(kubectl(&dev.kubeconfig, &["create", "namespace", OPERATOR_NAMESPACE], None));
    let client = dev.client().await;
    Stack { dev, client }
}

/// The namespace the test operators run in.
pub const OPERATOR_NAMESPACE: &str = "ephemera-system";

/// Operator settings for tests: short timeouts, the mapped worker image, the credential hand-off on
/// a free loopback port.
pub fn config(identity: &str) -> Config {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    Config {
        worker_image: worker_image(),
        // Tests that name no image run their shell commands in busybox (from the test registry).
        default_task_image: Some("busybox".into()),
        pod_start_timeout: Duration::from_secs(5),
        termination_grace: Duration::from_secs(2),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        namespace: OPERATOR_NAMESPACE.into(),
        handoff_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        handoff_url: Some(format!("http://127.0.0.1:{port}")),
        ..Config::default()
    }
}

/// Runs an operator replica with `cfg` until the returned handle is aborted.
pub fn operator_with(client: &Client, cfg: Config) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        let _ = ephemera_operator::run(client, cfg, std::future::pending()).await;
    })
}

/// Runs an operator replica with the test settings.
pub fn operator(client: &Client, identity: &str) -> tokio::task::JoinHandle<()> {
    operator_with(client, config(identity))
}

/// Creates a Task from a JSON spec.
pub async fn create(tasks: &Api<Task>, name: &str, spec: serde_json::Value) -> Task {
    let t: Task = serde_json::from_value(
        json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "metadata": {"name": name}, "spec": spec}),
    )
    .expect("task");
    tasks.create(&PostParams::default(), &t).await.expect("create task")
}

/// Waits (60 s) for a Task to reach `want`; on timeout the panic shows the Task's last status.
pub async fn phase(tasks: &Api<Task>, name: &str, want: TaskPhase) -> Task {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = tasks.get(name).await.ok();
        if let Some(t) = got.as_ref().filter(|t| t.status.as_ref().is_some_and(|s| s.phase == want)) {
            return t.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let status = got.and_then(|t| t.status).map(|s| serde_json::to_string_pretty(&s).unwrap_or_default());
            panic!("timed out waiting for task {name} to be {want:?}; last status: {}", status.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a TaskQueue.
pub async fn queue(client: &Client, name: &str, concurrency: i32) {
    let queues: Api<TaskQueue> = Api::all(client.clone());
    let q = TaskQueue::new(name, TaskQueueSpec { concurrency, ..Default::default() });
    queues.create(&PostParams::default(), &q).await.expect("create queue");
}
