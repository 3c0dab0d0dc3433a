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
