//! Defaults the real apiserver fills into built-in kinds on create (the subset Pods need, so status
//! readers and the kubelet see what they would see on a real cluster).

use serde_json::{json, Value};

fn default(obj: &mut Value, field: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(field.to_string()).or_insert(v);
    }
}

fn container_defaults(c: &mut Value) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    let image = c["image"].as_str().unwrap_or_default();
    let tag = image
        .split('@')
        .next()
        .unwrap_or(image)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split_once(':')
        .map(|(_, t)| t.to_string());
    let latest = if image.contains('@') { false } else { tag.as_deref().is_none_or(|t| t == "latest") };
    default(c, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
    default(c, "resources", json!({}));
    for p in c["ports"].as_array_mut().into_iter().flatten() {
        default(p, "protocol", json!("TCP"));
    }
}

/// Fills Pod spec defaults: restart policy, grace period, DNS and scheduler, service account,
/// per-container termination message and pull policy; the initial `Pending` status.
pub fn pod_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else { return };
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "priority", json!(0));
    let sa = spec["serviceAccountName"].as_str().or(spec["serviceAccount"].as_str()).unwrap_or("default").to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    for field in ["containers", "initContainers"] {
        for c in spec[field].as_array_mut().into_iter().flatten() {
            container_defaults(c);
        }
    }
    let status = json!({"phase": "Pending", "qosClass": "BestEffort"});
    if pod.get("status").is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty())) {
        pod["status"] = status;
    }
}

/// Fills a Pod template's spec defaults, as the apiserver defaults templates (no service account or
/// priority: admission fills those into the Pods themselves).
fn template_defaults(template: &mut Value) {
    let Some(spec) = template.get("spec").filter(|s| s.is_object()).cloned() else { return };
    let mut pod = json!({"spec": spec});
    pod_defaults(&mut pod);
    let given = &template["spec"];
    for field in ["serviceAccountName", "serviceAccount", "priority"] {
        if given.get(field).is_none() {
            if let Some(m) = pod["spec"].as_object_mut() {
                m.remove(field);
            }
        }
    }
    template["spec"] = pod["spec"].take();
}

/// Fills `apps/v1` Deployment and ReplicaSet defaults on create: one replica, for Deployments the
/// RollingUpdate strategy (25% surge and unavailability), ten old ReplicaSets kept, a 600 s
/// progress deadline; the template as Pods are defaulted.
pub fn workload_defaults(kind: &str, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    default(spec, "replicas", json!(1));
    if kind == "Deployment" {
        default(spec, "strategy", json!({"type": "RollingUpdate"}));
        if spec["strategy"]["type"] == "RollingUpdate" {
            let rolling =
                spec["strategy"].as_object_mut().map(|s| s.entry("rollingUpdate").or_insert_with(|| json!({})));
            if let Some(r) = rolling {
                default(r, "maxSurge", json!("25%"));
                default(r, "maxUnavailable", json!("25%"));
            }
        }
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "progressDeadlineSeconds", json!(600));
    }
    if let Some(t) = spec.get_mut("template") {
        template_defaults(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_get_upstream_defaults_and_their_templates_pod_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        workload_defaults("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(
            (d["spec"]["revisionHistoryLimit"].as_i64(), d["spec"]["progressDeadlineSeconds"].as_i64()),
            (Some(10), Some(600))
        );
        let t = &d["spec"]["template"]["spec"];
        assert_eq!(
            (t["restartPolicy"].as_str(), t["containers"][0]["imagePullPolicy"].as_str()),
            (Some("Always"), Some("IfNotPresent"))
        );
        assert!(t.get("serviceAccountName").is_none() && d["spec"]["template"].get("status").is_none());
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        workload_defaults("Deployment", &mut recreate);
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pods_get_upstream_defaults() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox:1.36"}]}});
        pod_defaults(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["spec"]["containers"][0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(pod["status"]["phase"], "Pending");
    }
}
