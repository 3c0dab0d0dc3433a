//! The custom resources of Ephemera (`ephemera.dev/v1alpha1`): `Task`, one unit of work run in its own
//! short-lived Pod; `TaskQueue`, an admin-defined queue with a concurrency limit; `Credential`, the
//! admin-owned catalogue entry behind a logical credential name; and `TaskTrigger`, a team's webhook
//! and the rules that turn its deliveries into Tasks. The CRD YAML in
//! `crds/yaml/` is generated from these types (`cargo run -p ephemera-crds --bin crdgen`) and a test
//! fails when it is stale.

// kube-derive's repeated `printcolumn(type_ = ...)` attributes trip this lint; they are distinct columns.
#![allow(clippy::duplicated_attributes)]

pub mod attempt_token;
pub mod credential;
pub mod json_int;
pub mod queue;
pub mod schedule;
pub mod task;
pub mod template;
pub mod trigger;
pub mod worker;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use credential::{Credential, CredentialSpec, GithubScope, Provider, TransitKey};
pub use queue::{TaskQueue, TaskQueueSpec, TaskQueueStatus};
pub use schedule::{TaskSchedule, TaskScheduleSpec, TaskScheduleStatus};
pub use task::{
    Condition, ConditionType, EventKind, FailureClass, Origin, ProgressEvent, Reason, RetryPolicy, Task, TaskEnv,
    TaskPhase, TaskResources, TaskSpec, TaskStatus,
};
pub use template::{ClusterTaskTemplate, TaskTemplate, TemplateBody, TemplateKind, TemplateRef};
pub use trigger::{TaskTrigger, TaskTriggerSpec, TaskTriggerStatus, TriggerRule, TriggerSource};

/// API group of every Ephemera resource.
pub const GROUP: &str = "ephemera.dev";
/// API version served.
pub const VERSION: &str = "v1alpha1";
/// The operator's finalizer on every Task: deletion waits until its Pods are gone and its tokens
/// revoked. Ephemera's own writers (REST, webhooks, schedules) create Tasks with it, which saves the
/// operator a write per Task; it adds it to a Task created without (`kubectl apply`).
pub const CLEANUP_FINALIZER: &str = "ephemera.dev/cleanup";

/// An error with its causes (`error sending request: tcp connect error: Connection refused`), for
/// messages people read in Task status: the outermost message alone rarely says what went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// Every CRD, in install order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Credential::crd(),
        TaskQueue::crd(),
        ClusterTaskTemplate::crd(),
        TaskTemplate::crd(),
        Task::crd(),
        TaskSchedule::crd(),
        TaskTrigger::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, as checked in under `crds/yaml/`.
pub fn yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    let header = "# Generated from the Rust types in crds/src by `cargo run -p ephemera-crds --bin crdgen`.\n# Do not edit by hand: a test fails when this file is stale.\n";
    Ok(format!("{header}{}", serde_saphyr::to_string(crd)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_small_enough_inline_for_caches_of_ten_thousand() {
        // The operator and every API server replica hold each Task in a cache; fields most Tasks
        // leave empty are boxed so they cost a pointer, not their size, in each of them.
        let size = std::mem::size_of::<Task>();
        assert!(size <= 1100, "a Task is {size} bytes inline: box the large optional fields");
    }

    #[test]
    fn checked_in_yaml_is_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
        for crd in all() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let want = yaml(&crd).unwrap();
            let have = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap_or_default();
            assert!(have == want, "crds/yaml/{name}.yaml is stale: run `cargo run -p ephemera-crds --bin crdgen`");
            let chart = dir.join("../../charts/ephemera/files/crds").join(format!("{name}.yaml"));
            let copy = std::fs::read_to_string(chart).unwrap_or_default();
            assert!(copy == want, "the chart's copy of {name} is stale: run `cargo run -p ephemera-crds --bin crdgen`");
        }
    }

    #[test]
    fn defaults_fill_an_empty_spec() {
        let t: TaskSpec = serde_json::from_value(serde_json::json!({"command": ["true"]})).unwrap();
        assert_eq!((t.queue.as_str(), t.timeout_seconds, t.retry.max_attempts), ("default", 3600, 1));
        assert_eq!(t.retry.retry_on, vec![FailureClass::Infrastructure]);
    }
}
