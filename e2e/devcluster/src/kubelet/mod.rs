//! The kubelet: schedules Pods onto the one local node, pulls their images from registries and runs
//! their containers with runc, reporting status the way a real kubelet does. See `pod.rs` for a
//! Pod's life, `pull.rs` for images, `bundle.rs` for how an image and a container spec become an OCI
//! config, `runc.rs` for how it runs, and this crate's README for what is and is not enforced.

pub mod bundle;
mod dns;
mod env;
pub mod logs;
mod pod;
mod probe;
pub mod pull;
pub mod pull_secrets;
pub mod runc;
pub mod seccomp;
mod status;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::http::App;
use crate::meta;
use crate::store::{EventType, ResKey, Write};

/// Where images come from: the container runtime's registry settings.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// Registries (`host:port`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Registry → the registry its pulls go to instead (containerd's mirrors).
    pub mirrors: BTreeMap<String, String>,
}

/// Kubelet settings.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Name of the one node.
    pub node_name: String,
    /// Where Pod folders (volumes, logs, termination messages, bundles) and runc's state live.
    pub root: PathBuf,
    /// The node's image store (pulled layers and unpacked images); default `<root>/images`. Nodes may
    /// share one (the store is safe for concurrent pulls).
    pub image_store: Option<PathBuf>,
    /// Registry settings.
    pub registries: Registries,
    /// First restart back-off (doubles per restart, capped at five minutes). Kubernetes uses 10s.
    pub backoff_base: Duration,
    /// The pids cgroup limit of each container (the kubelet's `podPidsLimit`, applied per container).
    pub pids_limit: Option<i64>,
}

/// State shared by the kubelet loop and its Pod workers.
pub struct Shared {
    root: PathBuf,
    puller: pull::Puller,
    runtime: runc::Runtime,
    pids_limit: Option<i64>,
    api_port: u16,
    ca_pem: String,
    backoff_base: Duration,
    workers: Mutex<HashMap<String, watch::Sender<Option<Arc<Value>>>>>,
}

impl Shared {
    fn forget(&self, uid: &str) {
        if let Ok(mut w) = self.workers.lock() {
            w.remove(uid);
        }
    }
}

fn pods() -> ResKey {
    ResKey::new("", "pods")
}

/// Starts the kubelet; returns when the node is registered. Runs until the returned task is aborted.
pub fn start(app: Arc<App>, cfg: KubeletConfig, api_port: u16, ca_pem: String) -> tokio::task::JoinHandle<()> {
    let runtime = runc::Runtime::new(cfg.root.join("runc"), tokio::runtime::Handle::current());
    tracing::info!(node = %cfg.node_name, root = %cfg.root.display(), unavailable = ?runtime.unavailable(), "kubelet starting");
    let image_store = cfg.image_store.clone().unwrap_or_else(|| cfg.root.join("images"));
    let shared = Arc::new(Shared {
        root: cfg.root.clone(),
        puller: pull::Puller::new(image_store, cfg.registries.insecure.clone(), cfg.registries.mirrors.clone()),
        pids_limit: cfg.pids_limit,
        api_port,
        ca_pem,
        backoff_base: cfg.backoff_base,
        workers: Mutex::new(HashMap::new()),
        runtime,
    });
    if let Ok(mut l) = app.logs.write() {
        *l = Some(Arc::new(logs::LogServer { root: cfg.root.clone(), app: Arc::downgrade(&app) }));
    }
    if let Ok(mut n) = app.kubelet_node.write() {
        *n = Some(cfg.node_name.clone());
    }
    register_node(&app, &cfg.node_name, shared.runtime.unavailable());
    recover(&app, &cfg.node_name);
    tokio::spawn(run(app, shared, cfg.node_name))
}

fn register_node(app: &App, node: &str, unavailable: Option<&str>) {
    let now = meta::now();
    // A node whose runtime cannot run containers is not Ready, as the kubelet reports a runtime down.
    let ready = match unavailable {
        None => {
            json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now})
        }
        Some(why) => {
            json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": format!("container runtime is down: {why}"), "lastHeartbeatTime": now, "lastTransitionTime": now})
        }
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let node_obj = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "uid": meta::uid(),
            "creationTimestamp": now,
            "labels": {
                "kubernetes.io/hostname": node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {},
        "status": {
            "capacity": {"cpu": cpus.to_string(), "pods": "110"},
            "allocatable": {"cpu": cpus.to_string(), "pods": "110"},
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node}],
            "nodeInfo": {"kubeletVersion": "v1.36.0-ephemera-devcluster", "operatingSystem": "linux", "architecture": std::env::consts::ARCH, "containerRuntimeVersion": "runc://devcluster"},
        },
    });
    let _ = app.store.write::<()>(&ResKey::new("", "nodes"), "", node, |cur| {
        let mut obj = node_obj.clone();
        if let Some(cur) = cur {
            // Keep identity across restarts; refresh status.
            obj["metadata"]["uid"] = cur["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = cur["metadata"]["creationTimestamp"].clone();
        }
        Ok(Write::Put(obj))
    });
}

/// After a restart no container from before is running. Pods that had started are ended the way a
/// node reboot ends them: `Never` Pods fail with `ContainerStatusUnknown`; others start again.
fn recover(app: &App, node: &str) {
    let (items, _) = app.store.list(&pods(), None);
    for pod in items {
        if pod["spec"]["nodeName"].as_str() != Some(node) {
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        let (ns, name) = (
            meta::meta_str(&pod, "namespace").unwrap_or_default().to_string(),
            meta::meta_str(&pod, "name").unwrap_or_default().to_string(),
        );
        if pod["metadata"].get("deletionTimestamp").is_some() && meta::finalizers(&pod).is_empty() {
            let _ = app.store.write::<()>(&pods(), &ns, &name, |_| Ok(Write::Delete));
            continue;
        }
        let started = pod["status"].get("startTime").is_some();
        if !started
            || matches!(phase, "Succeeded" | "Failed")
            || pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") != "Never"
        {
            continue;
        }
        let now = meta::now();
        let _ = app.store.write::<()>(&pods(), &ns, &name, |cur| {
            let Some(cur) = cur else { return Ok(Write::Keep) };
            let mut next = cur.clone();
            for field in ["containerStatuses", "initContainerStatuses"] {
                if let Some(list) = next["status"][field].as_array_mut() {
                    for c in list {
                        if c["state"].get("terminated").is_none() {
                            c["state"] = json!({"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown", "message": "The container could not be located when the pod was terminated", "startedAt": null, "finishedAt": now}});
                            c["ready"] = json!(false);
                            c["started"] = json!(false);
                        }
                    }
                }
            }
            next["status"]["phase"] = json!("Failed");
            if let Some(conds) = next["status"]["conditions"].as_array_mut() {
                for c in conds {
                    if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                        c["status"] = json!("False");
                        c["reason"] = json!("PodCompleted");
                    }
                }
            }
            Ok(Write::Put(next))
        });
    }
}

async fn run(app: Arc<App>, k: Arc<Shared>, node: String) {
    loop {
        let (items, _, mut rx) = app.store.list_and_subscribe(&pods(), None);
        for pod in items {
            handle(&app, &k, &node, pod, false);
        }
        loop {
            match rx.recv().await {
                Ok(ev) if ev.key == pods() => handle(&app, &k, &node, ev.object.clone(), ev.kind == EventType::Deleted),
                Ok(_) => {}
                // Fell behind: start over from a fresh list.
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

fn handle(app: &Arc<App>, k: &Arc<Shared>, node: &str, pod: Arc<Value>, deleted: bool) {
    let uid = meta::meta_str(&pod, "uid").unwrap_or_default().to_string();
    let bound = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if deleted {
        if let Ok(w) = k.workers.lock() {
            if let Some(tx) = w.get(&uid) {
                let _ = tx.send(None);
            }
        }
        return;
    }
    if bound.is_empty() {
        let scheduler = pod["spec"]["schedulerName"].as_str().unwrap_or("default-scheduler");
        if scheduler == "default-scheduler" && pod["metadata"].get("deletionTimestamp").is_none() {
            schedule(app, &pod, node);
        }
        return;
    }
    if bound != node {
        return;
    }
    let Ok(mut workers) = k.workers.lock() else { return };
    if let Some(tx) = workers.get(&uid) {
        let _ = tx.send(Some(pod));
        return;
    }
    let terminal = matches!(pod["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"));
    if terminal {
        // Finished Pods have nothing running: a deletion completes at once.
        if pod["metadata"].get("deletionTimestamp").is_some() && meta::finalizers(&pod).is_empty() {
            let (ns, name) = (
                meta::meta_str(&pod, "namespace").unwrap_or_default().to_string(),
                meta::meta_str(&pod, "name").unwrap_or_default().to_string(),
            );
            let _ = app.store.write::<()>(&pods(), &ns, &name, |cur| match cur {
                Some(c) if meta::meta_str(c, "uid") == Some(uid.as_str()) => Ok(Write::Delete),
                _ => Ok(Write::Keep),
            });
        }
        return;
    }
    let (tx, rx) = watch::channel(Some(pod.clone()));
    workers.insert(uid, tx);
    let worker = pod::Worker::new(app.clone(), k.clone(), pod, rx);
    tokio::spawn(worker.run());
}

/// Binds an unscheduled Pod to the node (the scheduler's job) and records `PodScheduled`.
fn schedule(app: &App, pod: &Value, node: &str) {
    let (ns, name) = (
        meta::meta_str(pod, "namespace").unwrap_or_default().to_string(),
        meta::meta_str(pod, "name").unwrap_or_default().to_string(),
    );
    let uid = meta::meta_str(pod, "uid").map(String::from);
    let now = meta::now();
    let _ = app.store.write::<()>(&pods(), &ns, &name, |cur| {
        let Some(cur) = cur else { return Ok(Write::Keep) };
        if meta::meta_str(cur, "uid").map(String::from) != uid
            || cur["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
        {
            return Ok(Write::Keep);
        }
        let mut next = cur.clone();
        next["spec"]["nodeName"] = json!(node);
        next["status"]["phase"] = json!("Pending");
        next["status"]["conditions"] =
            json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}]);
        Ok(Write::Put(next))
    });
}
