//! What one Task costs the cluster, counted by the cluster itself (its audit log): the writes the
//! operator makes for a Task that succeeds at its first attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use ephemera_crds::{Task, TaskPhase};
use ephemera_e2e::audit::{requests, Request};
use ephemera_e2e::stack::{create, operator, phase, stack_audited};
use kube::api::{Api, PostParams};
use serde_json::json;

/// The mutating requests in the audit log at `path`, but those no one Task causes.
fn writes(path: &std::path::Path) -> Vec<Request> {
    requests(path)
        .into_iter()
        .filter(Request::is_write)
        // Leader election renews its Lease on a timer, and a queue's counts are published at most
        // every 2 s whatever the number of Tasks: neither is a write of one Task's.
        .filter(|w| w.resource != "leases" && w.resource != "taskqueues/status")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_succeeds_first_time_costs_the_cluster_at_most_four_writes() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let s = stack_audited(audit.clone()).await;
    let op = operator(&s.client, "op-1");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    // A first Task warms the operator up (its caches, the queue's first sight) so the count is one
    // Task's own.
    create(&tasks, "warm-up", json!({"command": ["true"]})).await;
    phase(&tasks, "warm-up", TaskPhase::Succeeded).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = writes(&audit).len();

    // As REST, webhooks and schedules create Tasks: with the operator's finalizer already on.
    let counted: Task = serde_json::from_value(json!({
        "apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "counted", "finalizers": [ephemera_crds::CLEANUP_FINALIZER]},
        "spec": {"command": ["sh", "-c", "echo done > $EPHEMERA_RESULT_FILE"]},
    }))
    .unwrap();
    tasks.create(&PostParams::default(), &counted).await.unwrap();
    let st = phase(&tasks, "counted", TaskPhase::Succeeded).await.status.unwrap();
    assert_eq!((st.exit_code, st.result.as_str(), st.attempt), (Some(0), "done\n", 1));
    // Anything the operator still does for it (a late status write, a clean-up) is counted too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = writes(&audit);
    let made: Vec<&Request> = all[before..].iter().filter(|w| !(w.verb == "create" && w.resource == "tasks")).collect();
    eprintln!(
        "writes for one Task:\n{}",
        made.iter().map(|w| format!("  {} {} {}", w.verb, w.resource, w.name)).collect::<Vec<_>>().join("\n")
    );
    assert!(made.len() <= 4, "{} writes for one Task: {made:#?}", made.len());
    // Which: the attempt recorded before its Pod exists, the Pod, then Running and Succeeded (only
    // Succeeded when the operator first looks after the command has already ended).
    let kinds: Vec<(&str, &str)> = made.iter().map(|w| (w.verb.as_str(), w.resource.as_str())).collect();
    assert_eq!(kinds[..2], [("update", "tasks/status"), ("create", "pods")], "{kinds:?}");
    assert!(kinds[2..].iter().all(|k| *k == ("update", "tasks/status")) && kinds.len() >= 3, "{kinds:?}");
    op.abort();
}
