//! The operator against the local cluster, with real Pods running as processes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use ephemera_crds::{Task, TaskPhase, TaskQueue};
use ephemera_devcluster::testing::{eventually, ok};
use ephemera_e2e::stack::{config, create, operator, operator_with, phase, queue, repo, stack, Stack};
use ephemera_operator::Config;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn pods_of(s: &Stack) -> Api<Pod> {
    Api::namespaced(s.client.clone(), "default")
}

#[tokio::test(flavor = "multi_thread")]
async fn success_failure_and_retries() {
    let s = stack().await;
    let op = operator(&s.client, "op-1");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");

    create(&tasks, "ok", json!({"command": ["sh", "-c", "echo working; echo all-done > $EPHEMERA_RESULT_FILE"]})).await;
    let t = phase(&tasks, "ok", TaskPhase::Succeeded).await;
    let st = t.status.unwrap();
    assert_eq!((st.exit_code, st.result.as_str(), st.attempt), (Some(0), "all-done\n", 1));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let pod = pods_of(&s).get("ok-1").await.unwrap();
    let v = serde_json::to_value(&pod).unwrap();
    assert_eq!(v["spec"]["securityContext"]["runAsNonRoot"], true, "hardened Pod");
    assert_eq!(v["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);

    create(&tasks, "exit3", json!({"command": ["sh", "-c", "echo boom >&2; exit 3"]})).await;
    let st = phase(&tasks, "exit3", TaskPhase::Failed).await.status.unwrap();
    assert_eq!((st.reason.as_str(), st.exit_code, st.attempt), ("ExitCode", Some(3), 1));
    assert!(st.message.contains("not retried"), "{}", st.message);
    assert_eq!(st.result, "", "logs never become the result (they may print a credential)");
    let failed = st.conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.status, "True");
    assert_eq!(st.conditions.iter().find(|c| c.type_ == "Complete").unwrap().status, "False");

    create(
        &tasks,
        "second-time-lucky",
        json!({
            "command": ["sh", "-c", "echo attempt $EPHEMERA_ATTEMPT; [ \"$EPHEMERA_ATTEMPT\" -ge 2 ]"],
            "retry": {"maxAttempts": 3, "backoffSeconds": 1, "retryOn": ["ExitCode"]}
        }),
    )
    .await;
    let st = phase(&tasks, "second-time-lucky", TaskPhase::Succeeded).await.status.unwrap();
    assert_eq!(st.attempt, 2);
    assert!(
        pods_of(&s).get_opt("second-time-lucky-1").await.unwrap().is_some(),
        "the failed attempt's Pod is kept for its logs"
    );

    create(
        &tasks,
        "always-fails",
        json!({"command": ["false"], "retry": {"maxAttempts": 2, "backoffSeconds": 1, "retryOn": ["ExitCode"]}}),
    )
    .await;
    let st = phase(&tasks, "always-fails", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.attempt, 2);
    assert!(st.message.contains("no attempts left"), "{}", st.message);
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_timeout_ttl_and_unknown_queue() {
    let s = stack().await;
    let op = operator(&s.client, "op-1");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");

    create(&tasks, "long", json!({"command": ["sh", "-c", "trap 'exit 143' TERM; while true; do sleep 0.1; done"]}))
        .await;
    phase(&tasks, "long", TaskPhase::Running).await;
    tasks.patch("long", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"cancel": true}}))).await.unwrap();
    let st = phase(&tasks, "long", TaskPhase::Cancelled).await.status.unwrap();
    assert_eq!(st.reason, "Cancelled");
    eventually(20, "cancelled Pod gone", || {
        let pods = pods_of(&s);
        async move { pods.get_opt("long-1").await.unwrap().is_none().then_some(()) }
    })
    .await;

    create(&tasks, "slow", json!({"command": ["sleep", "600"], "timeoutSeconds": 2})).await;
    let st = phase(&tasks, "slow", TaskPhase::TimedOut).await.status.unwrap();
    assert_eq!(st.reason, "DeadlineExceeded");

    create(&tasks, "short-lived", json!({"command": ["true"], "ttlSecondsAfterFinished": 1})).await;
    phase(&tasks, "short-lived", TaskPhase::Succeeded).await;
    eventually(20, "TTL deletion", || {
        let tasks = tasks.clone();
        async move { tasks.get_opt("short-lived").await.unwrap().is_none().then_some(()) }
    })
    .await;

    create(&tasks, "lost", json!({"command": ["true"], "queue": "no-such-queue"})).await;
    let t =
        eventually(20, "unknown queue reported", || {
            let tasks = tasks.clone();
            async move {
                tasks.get("lost").await.ok().filter(|t| t.status.as_ref().is_some_and(|s| s.reason == "UnknownQueue"))
            }
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(st.phase, TaskPhase::Pending);
    let cond = st.conditions.iter().find(|c| c.type_ == "QueueAccepted").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "UnknownQueue"));
    assert!(st.message.contains("no-such-queue"));
    assert!(pods_of(&s).get_opt("lost-1").await.unwrap().is_none(), "no Pod for a Task that cannot be queued");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_order_under_a_concurrency_limit_of_one() {
    let s = stack().await;
    queue(&s.client, "serial", 1).await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    // Created before the operator starts, so all wait together.
    for (name, prio) in [("p-low", 1), ("p-high", 9), ("p-mid", 5)] {
        create(&tasks, name, json!({"command": ["sh", "-c", "sleep 0.3"], "queue": "serial", "priority": prio})).await;
    }
    let op = operator(&s.client, "op-1");
    let mut order: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while order.len() < 3 && tokio::time::Instant::now() < deadline {
        let list = tasks.list(&ListParams::default()).await.unwrap();
        let holding: Vec<String> = list
            .items
            .iter()
            .filter(|t| matches!(t.status.as_ref().map(|s| s.phase), Some(TaskPhase::Scheduled | TaskPhase::Running)))
            .map(|t| t.metadata.name.clone().unwrap())
            .collect();
        assert!(holding.len() <= 1, "concurrency 1 exceeded: {holding:?}");
        for n in holding {
            if !order.contains(&n) {
                order.push(n);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(order, vec!["p-high", "p-mid", "p-low"]);
    for n in ["p-high", "p-mid", "p-low"] {
        phase(&tasks, n, TaskPhase::Succeeded).await;
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capped_queue_does_not_let_an_inflated_priority_jump_it_and_pods_get_default_resources() {
    let s = stack().await;
    queue(&s.client, "shared", 1).await;
    let queues: Api<TaskQueue> = Api::all(s.client.clone());
    queues.patch("shared", &PatchParams::default(), &Patch::Merge(json!({"spec": {"maxPriority": 10}}))).await.unwrap();
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    // Created before the operator starts, so all wait together; "pushy" asks for far more.
    for (name, prio) in [("honest", 10), ("pushy", 1000)] {
        create(&tasks, name, json!({"command": ["sh", "-c", "sleep 2"], "queue": "shared", "priority": prio})).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let op = operator(&s.client, "op-1");
    let honest = phase(&tasks, "honest", TaskPhase::Succeeded).await.status.unwrap();
    let pushy = phase(&tasks, "pushy", TaskPhase::Succeeded).await.status.unwrap();
    // Concurrency 1 and a 2 s command: whichever went second started at least a second later.
    assert!(honest.start_time < pushy.start_time, "the older Task at the cap went first");
    let capped = pushy.conditions.iter().find(|c| c.type_ == "PriorityCapped").expect("a PriorityCapped condition");
    assert!(capped.message.contains("ranked as 10"), "{}", capped.message);
    assert!(!honest.conditions.iter().any(|c| c.type_ == "PriorityCapped"));
    // A Task that names no resources still gets bounded ones.
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let pod = serde_json::to_value(pods.get("honest-1").await.unwrap()).unwrap();
    let task_container = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(task_container["limits"]["memory"], "2Gi", "{task_container}");
    assert_eq!(task_container["requests"]["cpu"], "100m");
    for init in pod["spec"]["initContainers"].as_array().unwrap() {
        assert!(init["resources"]["limits"]["memory"].is_string(), "{init}");
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_operator_resumes_without_a_second_pod_and_only_the_leader_acts() {
    let s = stack().await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let first = operator(&s.client, "op-a");
    let second = operator(&s.client, "op-b");
    create(&tasks, "survivor", json!({"command": ["sh", "-c", "sleep 2; echo finished > $EPHEMERA_RESULT_FILE"]}))
        .await;
    phase(&tasks, "survivor", TaskPhase::Running).await;
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), "default");
    let holder = leases.get("ephemera-operator").await.unwrap().spec.unwrap().holder_identity.unwrap();
    // Kill the leader mid-flight; the standby takes over once the Lease expires.
    if holder == "op-a" {
        first.abort()
    } else {
        second.abort()
    }
    let t = phase(&tasks, "survivor", TaskPhase::Succeeded).await;
    assert_eq!(t.status.unwrap().attempt, 1);
    let pods = pods_of(&s).list(&ListParams::default().labels("ephemera.dev/task=survivor")).await.unwrap();
    assert_eq!(pods.items.len(), 1, "exactly one Pod for the attempt");
    let new_holder = eventually(20, "lease taken over", || {
        let leases = leases.clone();
        let holder = holder.clone();
        async move { leases.get("ephemera-operator").await.ok()?.spec?.holder_identity.filter(|h| *h != holder) }
    })
    .await;
    assert_ne!(new_holder, holder);
    first.abort();
    second.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_of_the_example_task_runs_to_succeeded_with_normal_events_when_asked() {
    let s = stack().await;
    let op = operator_with(&s.client, Config { normal_events: true, ..config("op-1") });
    ok(s.dev.kubectl(&["apply", "-f", repo().join("e2e/examples/task-hello.yaml").to_str().unwrap()]));
    ok(s.dev.kubectl(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "task.ephemera.dev/hello",
        "--timeout=60s",
    ]));
    let table = ok(s.dev.kubectl(&["get", "tasks.ephemera.dev"]));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], &["hello", "Succeeded", "default", "10", "1"], "{table}");
    let logs = ok(s.dev.kubectl(&["logs", "hello-1"]));
    assert!(logs.starts_with("hello from hello-1"), "{logs}");
    let events = ok(s.dev.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hello"]));
    assert!(events.contains("Scheduled") && events.contains("Succeeded"), "{events}");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_pods_fail_the_attempt_and_deletion_cleans_up() {
    let s = stack().await;
    let op = operator(&s.client, "op-1");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "unpullable", json!({"image": "registry.example/nothing:1", "command": ["true"]})).await;
    let pending = eventually(20, "pull problem surfaced", || {
        let tasks = tasks.clone();
        async move {
            let t = tasks.get("unpullable").await.ok()?;
            let c = t.status.as_ref()?.conditions.iter().find(|c| c.type_ == "PodStarted")?.clone();
            c.reason.contains("ImagePull").then_some(c)
        }
    })
    .await;
    assert_eq!(pending.status, "False");
    let st = phase(&tasks, "unpullable", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.reason, "PodStuck");
    assert!(st.message.contains("did not start within 5s") && st.message.contains("ImagePull"), "{}", st.message);

    create(&tasks, "doomed", json!({"command": ["sleep", "600"]})).await;
    phase(&tasks, "doomed", TaskPhase::Running).await;
    tasks.delete("doomed", &Default::default()).await.unwrap();
    eventually(30, "task and its Pod removed", || {
        let (tasks, pods) = (tasks.clone(), pods_of(&s));
        async move {
            let gone =
                tasks.get_opt("doomed").await.unwrap().is_none() && pods.get_opt("doomed-1").await.unwrap().is_none();
            gone.then_some(())
        }
    })
    .await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_the_operator_at_random_points_loses_nothing() {
    let s = stack().await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    for i in 0..8 {
        create(
            &tasks,
            &format!("chaos-{i}"),
            json!({
                "command": ["sh", "-c", "sleep 0.5; [ \"$EPHEMERA_ATTEMPT\" -ge 2 ] || exit 1"],
                "retry": {"maxAttempts": 3, "backoffSeconds": 1, "retryOn": ["ExitCode"]}
            }),
        )
        .await;
    }
    // Kill and restart the only replica every few hundred milliseconds while the Tasks run.
    let mut generation = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        generation += 1;
        let op = operator(&s.client, &format!("op-{generation}"));
        tokio::time::sleep(Duration::from_millis(150 + (generation * 97 % 400))).await;
        op.abort();
        let list = tasks.list(&ListParams::default()).await.unwrap();
        let done = list.items.iter().all(|t| t.status.as_ref().is_some_and(|s| s.phase.is_terminal()));
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        // The killed replica's Lease must expire before the next one acts.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let op = operator(&s.client, "op-final");
    for i in 0..8 {
        let st = phase(&tasks, &format!("chaos-{i}"), TaskPhase::Succeeded).await.status.unwrap();
        assert_eq!(st.attempt, 2, "chaos-{i}");
        let pods =
            pods_of(&s).list(&ListParams::default().labels(&format!("ephemera.dev/task=chaos-{i}"))).await.unwrap();
        let mut attempts: Vec<String> =
            pods.items.iter().map(|p| p.metadata.labels.as_ref().unwrap()["ephemera.dev/attempt"].clone()).collect();
        attempts.sort();
        assert_eq!(attempts, vec!["1", "2"], "one Pod per attempt for chaos-{i}");
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_health_are_served() {
    let s = stack().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = config("op-metrics");
    cfg.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let client = s.client.clone();
    let op = tokio::spawn(async move {
        let _ = ephemera_operator::run(client, cfg, std::future::pending()).await;
    });
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "measured", json!({"command": ["true"]})).await;
    phase(&tasks, "measured", TaskPhase::Succeeded).await;
    let get = |path: &'static str| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}{path}")])
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(get("/healthz").await, "ok");
    assert_eq!(get("/readyz").await, "ok");
    let text = eventually(10, "metrics reflect the task", || async move {
        let t = get("/metrics").await;
        t.contains("ephemera_tasks{phase=\"Succeeded\"} 1").then_some(t)
    })
    .await;
    for m in [
        "ephemera_operator_leader 1",
        "ephemera_reconcile_duration_seconds_count",
        "ephemera_task_start_seconds_bucket",
        "ephemera_queue_pending{queue=\"default\"}",
    ] {
        assert!(text.contains(m), "missing {m} in:\n{text}");
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_forbidden_or_unservable_credentials_fail_the_task_before_any_pod() {
    use ephemera_crds::Credential;
    let s = stack().await;
    let creds: Api<Credential> = Api::all(s.client.clone());
    for (name, namespaces) in [("staging-org", json!(["default"])), ("prod-org", json!(["prod"]))] {
        let c: Credential = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Credential", "metadata": {"name": name},
            "spec": {"provider": "salesforce", "vaultPath": format!("ephemera/salesforce/{name}"), "namespaces": namespaces,
                     "signingKey": {"name": name}}})).unwrap();
        creds.create(&PostParams::default(), &c).await.unwrap();
    }
    let op = operator(&s.client, "op-1");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(&tasks, "allowed", json!({"command": ["true"], "credentials": ["staging-org"]})).await;
    create(&tasks, "forbidden", json!({"command": ["true"], "credentials": ["staging-org", "prod-org"]})).await;
    create(&tasks, "unknown", json!({"command": ["true"], "credentials": ["nope"]})).await;
    // Allowed, but this operator has no Vault: a clear reason instead of a Pod without its credential
    // (the full credential flow is in tests/e2e/credentials.rs).
    for (name, reason, says) in [
        ("allowed", "VaultNotConfigured", "has no Vault or credential hand-off configured"),
        ("forbidden", "CredentialForbidden", "\"prod-org\" may not be used by Tasks in namespace \"default\""),
        ("unknown", "UnknownCredential", "\"nope\" does not exist"),
    ] {
        let st = phase(&tasks, name, TaskPhase::Failed).await.status.unwrap();
        assert_eq!(st.reason, reason);
        assert!(st.message.contains(says), "{}", st.message);
        let cond = st.conditions.iter().find(|c| c.type_ == "CredentialsResolved").unwrap();
        assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", reason));
        assert_eq!(st.attempt, 0);
        assert!(pods_of(&s).get_opt(&format!("{name}-1")).await.unwrap().is_none(), "no Pod for {name}");
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn long_names_and_refused_tasks_do_not_block_anything() {
    let s = stack().await;
    queue(&s.client, "team", 1).await;
    let queues: Api<TaskQueue> = Api::all(s.client.clone());
    queues
        .patch("team", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"namespaces": ["other"]}})))
        .await
        .unwrap();
    ok(s.dev.kubectl(&["create", "namespace", "other"]));
    let op = operator(&s.client, "op-1");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let other: Api<Task> = Api::namespaced(s.client.clone(), "other");

    // A top-priority Task the queue refuses must not hold up the Tasks it accepts.
    create(&tasks, "refused", json!({"command": ["true"], "queue": "team", "priority": 1000})).await;
    create(&other, "accepted", json!({"command": ["true"], "queue": "team"})).await;
    phase(&other, "accepted", TaskPhase::Succeeded).await;
    let st = tasks.get("refused").await.unwrap().status.unwrap();
    assert_eq!((st.phase, st.reason.as_str()), (TaskPhase::Pending, "QueueForbidden"));

    // Names longer than a label value allows still run and clean up.
    let long = format!("deploy-{}", "x".repeat(70));
    create(&tasks, &long, json!({"command": ["true"]})).await;
    let st = phase(&tasks, &long, TaskPhase::Succeeded).await.status.unwrap();
    assert!(st.pod_name.len() <= 63, "{}", st.pod_name);
    tasks.delete(&long, &Default::default()).await.unwrap();
    eventually(30, "long-named task deleted with its Pod", || {
        let (tasks, pods, long, pod) = (tasks.clone(), pods_of(&s), long.clone(), st.pod_name.clone());
        async move {
            (tasks.get_opt(&long).await.unwrap().is_none() && pods.get_opt(&pod).await.unwrap().is_none()).then_some(())
        }
    })
    .await;
    op.abort();
}
