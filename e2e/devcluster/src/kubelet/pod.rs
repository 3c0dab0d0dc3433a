//! One Pod's life on the node: images, volumes, init containers in order, main containers with their
//! restart policy and back-off, `activeDeadlineSeconds`, graceful deletion (SIGTERM, grace period,
//! SIGKILL), termination messages, and the status a real kubelet reports at every step.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::runc::{self, Handle};
use super::status::{condition, merge_conditions, Container, State};
use super::{bundle, logs, probe, pull, pull_secrets, volumes, Shared};
use crate::http::App;
use crate::meta;
use crate::store::{ResKey, Write};

/// Latest view of the Pod (None once it is gone from the API).
pub type PodRx = watch::Receiver<Option<Arc<Value>>>;

const TERMINATION_MESSAGE_LIMIT: usize = 4096;
const RETRY: Duration = Duration::from_secs(2);

struct Run {
    handle: Handle,
    /// The container's probes (main containers), stopped when the run ends.
    probes: Option<tokio::task::JoinHandle<()>>,
    started_at: String,
    term_file: Option<PathBuf>,
    log: PathBuf,
    fallback_to_logs: bool,
}

enum Outcome {
    /// The Pod is being deleted or is gone.
    Deleting,
    /// activeDeadlineSeconds passed.
    Deadline,
}

/// Runs a Pod until it is finished and, if deleted, removed.
pub struct Worker {
    app: Arc<App>,
    k: Arc<Shared>,
    rx: PodRx,
    pod: Arc<Value>,
    uid: String,
    dir: PathBuf,
    inits: Vec<Container>,
    mains: Vec<Container>,
    phase: &'static str,
    reason: Option<(String, String)>,
    start: Instant,
    start_time: String,
    volumes: Vec<(String, PathBuf)>,
    volumes_ready: bool,
    exit_tx: mpsc::UnboundedSender<Exit>,
    exit_rx: Option<mpsc::UnboundedReceiver<Exit>>,
    probe_tx: mpsc::UnboundedSender<probe::Event>,
    probe_rx: Option<mpsc::UnboundedReceiver<probe::Event>>,
}

/// (init container?, index, how it ended).
type Exit = (bool, usize, runc::Exit);

fn names_images(pod: &Value, field: &str, reason: &str) -> Vec<Container> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            Container::new(c["name"].as_str().unwrap_or_default(), c["image"].as_str().unwrap_or_default(), reason)
        })
        .collect()
}

fn restart_policy(pod: &Value) -> String {
    pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string()
}

impl Worker {
    /// A worker for a Pod bound to this node.
    pub fn new(app: Arc<App>, k: Arc<Shared>, pod: Arc<Value>, rx: PodRx) -> Self {
        let uid = meta::meta_str(&pod, "uid").unwrap_or_default().to_string();
        let has_inits = pod["spec"]["initContainers"].as_array().is_some_and(|a| !a.is_empty());
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        Self {
            exit_tx,
            exit_rx: Some(exit_rx),
            probe_tx,
            probe_rx: Some(probe_rx),
            dir: k.root.join("pods").join(&uid),
            inits: names_images(&pod, "initContainers", "PodInitializing"),
            mains: names_images(&pod, "containers", if has_inits { "PodInitializing" } else { "ContainerCreating" }),
            app,
            k,
            rx,
            pod,
            uid,
            phase: "Pending",
            reason: None,
            start: Instant::now(),
            start_time: meta::now(),
            volumes: Vec::new(),
            volumes_ready: false,
        }
    }

    fn key() -> ResKey {
        ResKey::new("", "pods")
    }

    fn ns_name(&self) -> (String, String) {
        (
            meta::meta_str(&self.pod, "namespace").unwrap_or_default().into(),
            meta::meta_str(&self.pod, "name").unwrap_or_default().into(),
        )
    }

    /// Writes the whole kubelet-owned status.
    fn publish(&self) {
        let now = meta::now();
        let all_running = !self.mains.is_empty() && self.mains.iter().all(Container::is_ready);
        let initialized = self.inits.iter().all(|c| matches!(&c.state, State::Terminated { exit_code: 0, .. }));
        let ready_reason = (!all_running).then_some("ContainersNotReady");
        let mut status = json!({
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "qosClass": super::status::qos_class(&self.pod),
            "containerStatuses": self.mains.iter().map(Container::to_json).collect::<Vec<_>>(),
        });
        if !self.inits.is_empty() {
            status["initContainerStatuses"] = json!(self.inits.iter().map(Container::to_json).collect::<Vec<_>>());
        }
        if let Some((reason, message)) = &self.reason {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        let terminal = matches!(self.phase, "Succeeded" | "Failed");
        let conditions = vec![
            condition("PodReadyToStartContainers", self.volumes_ready && !terminal, None, &now),
            condition("Initialized", initialized, (!initialized).then_some("ContainersNotInitialized"), &now),
            condition("Ready", all_running, if terminal { Some("PodCompleted") } else { ready_reason }, &now),
            condition("ContainersReady", all_running, if terminal { Some("PodCompleted") } else { ready_reason }, &now),
            condition("PodScheduled", true, None, &now),
        ];
        let (ns, name) = self.ns_name();
        let uid = self.uid.clone();
        let _ = self.app.store.write::<()>(&Self::key(), &ns, &name, |cur| {
            let Some(cur) = cur else { return Ok(Write::Keep) };
            if meta::meta_str(cur, "uid") != Some(uid.as_str()) {
                return Ok(Write::Keep);
            }
            let mut next = cur.clone();
            let mut s = status.clone();
            s["conditions"] = json!(merge_conditions(&cur["status"]["conditions"], conditions.clone()));
            if cur.get("status") == Some(&s) {
                return Ok(Write::Keep);
            }
            next["status"] = s;
            Ok(Write::Put(next))
        });
    }

    fn deleting(&self) -> bool {
        match &*self.rx.borrow() {
            None => true,
            Some(p) => p["metadata"].get("deletionTimestamp").is_some(),
        }
    }

    fn grace(&self) -> Duration {
        let secs = match &*self.rx.borrow() {
            Some(p) => p["metadata"]["deletionGracePeriodSeconds"]
                .as_u64()
                .or_else(|| p["spec"]["terminationGracePeriodSeconds"].as_u64())
                .unwrap_or(30),
            None => self.pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30),
        };
        Duration::from_secs(secs)
    }

    fn deadline(&self) -> Option<Instant> {
        self.pod["spec"]["activeDeadlineSeconds"].as_u64().map(|s| self.start + Duration::from_secs(s))
    }

    /// Sleeps, unless the Pod is deleted or its deadline passes first.
    async fn pause(&mut self, d: Duration) -> Result<(), Outcome> {
        let until = Instant::now() + d;
        loop {
            if self.deleting() {
                return Err(Outcome::Deleting);
            }
            let deadline = self.deadline().unwrap_or(until + Duration::from_secs(3600));
            if Instant::now() >= deadline {
                return Err(Outcome::Deadline);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until.min(deadline)) => {
                    if Instant::now() >= until { return Ok(()) }
                }
                r = self.rx.changed() => { if r.is_err() { return Err(Outcome::Deleting) } }
            }
        }
    }

    fn container_spec(&self, init: bool, i: usize) -> Value {
        let field = if init { "initContainers" } else { "containers" };
        self.pod["spec"][field][i].clone()
    }

    fn status_mut(&mut self, init: bool, i: usize) -> &mut Container {
        if init {
            &mut self.inits[i]
        } else {
            &mut self.mains[i]
        }
    }

    /// The node's copy of a container's image, pulled as its policy says with the Pod's pull secrets.
    async fn pull(&self, c: &Value) -> Result<pull::Pulled, pull::PullError> {
        let image = c["image"].as_str().unwrap_or_default();
        let policy = pull::PullPolicy::of(c["imagePullPolicy"].as_str(), image);
        let ns = meta::meta_str(&self.pod, "namespace").unwrap_or_default().to_string();
        let mut entries = Vec::new();
        for s in self.pod["spec"]["imagePullSecrets"].as_array().into_iter().flatten() {
            // A missing Secret is skipped, as the kubelet does (the pull then goes without it).
            let name = s["name"].as_str().unwrap_or_default();
            if let Some(secret) = self.app.store.get(&ResKey::new("", "secrets"), &ns, name) {
                entries.extend(pull_secrets::entries(&secret));
            }
        }
        let auth = image
            .parse::<oci_client::Reference>()
            .ok()
            .and_then(|r| pull_secrets::find(&entries, r.registry(), r.repository()));
        self.k.puller.pull(image, policy, auth).await
    }

    /// Per-Pod files every container gets, as the kubelet writes them: `/etc/hosts` (the Pod's name
    /// on its IP, and the Services' names: see `dns.rs`), `/etc/hostname` and the node's
    /// `/etc/resolv.conf` (every Pod here shares the host's network).
    fn pod_files(&self, hostname: &str) -> Result<Vec<(String, String, bool)>, String> {
        let dir = self.dir.join("etc");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (services, _) = self.app.store.list(&ResKey::new("", "services"), None);
        let slices = ResKey::new("discovery.k8s.io", "endpointslices");
        let has_endpoints = |svc: &Value| {
            let ns = meta::meta_str(svc, "namespace").unwrap_or_default();
            let name = meta::meta_str(svc, "name");
            self.app.store.list(&slices, Some(ns)).0.iter().any(|s| {
                s["metadata"]["labels"][crate::controllers::SERVICE_NAME_LABEL].as_str() == name
                    && s["endpoints"].as_array().is_some_and(|e| !e.is_empty())
            })
        };
        let pod_ns = meta::meta_str(&self.pod, "namespace").unwrap_or_default();
        let hosts = format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{hostname}\n{}",
            super::dns::service_lines(&services, pod_ns, has_endpoints)
        );
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut out = Vec::new();
        for (file, content, target) in [
            ("hosts", hosts, "/etc/hosts"),
            ("hostname", format!("{hostname}\n"), "/etc/hostname"),
            ("resolv.conf", resolv, "/etc/resolv.conf"),
        ] {
            let path = dir.join(file);
            if !path.exists() {
                std::fs::write(&path, content).map_err(|e| e.to_string())?;
                let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644));
            }
            out.push((target.to_string(), path.to_string_lossy().into_owned(), false));
        }
        Ok(out)
    }

    /// Builds what to run for a container from its image and spec, or the waiting reason that stops it.
    fn prepare(
        &self,
        c: &Value,
        run: u32,
        image: &pull::Pulled,
    ) -> Result<(runc::Launch, Option<PathBuf>), (String, String)> {
        let create_err = |m: String| ("CreateContainerError".to_string(), m);
        // The kubelet's service variables, then the container's own env (which wins by name).
        let mut env = vec![
            ("KUBERNETES_SERVICE_HOST".to_string(), "127.0.0.1".to_string()),
            ("KUBERNETES_SERVICE_PORT".to_string(), self.k.api_port.to_string()),
            ("KUBERNETES_PORT".to_string(), format!("tcp://127.0.0.1:{}", self.k.api_port)),
        ];
        let own = super::env::container_env(&self.app.store, &self.pod, c)
            .map_err(|m| ("CreateContainerConfigError".to_string(), m))?;
        for (k, v) in own {
            env.retain(|(x, _)| *x != k);
            env.push((k, v));
        }
        // `$(VAR)` in command and args refers to the container's env (never the image's).
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| a.iter().map(|x| super::env::expand(x.as_str().unwrap_or_default(), &env)).collect())
        };
        let (command, args) = (strings(&c["command"]), strings(&c["args"]));
        let b = bundle::bundle(&image.config, &image.accounts, &self.pod, c, &env, command, args)
            .map_err(|e| (e.reason().to_string(), e.to_string()))?;
        let name = c["name"].as_str().unwrap_or_default();
        // The API server's validation; here the name also becomes host paths and the runc id.
        if !volumes::dns_label(name) {
            return Err(create_err(format!("container name {name:?} is not a DNS-1123 label")));
        }
        let mut mounts: Vec<(String, String, bool)> = volumes::mounts_for(c, &self.volumes)
            .map_err(create_err)?
            .into_iter()
            .map(|m| (m.target, m.source.to_string_lossy().into_owned(), m.read_only))
            .collect();
        let hostname = self.pod["spec"]["hostname"].as_str().map(String::from).unwrap_or_else(|| self.ns_name().1);
        // The volumes' own files at these paths win (a kubelet skips its file when one is mounted).
        for f in self.pod_files(&hostname).map_err(create_err)? {
            if !mounts.iter().any(|m| m.0 == f.0) {
                mounts.push(f);
            }
        }
        let path = c["terminationMessagePath"].as_str().unwrap_or("/dev/termination-log").to_string();
        let term_file = self.dir.join("termination").join(format!("{name}-{run}"));
        if let Some(parent) = term_file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| create_err(e.to_string()))?;
        }
        std::fs::write(&term_file, b"").map_err(|e| create_err(e.to_string()))?;
        // Writable by whatever user the container runs as.
        let _ = std::fs::set_permissions(&term_file, std::os::unix::fs::PermissionsExt::from_mode(0o666));
        mounts.push((path, term_file.to_string_lossy().into_owned(), false));
        let log = logs::log_path(&self.k.root, &self.uid, name, run);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| create_err(e.to_string()))?;
        }
        let mut config = bundle::runtime_spec(&b, "rootfs", &hostname, &mounts);
        if let Some(limit) = self.k.pids_limit {
            config["linux"]["resources"]["pids"] = json!({"limit": limit});
        }
        let launch = runc::Launch {
            id: format!("{}-{name}-{run}", self.uid),
            bundle: self.dir.join("bundles").join(format!("{name}-{run}")),
            image_root: image.rootfs.clone(),
            config,
            log,
        };
        Ok((launch, Some(term_file)))
    }

    /// Starts a container once its image is on the node and its configuration resolves; waits (and
    /// reports why, as the kubelet does) until then.
    async fn start(&mut self, init: bool, i: usize) -> Result<Run, Outcome> {
        let c = self.container_spec(init, i);
        let image_name = c["image"].as_str().unwrap_or_default().to_string();
        let mut pull_failures = 0u32;
        loop {
            let run = self.status_mut(init, i).restarts;
            // A Pod deleted or past its deadline while its image is pulled stops waiting for it, as
            // the kubelet cancels the pull with the Pod's context.
            let mut rx = self.rx.clone();
            let deadline = self.deadline();
            let pulled = tokio::select! {
                r = self.pull(&c) => r,
                _ = rx.wait_for(|p| p.as_ref().is_none_or(|p| p["metadata"].get("deletionTimestamp").is_some())) => {
                    return Err(Outcome::Deleting)
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    return Err(Outcome::Deadline)
                }
            };
            let failure = match pulled {
                Err(e) => {
                    let backoff = matches!(e, pull::PullError::Pull(_)) && pull_failures > 0;
                    pull_failures += 1;
                    if backoff {
                        let msg = format!("Back-off pulling image {image_name:?}: ErrImagePull: {e}");
                        ("ImagePullBackOff".to_string(), msg)
                    } else {
                        (e.reason().to_string(), e.to_string())
                    }
                }
                Ok(image) => {
                    self.status_mut(init, i).image_id = image.image_id.clone();
                    match self.prepare(&c, run, &image) {
                        Err(e) => e,
                        Ok((launch, term_file)) => {
                            let (id, log) = (launch.id.clone(), launch.log.clone());
                            match self.k.runtime.start(launch).await {
                                Ok((handle, exit)) => {
                                    tracing::debug!(pod = %self.uid, elapsed_ms = self.start.elapsed().as_millis() as u64, "container started");
                                    let started_at = meta::now();
                                    let st = self.status_mut(init, i);
                                    st.state = State::Running { started_at: started_at.clone() };
                                    st.container_id = format!("runc://{id}");
                                    st.started = false;
                                    st.ready = false;
                                    self.exits_register(init, i, exit);
                                    let probes = (!init)
                                        .then(|| tokio::spawn(probe::run(i, run, c.clone(), self.probe_tx.clone())));
                                    return Ok(Run {
                                        handle,
                                        probes,
                                        started_at,
                                        term_file,
                                        log,
                                        fallback_to_logs: c["terminationMessagePolicy"].as_str()
                                            == Some("FallbackToLogsOnError"),
                                    });
                                }
                                Err(msg) => ("RunContainerError".to_string(), msg),
                            }
                        }
                    }
                }
            };
            self.status_mut(init, i).state = State::waiting(&failure.0, failure.1);
            self.publish();
            let wait = if pull_failures > 0 { Duration::from_secs(u64::from(pull_failures.min(6)) * 2) } else { RETRY };
            self.pause(wait).await?;
        }
    }

    fn exits_register(&mut self, init: bool, i: usize, exit: tokio::task::JoinHandle<runc::Exit>) {
        let tx = self.exit_tx.clone();
        tokio::spawn(async move {
            let lost = runc::Exit { code: 255, oom_killed: false, start_error: None };
            let _ = tx.send((init, i, exit.await.unwrap_or(lost)));
        });
    }

    /// Records a finished run: terminated state, termination message, log completion.
    fn finish(&mut self, init: bool, i: usize, run: Run, exit: runc::Exit) {
        logs::mark_done(&run.log);
        if let Some(p) = &run.probes {
            p.abort();
        }
        let code = exit.code;
        let mut message = run
            .term_file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(TERMINATION_MESSAGE_LIMIT)]).into_owned())
            .unwrap_or_default();
        if message.is_empty() && code != 0 && run.fallback_to_logs {
            // The kubelet's rule: the last 80 lines or 2048 bytes, whichever is smaller.
            message = logs::tail_text(&run.log, 80, 2048);
        }
        // The runtime's verdicts first: a process that never started, then the OOM killer.
        let reason = match (&exit.start_error, exit.oom_killed, code) {
            (Some(why), _, _) => {
                message = format!("failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: {why}: unknown");
                "StartError"
            }
            (None, true, _) => "OOMKilled",
            (None, false, 0) => "Completed",
            _ => "Error",
        };
        let st = self.status_mut(init, i);
        st.state = State::Terminated {
            exit_code: code,
            reason: reason.into(),
            message,
            started_at: run.started_at,
            finished_at: meta::now(),
            container_id: st.container_id.clone(),
        };
    }

    /// The kubelet's verdict at `activeDeadlineSeconds`: Failed/DeadlineExceeded, reported when the
    /// deadline passes, before the containers are stopped (they then get their grace period).
    fn deadline_exceeded(&mut self) {
        self.phase = "Failed";
        self.reason =
            Some(("DeadlineExceeded".into(), "Pod was active on the node longer than the specified deadline".into()));
    }

    /// Drives the Pod to its end; removes it from the API if it was deleted.
    pub async fn run(mut self) {
        let (Some(mut exits), Some(mut probes)) = (self.exit_rx.take(), self.probe_rx.take()) else { return };
        tracing::debug!(pod = %self.uid, "worker started");
        self.publish();
        let outcome = self.run_pod(&mut exits, &mut probes).await;
        if matches!(outcome, Some(Outcome::Deadline)) {
            self.deadline_exceeded();
        }
        self.publish();
        if matches!(outcome, Some(Outcome::Deleting)) || self.deleting() {
            self.wait_for_deletion().await;
        }
        let _ = std::fs::remove_dir_all(self.dir.join("volumes"));
        let _ = std::fs::remove_dir_all(self.dir.join("rootfs"));
        self.k.forget(&self.uid);
    }

    /// Removes the API object once the containers are gone (as the kubelet's final delete does).
    async fn wait_for_deletion(&mut self) {
        let (ns, name) = self.ns_name();
        let uid = self.uid.clone();
        let _ = self.app.store.write::<()>(&Self::key(), &ns, &name, |cur| match cur {
            Some(c) if meta::meta_str(c, "uid") == Some(uid.as_str()) && meta::finalizers(c).is_empty() => {
                Ok(Write::Delete)
            }
            _ => Ok(Write::Keep),
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn run_pod(
        &mut self,
        exits: &mut mpsc::UnboundedReceiver<Exit>,
        probes: &mut mpsc::UnboundedReceiver<probe::Event>,
    ) -> Option<Outcome> {
        let policy = restart_policy(&self.pod);
        // Volumes: retried until their sources exist (FailedMount on a real node).
        loop {
            let ctx = volumes::Ctx { store: &self.app.store, auth: &self.app.auth, ca_pem: &self.k.ca_pem };
            match volumes::prepare(&ctx, &self.pod, &self.dir) {
                Ok(v) => {
                    self.volumes = v;
                    self.volumes_ready = true;
                    tracing::debug!(pod = %self.uid, elapsed_ms = self.start.elapsed().as_millis() as u64, "volumes ready");
                    break;
                }
                Err(msg) => {
                    tracing::debug!(pod = %self.uid, error = %msg, "volume setup waiting");
                    for c in self.mains.iter_mut().chain(self.inits.iter_mut()) {
                        c.state = State::waiting(
                            if c.state == State::waiting("PodInitializing", "") {
                                "PodInitializing"
                            } else {
                                "ContainerCreating"
                            },
                            "",
                        );
                    }
                    self.publish();
                    if let Err(o) = self.pause(RETRY).await {
                        return Some(o);
                    }
                }
            }
        }

        // Init containers, one at a time, each to success.
        for i in 0..self.inits.len() {
            loop {
                let run = match self.start(true, i).await {
                    Ok(r) => r,
                    Err(o) => return Some(o),
                };
                self.publish();
                let handle = run.handle.clone();
                let exit = match self.await_exit(exits, &[(true, i, handle)]).await {
                    Ok((_, _, exit)) => exit,
                    Err(o) => return self.stop_all(exits, vec![(true, i, run)], o).await,
                };
                let ok = exit.code == 0;
                self.finish(true, i, run, exit);
                if ok {
                    break;
                }
                if policy == "Never" {
                    self.phase = "Failed";
                    return None;
                }
                let backoff = self.backoff(true, i);
                if let Err(o) = self.pause(backoff).await {
                    return Some(o);
                }
            }
        }
        for c in &mut self.mains {
            c.state = State::waiting("ContainerCreating", "");
        }

        // Main containers, restarted per policy.
        let n = self.mains.len();
        let mut runs: Vec<Option<Run>> = (0..n).map(|_| None).collect();
        let mut due: Vec<Option<Instant>> = vec![Some(Instant::now()); n];
        loop {
            for i in 0..n {
                if due[i].is_some_and(|t| t <= Instant::now()) {
                    due[i] = None;
                    match self.start(false, i).await {
                        Ok(r) => runs[i] = Some(r),
                        Err(o) => return self.stop_all(exits, Self::take_runs(&mut runs), o).await,
                    }
                }
            }
            let any_running = runs.iter().any(Option::is_some);
            self.phase = if any_running || self.mains.iter().any(|c| c.restarts > 0) { "Running" } else { "Pending" };
            if !any_running && due.iter().all(Option::is_none) {
                let ok = self.mains.iter().all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
                self.phase = if ok { "Succeeded" } else { "Failed" };
                return None;
            }
            self.publish();
            let next_due = due.iter().flatten().min().copied();
            let handles: Vec<(bool, usize, Handle)> =
                runs.iter().enumerate().filter_map(|(i, r)| r.as_ref().map(|r| (false, i, r.handle.clone()))).collect();
            let waited = tokio::select! {
                r = self.await_exit(exits, &handles) => r,
                _ = async { match next_due { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => continue,
                Some(ev) = probes.recv() => {
                    self.on_probe(ev, &runs);
                    continue;
                }
            };
            let (_, i, exit) = match waited {
                Ok(e) => e,
                Err(o) => return self.stop_all(exits, Self::take_runs(&mut runs), o).await,
            };
            let code = exit.code;
            if let Some(run) = runs[i].take() {
                self.finish(false, i, run, exit);
            }
            let restart = policy == "Always" || (policy == "OnFailure" && code != 0);
            if restart {
                let backoff = self.backoff(false, i);
                due[i] = Some(Instant::now() + backoff);
            }
        }
    }

    /// A probe's verdict: readiness recorded, or a failing container stopped (SIGTERM, then SIGKILL
    /// after the grace period) so its exit restarts it by the Pod's policy.
    fn on_probe(&mut self, ev: probe::Event, runs: &[Option<Run>]) {
        let i = ev.index;
        if self.mains.get(i).is_none_or(|c| c.restarts != ev.run) {
            return;
        }
        match ev.kind {
            probe::Kind::Started => {
                if let Some(c) = self.mains.get_mut(i) {
                    c.started = true;
                }
            }
            probe::Kind::Ready(ready) => {
                if let Some(c) = self.mains.get_mut(i) {
                    c.ready = ready;
                }
            }
            probe::Kind::Restart(why) => {
                let name = self.mains.get(i).map(|c| c.name.clone()).unwrap_or_default();
                tracing::info!(pod = %self.uid, container = %name, %why, "killing the container: it will be restarted");
                if let Some(run) = runs.get(i).and_then(Option::as_ref) {
                    run.handle.terminate();
                    let handle = run.handle.clone();
                    let grace = self.grace();
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        handle.kill();
                    });
                }
            }
        }
        self.publish();
    }

    /// Back-off before restart `n`: base × 2^(n-1), at most five minutes; marks CrashLoopBackOff.
    fn backoff(&mut self, init: bool, i: usize) -> Duration {
        let base = self.k.backoff_base;
        let pod_name = meta::meta_str(&self.pod, "name").unwrap_or_default().to_string();
        let st = self.status_mut(init, i);
        let last = st.state.clone();
        st.last = Some(last);
        st.restarts += 1;
        let exp = st.restarts.saturating_sub(1).min(10);
        let d = (base * 2u32.pow(exp)).min(Duration::from_secs(300));
        st.state = State::waiting(
            "CrashLoopBackOff",
            format!("back-off {}s restarting failed container={} pod={pod_name}", d.as_secs(), st.name),
        );
        self.publish();
        d
    }

    /// Waits for one of `handles` to exit, unless deletion or the deadline comes first.
    async fn await_exit(
        &mut self,
        exits: &mut mpsc::UnboundedReceiver<Exit>,
        handles: &[(bool, usize, Handle)],
    ) -> Result<Exit, Outcome> {
        loop {
            if self.deleting() {
                return Err(Outcome::Deleting);
            }
            let deadline = self.deadline();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Outcome::Deadline);
            }
            tokio::select! {
                e = exits.recv() => match e {
                    Some(e) if handles.iter().any(|(init, i, _)| *init == e.0 && *i == e.1) => return Ok(e),
                    Some(_) => {}
                    None => return Err(Outcome::Deleting),
                },
                r = self.rx.changed() => if r.is_err() { return Err(Outcome::Deleting) },
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
            }
        }
    }

    fn take_runs(runs: &mut [Option<Run>]) -> Vec<(bool, usize, Run)> {
        runs.iter_mut().enumerate().filter_map(|(i, r)| r.take().map(|r| (false, i, r))).collect()
    }

    /// Stops the given running containers: SIGTERM, the grace period, then SIGKILL.
    async fn stop_all(
        &mut self,
        exits: &mut mpsc::UnboundedReceiver<Exit>,
        mut runs: Vec<(bool, usize, Run)>,
        why: Outcome,
    ) -> Option<Outcome> {
        let grace = self.grace();
        if matches!(why, Outcome::Deadline) {
            self.deadline_exceeded();
            self.publish();
        }
        for (_, _, r) in &runs {
            r.handle.terminate();
        }
        let kill_at = Instant::now() + grace;
        let mut killed = false;
        while !runs.is_empty() {
            tokio::select! {
                e = exits.recv() => match e {
                    Some((init, i, code)) => {
                        if let Some(pos) = runs.iter().position(|(a, b, _)| *a == init && *b == i) {
                            let (_, _, run) = runs.remove(pos);
                            self.finish(init, i, run, code);
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(kill_at), if !killed => {
                    killed = true;
                    for (_, _, r) in &runs {
                        r.handle.kill();
                    }
                }
            }
        }
        Some(why)
    }
}
