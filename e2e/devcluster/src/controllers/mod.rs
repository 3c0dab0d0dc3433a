//! The controllers of a control plane that the chart's objects need, each a pure sync (`plan`)
//! in its own file, run here against the store: Deployments → ReplicaSets → Pods, Service
//! endpoints, PodDisruptionBudget status, and the `kube-root-ca.crt` ConfigMap in every namespace.
//! Their writes go through the API's own pipeline (`http::call`), as a controller manager's do.

mod deployment;
mod disruption;
mod endpoints;
mod objects;
mod replicaset;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{json, Value};

use crate::http::{call, App};
use crate::meta;
use crate::store::ResKey;

pub use endpoints::SERVICE_NAME_LABEL;
pub use objects::{selects, service_selects};

const DEBOUNCE: Duration = Duration::from_millis(20);
/// Also sync this often: availability after `minReadySeconds` is a matter of time, not of events.
const RESYNC: Duration = Duration::from_secs(2);

fn watched(key: &ResKey) -> bool {
    [
        ResKey::new("apps", "deployments"),
        ResKey::new("apps", "replicasets"),
        ResKey::new("", "pods"),
        ResKey::new("", "services"),
        ResKey::new("", "namespaces"),
        ResKey::new("", "configmaps"),
        ResKey::new("policy", "poddisruptionbudgets"),
    ]
    .contains(key)
}

/// Runs the controllers until the store is dropped; `ca_pem` is what `kube-root-ca.crt` holds.
pub async fn run(app: Arc<App>, ca_pem: String) {
    let mut rx = app.store.subscribe();
    let mut tick = tokio::time::interval(RESYNC);
    loop {
        let relevant = tokio::select! {
            _ = tick.tick() => true,
            ev = rx.recv() => match ev {
                Ok(ev) => watched(&ev.key),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        if relevant {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            sync_all(&app, &ca_pem).await;
        }
    }
}

fn list(app: &App, group: &str, plural: &str) -> Vec<Arc<Value>> {
    app.store.list(&ResKey::new(group, plural), None).0
}

fn ns_of(o: &Value) -> &str {
    meta::meta_str(o, "namespace").unwrap_or_default()
}

fn name_of(o: &Value) -> &str {
    meta::meta_str(o, "name").unwrap_or_default()
}

/// Logs a failed controller write; the next sync retries it (level-triggered).
fn report<T>(what: &str, r: Result<T, crate::http::ApiError>) {
    if let Err(e) = r {
        tracing::debug!(%what, error = %e, "controller write failed; retried on the next sync");
    }
}

async fn sync_all(app: &Arc<App>, ca_pem: &str) {
    publish_root_ca(app, ca_pem).await;
    let pods = list(app, "", "pods");
    let in_ns = |ns: &str| -> Vec<&Value> { pods.iter().map(|p| p.as_ref()).filter(|p| ns_of(p) == ns).collect() };
    let now = meta::now();
    for d in list(app, "apps", "deployments") {
        if objects::terminating(&d) {
            continue;
        }
        let sets = list(app, "apps", "replicasets");
        let local: Vec<&Value> = sets.iter().map(|s| s.as_ref()).filter(|s| ns_of(s) == ns_of(&d)).collect();
        sync_deployment(app, &d, &local, &in_ns(ns_of(&d)), &now).await;
    }
    for rs in list(app, "apps", "replicasets") {
        if objects::terminating(&rs) || !replicaset::selector_matches_template(&rs) {
            continue;
        }
        sync_replica_set(app, &rs, &in_ns(ns_of(&rs))).await;
    }
    let pods = list(app, "", "pods");
    let in_ns = |ns: &str| -> Vec<&Value> { pods.iter().map(|p| p.as_ref()).filter(|p| ns_of(p) == ns).collect() };
    sync_endpoints(app, &pods).await;
    for pdb in list(app, "policy", "poddisruptionbudgets") {
        let status = disruption::status(&pdb, &in_ns(ns_of(&pdb)), &now);
        if same_ignoring_times(&pdb["status"], &status) {
            continue;
        }
        let path = format!("/apis/policy/v1/namespaces/{}/poddisruptionbudgets/{}/status", ns_of(&pdb), name_of(&pdb));
        report("pdb status", call(app, Method::PATCH, &path, Some(&json!({"status": status}))).await);
    }
}

/// Two statuses differ in more than the timestamps a sync computes afresh.
fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "lastTransitionTime" | "lastUpdateTime"))
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(a) == strip(b)
}

async fn publish_root_ca(app: &Arc<App>, ca_pem: &str) {
    for ns in list(app, "", "namespaces") {
        if objects::terminating(&ns) {
            continue;
        }
        let name = name_of(&ns);
        let current = app.store.get(&ResKey::new("", "configmaps"), name, "kube-root-ca.crt");
        if current.as_ref().is_some_and(|c| c["data"]["ca.crt"] == ca_pem) {
            continue;
        }
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": name,
                         "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": ca_pem},
        });
        let path = format!("/api/v1/namespaces/{name}/configmaps");
        let r = match current {
            None => call(app, Method::POST, &path, Some(&cm)).await,
            Some(_) => call(app, Method::PUT, &format!("{path}/kube-root-ca.crt"), Some(&cm)).await,
        };
        report("kube-root-ca.crt", r);
    }
}

async fn sync_deployment(app: &Arc<App>, d: &Value, sets: &[&Value], pods: &[&Value], now: &str) {
    let plan = deployment::plan(d, sets, pods, now);
    let (ns, name) = (ns_of(d), name_of(d));
    let base = format!("/apis/apps/v1/namespaces/{ns}/replicasets");
    for action in &plan.actions {
        let r = match action {
            deployment::Action::Create(rs) => call(app, Method::POST, &base, Some(rs)).await,
            deployment::Action::Scale { name, replicas, revision } => {
                let mut patch = json!({"spec": {"replicas": replicas}});
                if let Some(rev) = revision {
                    patch["metadata"] = json!({"annotations": {"deployment.kubernetes.io/revision": rev}});
                }
                call(app, Method::PATCH, &format!("{base}/{name}"), Some(&patch)).await
            }
            deployment::Action::Delete(name) => call(app, Method::DELETE, &format!("{base}/{name}"), None).await,
        };
        report("replicaset", r);
    }
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
    if d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] != plan.revision {
        let patch = json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": plan.revision}}});
        report("deployment revision", call(app, Method::PATCH, &path, Some(&patch)).await);
    }
    if !same_ignoring_times(&d["status"], &plan.status) {
        report(
            "deployment status",
            call(app, Method::PATCH, &format!("{path}/status"), Some(&json!({"status": plan.status}))).await,
        );
    }
}

async fn sync_replica_set(app: &Arc<App>, rs: &Value, pods: &[&Value]) {
    let plan = replicaset::plan(rs, pods, meta::unix_now());
    let ns = ns_of(rs);
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    for _ in 0..plan.create {
        report("pod", call(app, Method::POST, &pods_path, Some(&replicaset::pod_from_template(rs))).await);
    }
    for name in &plan.delete {
        report("pod delete", call(app, Method::DELETE, &format!("{pods_path}/{name}"), None).await);
    }
    if !same_ignoring_times(&rs["status"], &plan.status) {
        let path = format!("/apis/apps/v1/namespaces/{ns}/replicasets/{}/status", name_of(rs));
        report("replicaset status", call(app, Method::PATCH, &path, Some(&json!({"status": plan.status}))).await);
    }
}

/// Marks Endpoints this controller wrote (upstream's annotation), so it removes them with their
/// Service and leaves hand-made ones alone.
const TRIGGER: &str = "endpoints.kubernetes.io/last-change-trigger-time";

async fn sync_endpoints(app: &Arc<App>, all_pods: &[Arc<Value>]) {
    let pods_in =
        |ns: &str| -> Vec<&Value> { all_pods.iter().map(|p| p.as_ref()).filter(|p| ns_of(p) == ns).collect() };
    let services = list(app, "", "services");
    for svc in &services {
        if objects::terminating(svc) || svc["spec"]["selector"].as_object().is_none_or(|m| m.is_empty()) {
            continue;
        }
        let (ns, name) = (ns_of(svc), name_of(svc));
        let pods = pods_in(ns);
        let mut want = endpoints::endpoints(svc, &pods);
        let current = app.store.get(&ResKey::new("", "endpoints"), ns, name);
        let changed = current
            .as_ref()
            .is_none_or(|c| c["subsets"] != want["subsets"] || c["metadata"]["labels"] != want["metadata"]["labels"]);
        if changed {
            want["metadata"]["annotations"] = json!({TRIGGER: meta::now()});
            let path = format!("/api/v1/namespaces/{ns}/endpoints");
            let r = match current {
                None => call(app, Method::POST, &path, Some(&want)).await,
                Some(_) => call(app, Method::PUT, &format!("{path}/{name}"), Some(&want)).await,
            };
            report("endpoints", r);
        }
        let slice = endpoints::endpoint_slice(svc, &pods);
        let slice_name = endpoints::slice_name(svc);
        let current = app.store.get(&ResKey::new("discovery.k8s.io", "endpointslices"), ns, &slice_name);
        let changed = current.as_ref().is_none_or(|c| {
            c["endpoints"] != slice["endpoints"]
                || c["ports"] != slice["ports"]
                || c["metadata"]["labels"] != slice["metadata"]["labels"]
        });
        if changed {
            let path = format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices");
            let r = match current {
                None => call(app, Method::POST, &path, Some(&slice)).await,
                Some(_) => call(app, Method::PUT, &format!("{path}/{slice_name}"), Some(&slice)).await,
            };
            report("endpointslice", r);
        }
    }
    // Endpoints whose Service is gone (slices go with their owner, by garbage collection).
    for ep in list(app, "", "endpoints") {
        let managed = ep["metadata"]["annotations"].get(TRIGGER).is_some();
        let has_service = services.iter().any(|s| ns_of(s) == ns_of(&ep) && name_of(s) == name_of(&ep));
        if managed && !has_service {
            let path = format!("/api/v1/namespaces/{}/endpoints/{}", ns_of(&ep), name_of(&ep));
            report("endpoints delete", call(app, Method::DELETE, &path, None).await);
        }
    }
}
