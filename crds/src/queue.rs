//! The `TaskQueue` custom resource: an admin-defined queue with a concurrency limit. A cluster-scoped
//! resource (rather than operator config) so admins change limits with kubectl, RBAC guards who may,
//! the operator reacts without a restart, and the current depth is visible in its status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A queue's limits.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "TaskQueue",
    status = "TaskQueueStatus",
    shortname = "etq",
    category = "ephemera",
    doc = "A queue of Ephemera Tasks with a concurrency limit (cluster-scoped, owned by admins).",
    printcolumn(name = "Concurrency", type_ = "integer", json_path = ".spec.concurrency"),
    printcolumn(name = "Running", type_ = "integer", json_path = ".status.running"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pending"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TaskQueueSpec {
    /// At most this many Tasks of the queue have a Pod at once (0 = no limit).
    #[schemars(range(min = 0, max = 10000))]
    pub concurrency: i32,
    /// Namespaces whose Tasks may use the queue (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The highest priority a Task of this queue is ranked with: a Task asking for more is ranked
    /// with this (condition `PriorityCapped`), so no creator can jump a shared queue at will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_priority: Option<i32>,
    /// Per-namespace caps, overriding `maxPriority` for Tasks of that namespace.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub namespace_max_priority: std::collections::BTreeMap<String, i32>,
}

impl TaskQueueSpec {
    /// The cap on priority for Tasks of `namespace` (None: uncapped).
    pub fn priority_cap(&self, namespace: &str) -> Option<i32> {
        self.namespace_max_priority.get(namespace).copied().or(self.max_priority)
    }

    /// The priority a Task of `namespace` asking for `priority` is ranked with.
    pub fn effective_priority(&self, namespace: &str, priority: i32) -> i32 {
        self.priority_cap(namespace).map_or(priority, |cap| priority.min(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_capped_per_namespace_then_per_queue() {
        let q = TaskQueueSpec {
            max_priority: Some(10),
            namespace_max_priority: [("release".to_string(), 100)].into(),
            ..Default::default()
        };
        assert_eq!(q.effective_priority("team-a", 1000), 10);
        assert_eq!(q.effective_priority("team-a", 5), 5, "below the cap: unchanged");
        assert_eq!(q.effective_priority("release", 1000), 100);
        assert_eq!(TaskQueueSpec::default().effective_priority("x", 1000), 1000, "no cap");
    }
}

/// Observed state of a queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskQueueStatus {
    /// Tasks of the queue that hold a Pod.
    #[serde(default)]
    pub running: i32,
    /// Tasks waiting in the queue.
    #[serde(default)]
    pub pending: i32,
}
