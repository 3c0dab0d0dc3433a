//! The local cluster's audit log (`--audit-log`, one JSON event per line, the kube-apiserver
//! shape) read back as requests, for tests that count or check what a component asked of the cluster.

use serde_json::Value;

/// What one audit event records.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Who asked (`system:serviceaccount:ns:name`).
    pub user: String,
    /// The verb (`create`, `update`, `patch`, `get`, ...).
    pub verb: String,
    /// API group ("" for the core group).
    pub group: String,
    /// `resource` or `resource/subresource` ("" for a non-resource path).
    pub resource: String,
    /// The object's name ("" for a list or a create by generateName).
    pub name: String,
    /// The object's namespace ("" when cluster-scoped).
    pub namespace: String,
    /// The response's HTTP status.
    pub code: u64,
    /// `allow` or `forbid` (the authorizer's verdict, whatever the response code).
    pub decision: String,
    /// What allowed it, e.g. `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "x" to ...`.
    pub reason: String,
}

impl Request {
    /// Whether it asked to change something.
    pub fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection")
    }
}

/// Every request the audit log at `path` holds, in order.
pub fn requests(path: &std::path::Path) -> Vec<Request> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read audit log {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("audit event {l}: {e}")))
        .map(|e| {
            let r = &e["objectRef"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let resource = match r["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", text(&r["resource"])),
                None => text(&r["resource"]),
            };
            Request {
                user: text(&e["user"]["username"]),
                verb: text(&e["verb"]),
                group: text(&r["apiGroup"]),
                resource,
                name: text(&r["name"]),
                namespace: text(&r["namespace"]),
                code: e["responseStatus"]["code"].as_u64().unwrap_or_default(),
                decision: text(&e["annotations"]["authorization.k8s.io/decision"]),
                reason: text(&e["annotations"]["authorization.k8s.io/reason"]),
            }
        })
        .collect()
}
