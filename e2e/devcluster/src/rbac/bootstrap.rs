//! The RBAC objects a fresh cluster starts with, as kube-apiserver's bootstrap policy creates them:
//! `cluster-admin` for `system:masters`, discovery and self-reviews for every authenticated
//! identity, health and version for everyone. Nothing else: a new ServiceAccount can do nothing
//! until something binds it.

use serde_json::{json, Value};

fn role(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    })
}

fn binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> =
        groups.iter().map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g})).collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    })
}

/// The bootstrap ClusterRoles and ClusterRoleBindings, as (plural, object).
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let health = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let discovery = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/openapi",
        "/openapi/*",
        "/healthz",
        "/livez",
        "/readyz",
        "/version",
        "/version/",
    ];
    vec![
        (
            "clusterroles",
            role(
                "cluster-admin",
                json!([
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]},
                ]),
            ),
        ),
        ("clusterrolebindings", binding("cluster-admin", &["system:masters"])),
        ("clusterroles", role("system:discovery", json!([{"nonResourceURLs": discovery, "verbs": ["get"]}]))),
        ("clusterrolebindings", binding("system:discovery", &["system:authenticated"])),
        (
            "clusterroles",
            role(
                "system:basic-user",
                json!([
                    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                ]),
            ),
        ),
        ("clusterrolebindings", binding("system:basic-user", &["system:authenticated"])),
        ("clusterroles", role("system:public-info-viewer", json!([{"nonResourceURLs": health, "verbs": ["get"]}]))),
        (
            "clusterrolebindings",
            binding("system:public-info-viewer", &["system:authenticated", "system:unauthenticated"]),
        ),
    ]
}
