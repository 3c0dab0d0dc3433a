//! The ReplicaSet controller: keeps `spec.replicas` active Pods from the template, owned by the
//! ReplicaSet, and reports how many exist, are ready and are available.

use serde_json::{json, Value};

use super::objects::{controller_ref, controller_uid, int, pod_active, pod_available, pod_ready, selects};
use crate::meta;

/// What one sync does.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// How many Pods to create from the template.
    pub create: usize,
    /// Pods to delete (surplus), in the order chosen.
    pub delete: Vec<String>,
    /// The status to write.
    pub status: Value,
}

/// The sync of one ReplicaSet, given every Pod of its namespace.
pub fn plan(rs: &Value, pods: &[&Value], now: i64) -> Plan {
    let uid = meta::meta_str(rs, "uid").unwrap_or_default();
    let mut owned: Vec<&Value> =
        pods.iter().copied().filter(|p| controller_uid(p) == Some(uid) && pod_active(p)).collect();
    let want = usize::try_from(int(&rs["spec"]["replicas"], 1).max(0)).unwrap_or(0);
    let min_ready = int(&rs["spec"]["minReadySeconds"], 0);
    let mut delete = Vec::new();
    if owned.len() > want {
        // Upstream's order: unscheduled, then pending, then not ready, then the newest.
        owned.sort_by_key(|p| {
            let scheduled = p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
            let running = p["status"]["phase"] == "Running";
            let created = meta::meta_str(p, "creationTimestamp").unwrap_or_default().to_string();
            (scheduled, running, pod_ready(p), std::cmp::Reverse(created))
        });
        delete = owned[..owned.len() - want]
            .iter()
            .map(|p| meta::meta_str(p, "name").unwrap_or_default().to_string())
            .collect();
    }
    let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            template_labels.as_object().into_iter().flatten().all(|(k, v)| p["metadata"]["labels"][k.as_str()] == *v)
        })
        .count();
    let status = json!({
        "replicas": owned.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": owned.iter().filter(|p| pod_ready(p)).count(),
        "availableReplicas": owned.iter().filter(|p| pod_available(p, min_ready, now)).count(),
        "observedGeneration": int(&rs["metadata"]["generation"], 1),
    });
    Plan { create: want.saturating_sub(owned.len()), delete, status }
}

/// A Pod for the ReplicaSet, from its template (named `<replicaset>-<random>`).
pub fn pod_from_template(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["generateName"] = json!(format!("{}-", meta::meta_str(rs, "name").unwrap_or_default()));
    metadata["namespace"] = json!(meta::meta_str(rs, "namespace").unwrap_or_default());
    metadata["ownerReferences"] = json!([controller_ref(rs, "apps/v1", "ReplicaSet")]);
    if let Some(m) = metadata.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// The ReplicaSet's selector selects its own template (else upstream refuses it).
pub fn selector_matches_template(rs: &Value) -> bool {
    selects(&rs["spec"]["selector"], &rs["spec"]["template"]["metadata"]["labels"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(replicas: i64) -> Value {
        json!({
            "metadata": {"name": "api-abc", "namespace": "e", "uid": "rs-1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        })
    }

    fn pod(name: &str, owner: &str, ready: bool, created: &str) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"app": "api"}, "creationTimestamp": created,
                         "ownerReferences": [{"uid": owner, "controller": true}]},
            "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })
    }

    #[test]
    fn missing_pods_are_created_and_surplus_ones_deleted_not_ready_first() {
        let a = pod("a", "rs-1", true, "2026-01-01T00:00:01Z");
        let b = pod("b", "rs-1", false, "2026-01-01T00:00:02Z");
        let c = pod("c", "rs-1", true, "2026-01-01T00:00:03Z");
        let foreign = pod("x", "other", true, "2026-01-01T00:00:00Z");
        let pods = [&a, &b, &c, &foreign];
        let up = plan(&rs(5), &pods, 0);
        assert_eq!((up.create, up.delete.len()), (2, 0));
        assert_eq!(
            up.status,
            json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 2})
        );
        let down = plan(&rs(1), &pods, 0);
        assert_eq!((down.create, down.delete), (0, vec!["b".to_string(), "c".to_string()]));
    }

    #[test]
    fn finished_and_terminating_pods_do_not_count() {
        let mut done = pod("a", "rs-1", false, "t");
        done["status"]["phase"] = json!("Failed");
        let mut going = pod("b", "rs-1", true, "t");
        going["metadata"]["deletionTimestamp"] = json!("t");
        assert_eq!(plan(&rs(2), &[&done, &going], 0).create, 2);
    }

    #[test]
    fn pods_from_the_template_are_owned_and_named_after_the_replicaset() {
        let p = pod_from_template(&rs(1));
        assert_eq!(p["metadata"]["generateName"], "api-abc-");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "rs-1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["spec"]["containers"][0]["image"], "i");
        assert!(selector_matches_template(&rs(1)));
    }
}
