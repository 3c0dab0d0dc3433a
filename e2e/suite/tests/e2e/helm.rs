//! The chart installed for real (Helm v4's engine) into the local cluster: the operator and API
//! server run as Pods from this checkout's images, a Task by REST with a Vault credential, a signed
//! webhook and a live SSE stream go through the installed API server's Service, and the cluster's
//! audit log proves least privilege: no request of either daemon was denied and every rule the chart
//! grants was used (or is justified in the chart's README). Then `helm upgrade` rolls the
//! Deployments and `helm uninstall` leaves the CRDs and the Tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use ephemera_api::auth::tokens::{self, NewToken};
use ephemera_api::auth::Verb;
use ephemera_devcluster::testing::{eventually, ok, Dev};
use ephemera_e2e::audit::Request;
use ephemera_e2e::helm::{component_images, local_values, release};
use ephemera_e2e::openbao::OpenBao;
use ephemera_e2e::stack::{repo, worker_image};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "ephemera";
const RELEASE: &str = "ephemera";
const OPERATOR_SA: &str = "system:serviceaccount:ephemera:ephemera-operator";
const API_SA: &str = "system:serviceaccount:ephemera:ephemera-api";

/// Rules the chart grants that this flow does not exercise, each with why it is granted (the same
/// reasons are in the chart's README).
const UNUSED_BUT_JUSTIFIED: &[(&str, &str)] = &[
    (
        "ephemera-operator list ephemera.dev/credentials in *",
        "`ephemera-operator sync-vault-policies` lists the catalogue (an admin runs it in the operator's identity)",
    ),
    (
        "ephemera-operator get ephemera.dev/tasks in *",
        "only when a schedule run's Task name is taken, to tell its own Task from a stranger's (schedules::)",
    ),
    (
        "ephemera-operator patch ephemera.dev/tasks in *",
        "adds the cleanup finalizer to a Task created without it (`kubectl apply`); REST, webhooks and schedules create Tasks with it",
    ),
    (
        "ephemera-operator update ephemera.dev/tasks/finalizers in *",
        "blockOwnerDeletion on worker Pods, checked only by OwnerReferencesPermissionEnforcement (OpenShift)",
    ),
    (
        "ephemera-operator update ephemera.dev/taskschedules/finalizers in *",
        "blockOwnerDeletion on schedule runs, checked only by OwnerReferencesPermissionEnforcement (OpenShift)",
    ),
    (
        "ephemera-operator patch events.k8s.io/events in *",
        "kube-runtime's recorder patches an Event that repeats (its series count) instead of writing another",
    ),
];

/// Progress in the test's output (it runs for minutes).
fn step(what: &str) {
    eprintln!("helm test {}: {what}", jiff::Timestamp::now());
}

fn kubectl(dev: &Dev, args: &[&str]) -> String {
    ok(dev.kubectl(args))
}

fn json_of(dev: &Dev, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl(dev, args)).unwrap()
}

async fn helm(action: &'static str, dev: &Dev, values: Option<Value>) -> Value {
    let kubeconfig = dev.kubeconfig.clone();
    tokio::task::spawn_blocking(move || release(action, &kubeconfig, NS, RELEASE, values.as_ref()))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("helm {action}: {e}"))
}

/// The daemons' Pods: (name, phase, ready, deployment component).
fn daemon_pods(dev: &Dev) -> Vec<(String, String, bool, String)> {
    let pods = json_of(dev, &["get", "pods", "-n", NS, "-o", "json"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["phase"].as_str().unwrap_or_default().to_string(),
                ready,
                p["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|p| p.1 != "Succeeded" && p.1 != "Failed")
        .collect()
}

/// One rule the release grants: who, through which binding (`ClusterRoleBinding "name"` or
/// `RoleBinding "name/ns"`, as the authorizer names it), what, and where (`*`: everywhere).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    who: String,
    binding: String,
    group: String,
    resource: String,
    verb: String,
    scope: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(String::from)).collect()
}

/// Every rule the release's RBAC grants.
fn granted(dev: &Dev) -> BTreeSet<Grant> {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let roles = json_of(dev, &["get", "clusterroles,roles", "-A", "-l", &selector, "-o", "json"]);
    let bindings = json_of(dev, &["get", "clusterrolebindings,rolebindings", "-A", "-l", &selector, "-o", "json"]);
    let mut out = BTreeSet::new();
    for b in bindings["items"].as_array().unwrap() {
        let role = roles["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == b["roleRef"]["kind"] && r["metadata"]["name"] == b["roleRef"]["name"])
            .unwrap_or_else(|| panic!("binding {} names a missing role", b["metadata"]["name"]));
        let name = b["metadata"]["name"].as_str().unwrap();
        let (binding, scope) = match b["metadata"]["namespace"].as_str() {
            Some(ns) => (format!("RoleBinding \"{name}/{ns}\""), ns.to_string()),
            None => (format!("ClusterRoleBinding \"{name}\""), "*".to_string()),
        };
        for s in b["subjects"].as_array().unwrap() {
            let who =
                format!("system:serviceaccount:{}:{}", s["namespace"].as_str().unwrap(), s["name"].as_str().unwrap());
            for rule in role["rules"].as_array().unwrap() {
                assert!(
                    rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
                    "extend the proof: {rule}"
                );
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        for verb in strings(&rule["verbs"]) {
                            out.insert(Grant {
                                who: who.clone(),
                                binding: binding.clone(),
                                group: group.clone(),
                                resource: resource.clone(),
                                verb,
                                scope: scope.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

async fn wait_phase(http: &reqwest::Client, api: &str, token: &str, name: &str, want: &str) -> Value {
    let url = format!("{api}/api/v1/namespaces/default/tasks/{name}");
    eventually(120, &format!("task {name} {want}"), || {
        let (http, url, token) = (http.clone(), url.clone(), token.to_string());
        async move {
            let t: Value = http.get(&url).bearer_auth(&token).send().await.ok()?.json().await.ok()?;
            (t["phase"] == want).then_some(t)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_runs_the_stack_in_pods_with_only_the_rights_it_grants_and_upgrades_and_uninstalls_cleanly() {
    ephemera_e2e::tls();
    let audit_dir = tempfile::tempdir().unwrap();
    let audit = audit_dir.path().join("audit.log");
    let log = audit.clone();
    let dev = Dev::start_with(move |c| {
        c.audit_log = Some(log);
        if let Some(k) = c.kubelet.as_mut() {
            k.backoff_base = Duration::from_millis(500);
        }
    })
    .await;
    step(&format!("cluster kubeconfig {}, audit log {}", dev.kubeconfig.display(), audit.display()));
    let bao = OpenBao::start().await;
    let mut kv = serde_json::Map::new();
    kv.insert("REGISTRY_TOKEN".into(), json!("s3cret-registry-token"));
    bao.put("ephemera/demo/registry", &kv).await;
    let (operator_image, api_image) = component_images();
    let worker = worker_image();

    // What an admin prepares: the namespace and the operator's Vault token.
    kubectl(&dev, &["create", "namespace", NS]);
    let token_file = bao.operator_token_file.to_str().unwrap().to_string();
    kubectl(
        &dev,
        &["create", "secret", "generic", "vault-operator", "-n", NS, &format!("--from-file=token={token_file}")],
    );
    let values = local_values(&operator_image, &api_image, &worker, &bao.addr, "vault-operator");
    step("installing");
    let installed = helm("install", &dev, Some(values.clone())).await;
    step(&format!("installed {installed}; {}", kubectl(&dev, &["get", "deployments,replicasets,pods", "-n", NS])));
    assert_eq!(installed["status"], "deployed", "{installed}");

    // Helm waited: both daemons run as Pods and are ready.
    let pods = daemon_pods(&dev);
    let components: BTreeSet<&str> = pods.iter().filter(|p| p.1 == "Running" && p.2).map(|p| p.3.as_str()).collect();
    assert_eq!(components, BTreeSet::from(["api", "operator"]), "{pods:?}");
    for crd in [
        "tasks.ephemera.dev",
        "taskqueues.ephemera.dev",
        "credentials.ephemera.dev",
        "tasktriggers.ephemera.dev",
        "taskschedules.ephemera.dev",
    ] {
        kubectl(&dev, &["get", "crd", crd]);
    }

    step("api via service");
    // The API server through its Service, as the edge reaches it.
    let ip = kubectl(&dev, &["get", "service", "ephemera-api", "-n", NS, "-o", "jsonpath={.spec.clusterIP}"]);
    let api = format!("http://{ip}:8080");
    let client = dev.client().await;
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
    let new = NewToken {
        namespaces: vec!["default".into()],
        verbs: vec![Verb::Create, Verb::Read, Verb::Cancel, Verb::Delete],
        expires,
        description: "helm e2e".into(),
    };
    let (_, token) = tokens::create(client, NS, &new).await.unwrap();
    let http = reqwest::Client::new();
    eventually(60, "the installed API server takes the token", || {
        let (http, url, token) = (http.clone(), format!("{api}/api/v1/namespaces/default/tasks"), token.clone());
        async move { http.get(url).bearer_auth(token).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;

    step("task with credential");
    // A browser's way in: a one-time stream ticket, then the WebSocket, subscribed to the namespace.
    let ticket: Value = http
        .post(format!("{api}/api/v1/stream/tickets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_url = format!("ws://{ip}:8080/api/v1/stream?ticket={}", ticket["ticket"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    ws.send(Message::Text(json!({"type": "subscribe", "namespace": "default"}).to_string().into())).await.unwrap();

    // A Task with a Vault credential, by REST, watched live over SSE until it ends.
    kubectl(&dev, &["apply", "-f", repo().join("e2e/examples/credential-demo.yaml").to_str().unwrap()]);
    let created = http
        .post(format!("{api}/api/v1/namespaces/default/tasks"))
        .bearer_auth(&token)
        .json(&json!({"name": "publish", "image": "busybox", "credentials": ["demo-registry"], "command": ["sh", "-c",
            "echo '::progress pct=50 msg=authenticating'; [ -n \"$REGISTRY_TOKEN\" ] && echo \"token of ${#REGISTRY_TOKEN} characters\" > \"$EPHEMERA_RESULT_FILE\""]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap_or_default());
    let sse = http
        .get(format!("{api}/api/v1/namespaces/default/tasks/publish/events"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sse.contains("authenticating") && sse.contains("event: end"), "{sse}");
    wait_phase(&http, &api, &token, "publish", "Succeeded").await;
    let done = get_json(&http, &format!("{api}/api/v1/namespaces/default/tasks/publish/result"), &token).await;
    assert_eq!(done["result"].as_str().map(str::trim), Some("token of 21 characters"), "{done}");
    let logs = http
        .get(format!("{api}/api/v1/namespaces/default/tasks/publish/logs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logs.status(), 200);
    // The WebSocket saw it live too, to its end.
    let mut messages = Vec::new();
    let mut end = Value::Null;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        let Message::Text(text) = msg else { continue };
        let m: Value = serde_json::from_str(&text).unwrap();
        if m["task"] != "publish" {
            continue;
        }
        match m["type"].as_str() {
            Some("event") => messages.push(m["event"]["message"].clone()),
            Some("snapshot") => messages.extend(m["events"].as_array().unwrap().iter().map(|e| e["message"].clone())),
            Some("end") => {
                end = m;
                break;
            }
            _ => {}
        }
    }
    assert_eq!(end["phase"], "Succeeded", "{end} after {messages:?}");
    assert!(messages.contains(&json!("authenticating")), "{messages:?}");
    drop(ws);
    let queues = get_json(&http, &format!("{api}/api/v1/queues"), &token).await;
    assert!(queues.to_string().contains("default"), "{queues}");

    step("snoop");
    // A worker has no way into the Kubernetes API: no token, whatever its command tries.
    http.post(format!("{api}/api/v1/namespaces/default/tasks"))
        .bearer_auth(&token)
        .json(&json!({"name": "snoop", "image": "busybox", "command": ["sh", "-c",
            "ls /var/run/secrets/kubernetes.io/serviceaccount > \"$EPHEMERA_RESULT_FILE\" 2>&1 || echo no-token > \"$EPHEMERA_RESULT_FILE\""]}))
        .send()
        .await
        .unwrap();
    wait_phase(&http, &api, &token, "snoop", "Succeeded").await;
    let snoop = get_json(&http, &format!("{api}/api/v1/namespaces/default/tasks/snoop/result"), &token).await;
    assert_eq!(snoop["result"].as_str().map(str::trim), Some("no-token"), "{snoop}");

    step("templates");
    // Tasks from a cluster template and from the namespace's own, by REST (the API server reads and
    // lists both kinds; the operator reads each when it renders a Task).
    kubectl(&dev, &["apply", "-f", repo().join("e2e/examples/template-greet.yaml").to_str().unwrap()]);
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        local.path(),
        "apiVersion: ephemera.dev/v1alpha1\nkind: TaskTemplate\nmetadata: {name: local, namespace: default}\nspec:\n  task: {image: busybox, command: [sh, -c, 'echo local > \"$EPHEMERA_RESULT_FILE\"']}\n",
    )
    .unwrap();
    kubectl(&dev, &["apply", "-f", local.path().to_str().unwrap()]);
    let listed = get_json(&http, &format!("{api}/api/v1/templates"), &token).await;
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["greet", "local"], "{listed}");
    let by_greet = json!({"name": "by-greet", "template": "greet", "params": {"who": "helm"}});
    let by_local = json!({"name": "by-local", "template": {"kind": "TaskTemplate", "name": "local"}});
    for body in [by_greet, by_local] {
        let made = http
            .post(format!("{api}/api/v1/namespaces/default/tasks"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201, "{}", made.text().await.unwrap_or_default());
    }
    wait_phase(&http, &api, &token, "by-greet", "Succeeded").await;
    wait_phase(&http, &api, &token, "by-local", "Succeeded").await;
    let greet = get_json(&http, &format!("{api}/api/v1/namespaces/default/tasks/by-greet/result"), &token).await;
    assert_eq!(greet["result"], "helm|--times=2|plain|", "{greet}");

    step("schedule");
    // A TaskSchedule by REST: the operator makes its runs' Tasks and keeps its status; the API
    // lists, reads, suspends, resumes and deletes it.
    let schedules = format!("{api}/api/v1/namespaces/default/schedules");
    let made = http
        .post(&schedules)
        .bearer_auth(&token)
        .json(&json!({"name": "tick", "schedule": "@every 2s", "task": {"image": "busybox", "command": ["true"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap_or_default());
    eventually(60, "the schedule ran and recorded it", || async {
        let made = kubectl(&dev, &["get", "etask", "-n", "default", "-l", "ephemera.dev/schedule=tick", "-o", "name"]);
        let view = get_json(&http, &format!("{schedules}/tick"), &token).await;
        (!made.trim().is_empty() && view["lastScheduleTime"].is_string()).then_some(())
    })
    .await;
    let listed = get_json(&http, &schedules, &token).await;
    assert_eq!(listed[0]["name"], "tick", "{listed}");
    for action in ["suspend", "resume"] {
        let r = http.post(format!("{schedules}/tick/{action}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{action}");
    }
    let r = http.delete(format!("{schedules}/tick")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 202);

    step("webhook");
    // A signed GitHub push through the installed API server's webhook route.
    kubectl(&dev, &["apply", "-n", "default", "-f", repo().join("e2e/examples/trigger-github.yaml").to_str().unwrap()]);
    eventually(60, "the trigger is ready", || async {
        let ready = kubectl(
            &dev,
            &[
                "get",
                "tasktrigger",
                "github-push",
                "-n",
                "default",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        (ready == "True").then_some(())
    })
    .await;
    let body =
        json!({"ref": "refs/heads/main", "after": "abc123", "repository": {"full_name": "acme/app"}}).to_string();
    let signature = crate::webhooks::sign("change-me-to-a-long-random-string", body.as_bytes());
    let hook = http
        .post(format!("{api}/webhooks/default/github-push"))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "helm-e2e-1")
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 202, "{}", hook.text().await.unwrap_or_default());

    step("cancel");
    // Cancel and delete by REST.
    http.post(format!("{api}/api/v1/namespaces/default/tasks"))
        .bearer_auth(&token)
        .json(&json!({"name": "long", "image": "busybox", "command": ["sleep", "300"]}))
        .send()
        .await
        .unwrap();
    wait_phase(&http, &api, &token, "long", "Running").await;
    let cancel = http
        .post(format!("{api}/api/v1/namespaces/default/tasks/long/cancel"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "{}", cancel.status());
    wait_phase(&http, &api, &token, "long", "Cancelled").await;
    let deleted =
        http.delete(format!("{api}/api/v1/namespaces/default/tasks/long")).bearer_auth(&token).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let listed = get_json(&http, &format!("{api}/api/v1/namespaces/default/tasks"), &token).await;
    assert!(listed.to_string().contains("publish"), "{listed}");

    // A finished Task with a TTL is deleted by the operator.
    http.post(format!("{api}/api/v1/namespaces/default/tasks"))
        .bearer_auth(&token)
        .json(&json!({"name": "brief", "image": "busybox", "command": ["true"], "ttlSecondsAfterFinished": 1}))
        .send()
        .await
        .unwrap();
    eventually(60, "the finished Task is gone after its TTL", || {
        let (http, url, token) = (http.clone(), format!("{api}/api/v1/namespaces/default/tasks/brief"), token.clone());
        async move { (http.get(url).bearer_auth(token).send().await.ok()?.status() == 404).then_some(()) }
    })
    .await;

    // The ticket's redemption record goes once the ticket has expired (30 s, plus 5).
    eventually(60, "the redeemed ticket's record is removed", || async {
        kubectl(&dev, &["get", "leases", "-n", NS, "-l", "ephemera.dev/stream-ticket=true", "-o", "name"])
            .is_empty()
            .then_some(())
    })
    .await;

    step("upgrade");
    // `helm upgrade` with a changed value rolls both Deployments onto new Pods.
    let before: BTreeSet<String> = daemon_pods(&dev).into_iter().map(|p| p.0).collect();
    let mut changed = values.clone();
    changed["apiServer"]["rateBurst"] = json!(77);
    changed["operator"]["podStartTimeoutSeconds"] = json!(90);
    let upgraded = helm("upgrade", &dev, Some(changed)).await;
    assert_eq!((upgraded["status"].as_str(), upgraded["revision"].as_i64()), (Some("deployed"), Some(2)), "{upgraded}");
    // Helm waited for the rollout: both new Pods are ready (their restart counts are logged).
    let after = eventually(120, "both new daemon Pods are ready", || async {
        let pods = daemon_pods(&dev);
        (pods.len() == 2 && pods.iter().all(|p| p.1 == "Running" && p.2)).then_some(pods)
    })
    .await;
    let restarts = kubectl(
        &dev,
        &[
            "get",
            "pods",
            "-n",
            NS,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} (last: {.status.containerStatuses[0].lastState.terminated.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}) {end}",
        ],
    );
    step(&format!("after the upgrade: {restarts}"));
    assert!(after.iter().all(|p| !before.contains(&p.0)), "every daemon Pod is new: {before:?} -> {after:?}");
    let revision = kubectl(
        &dev,
        &[
            "get",
            "deployment",
            "ephemera-api",
            "-n",
            NS,
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    );
    assert_eq!(revision, "2");

    step("rbac proof");
    // Least privilege, proven from the audit log: nothing the daemons asked for was denied, and
    // every rule granted to them was used.
    let requests = ephemera_e2e::audit::requests(&audit);
    let daemon = |r: &Request| r.user == OPERATOR_SA || r.user == API_SA;
    let denied: Vec<&Request> =
        requests.iter().filter(|r| daemon(r) && (r.decision != "allow" || r.code == 403)).collect();
    assert!(denied.is_empty(), "requests of the daemons the chart's RBAC did not allow: {denied:#?}");
    let strangers: BTreeSet<&str> = requests
        .iter()
        .map(|r| r.user.as_str())
        .filter(|u| u.starts_with("system:serviceaccount:") && *u != OPERATOR_SA && *u != API_SA)
        .collect();
    assert!(strangers.is_empty(), "only the two daemons call the API with ServiceAccount tokens: {strangers:?}");
    // A rule counts as used only by a request the authorizer allowed through that rule's binding.
    let unused: Vec<String> = granted(&dev)
        .into_iter()
        .filter(|g| {
            !requests.iter().any(|r| {
                r.user == g.who
                    && r.group == g.group
                    && r.resource == g.resource
                    && r.verb == g.verb
                    && (g.scope == "*" || r.namespace == g.scope)
                    && r.reason.contains(&format!("allowed by {} ", g.binding))
            })
        })
        .map(|g| {
            format!(
                "{} {} {}/{} in {}",
                g.who.rsplit(':').next().unwrap_or_default(),
                g.verb,
                g.group,
                g.resource,
                g.scope
            )
        })
        .filter(|rule| !UNUSED_BUT_JUSTIFIED.iter().any(|(r, _)| r == rule))
        .collect();
    assert!(unused.is_empty(), "rules granted but never used (use them or justify them): {unused:#?}");
    step(&format!(
        "rbac proof: {} audited requests of the daemons, none denied",
        requests.iter().filter(|r| daemon(r)).count()
    ));

    step("uninstall");
    // `helm uninstall` removes the daemons and keeps the CRDs and every Task.
    helm("uninstall", &dev, None).await;
    assert_eq!(kubectl(&dev, &["get", "deployments", "-n", NS, "-o", "name"]), "");
    kubectl(&dev, &["get", "crd", "tasks.ephemera.dev"]);
    let tasks = kubectl(&dev, &["get", "tasks.ephemera.dev", "-n", "default", "-o", "name"]);
    assert!(tasks.contains("task.ephemera.dev/publish") && tasks.contains("task.ephemera.dev/snoop"), "{tasks}");
}
