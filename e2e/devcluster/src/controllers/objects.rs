//! Reading the objects controllers decide on: label selectors, ownership, Pod state.

use serde_json::Value;

use crate::meta;

/// A `metav1.LabelSelector` (matchLabels and matchExpressions) selects these labels. An empty
/// selector selects everything, a missing one (null) nothing, as upstream.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector["matchLabels"].as_object().into_iter().flatten();
    if !match_labels.into_iter().all(|(k, v)| label(k) == v.as_str()) {
        return false;
    }
    selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match (e["operator"].as_str().unwrap_or_default(), label(key)) {
            ("In", Some(v)) => values.contains(&v),
            ("NotIn", Some(v)) => !values.contains(&v),
            ("NotIn", None) | ("DoesNotExist", None) | ("Exists", Some(_)) => true,
            _ => false,
        }
    })
}

/// A Service's `spec.selector` (a plain map) selects these labels; an empty one selects nothing
/// (such a Service has its endpoints managed by someone else).
pub fn service_selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k).and_then(Value::as_str) == v.as_str()))
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_uid(o: &Value) -> Option<&str> {
    o["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)?["uid"].as_str()
}

/// The ownerReference a controller puts on what it creates.
pub fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": meta::meta_str(owner, "name").unwrap_or_default(),
        "uid": meta::meta_str(owner, "uid").unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Being deleted (a deletionTimestamp is set).
pub fn terminating(o: &Value) -> bool {
    o["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// A Pod that counts towards a workload: not terminating and not finished.
pub fn pod_active(pod: &Value) -> bool {
    !terminating(pod) && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
}

/// The Pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Ready for at least `min_ready_seconds` (an available Pod, as workloads count them).
pub fn pod_available(pod: &Value, min_ready_seconds: i64, now: i64) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second());
    since.is_some_and(|s| now - s >= min_ready_seconds)
}

/// An integer field, or `default`.
pub fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_select_as_kubernetes_does() {
        let labels = json!({"app": "api", "tier": "web"});
        let cases = [
            (json!({}), true),
            (json!(null), false),
            (json!({"matchLabels": {"app": "api"}}), true),
            (json!({"matchLabels": {"app": "op"}}), false),
            (json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]}), true),
            (json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}), false),
            (json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}), true),
            (json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}), false),
            (json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}), true),
        ];
        for (selector, want) in cases {
            assert_eq!(selects(&selector, &labels), want, "{selector}");
        }
        assert!(service_selects(&json!({"app": "api"}), &labels));
        assert!(!service_selects(&json!({}), &labels));
    }
}
