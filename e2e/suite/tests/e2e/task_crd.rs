//! The Task and TaskQueue CRDs: they install on the real apiserver and on the dev cluster, valid
//! examples are accepted and invalid ones rejected identically on both, and kubectl shows the columns.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use ephemera_devcluster::testing::{ok, Dev, Reference};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("e2e/examples").join(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

async fn post(c: &Client, path: &str, body: &Value) -> (u16, Value) {
    let req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn install(kubeconfig: &Path) {
    let dir = repo().join("crds/yaml");
    ok(ephemera_devcluster::testing::kubectl(
        kubeconfig,
        &["apply", "--server-side", "-f", dir.to_str().unwrap()],
        None,
    ));
    for crd in ["tasks.ephemera.dev", "taskqueues.ephemera.dev", "clustertasktemplates.ephemera.dev"] {
        ok(ephemera_devcluster::testing::kubectl(
            kubeconfig,
            &["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=30s"],
            None,
        ));
    }
}

/// What a client sees for each example: accepted with defaults, or the rejection.
async fn outcomes(c: &Client) -> Vec<(String, Value)> {
    let tasks = "/apis/ephemera.dev/v1alpha1/namespaces/default/tasks";
    for _ in 0..100 {
        if c.request_text(http::Request::get(tasks).body(Vec::new()).unwrap()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Vec::new();
    for rel in ["task-hello.yaml", "task-retry.yaml"] {
        let (code, body) = post(c, tasks, &example(rel)).await;
        out.push((rel.to_string(), json!({"code": code, "spec": body["spec"]})));
    }
    let (code, body) = post(c, "/apis/ephemera.dev/v1alpha1/taskqueues", &example("queue-default.yaml")).await;
    out.push(("queue".into(), json!({"code": code, "spec": body["spec"]})));
    // Templates: the example, and templates each schema rule refuses.
    let templates = "/apis/ephemera.dev/v1alpha1/clustertasktemplates";
    let (code, body) = post(c, templates, &example("template-greet.yaml")).await;
    out.push(("template".into(), json!({"code": code, "spec": body["spec"]})));
    let (code, body) = post(c, tasks, &example("task-from-template.yaml")).await;
    out.push(("templated task".into(), json!({"code": code, "spec": body["spec"]})));
    let bad_params = [
        json!([{"name": "a", "type": "enum"}, {"name": "a"}]),
        json!([{"name": "b", "pattern": "x", "type": "integer", "minimum": 5, "maximum": 1}]),
        json!([{"name": "c", "required": true, "default": "x"}, {"name": "d", "type": "boolean", "default": "yes"}]),
        json!([{"name": "e", "type": "enum", "values": ["x"], "default": "y"}, {"name": "f", "embed": true}]),
        json!([{"name": "1st"}]),
    ];
    for (i, params) in bad_params.into_iter().enumerate() {
        let t = json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "ClusterTaskTemplate",
            "metadata": {"name": format!("bad-{i}")}, "spec": {"params": params, "task": {"command": ["true"]}}});
        let (code, body) = post(c, templates, &t).await;
        let mut causes: Vec<Value> =
            body.pointer("/details/causes").and_then(Value::as_array).cloned().unwrap_or_default();
        causes.sort_by_key(|c| c.to_string());
        out.push((format!("bad template {i}"), json!({"code": code, "causes": causes})));
    }
    let mut invalid: Vec<PathBuf> =
        std::fs::read_dir(repo().join("e2e/examples/invalid")).unwrap().map(|e| e.unwrap().path()).collect();
    invalid.sort();
    for path in invalid {
        let rel = format!("invalid/{}", path.file_name().unwrap().to_string_lossy());
        let (code, body) = post(c, tasks, &example(&rel)).await;
        let mut causes: Vec<Value> =
            body.pointer("/details/causes").and_then(Value::as_array).cloned().unwrap_or_default();
        causes.sort_by_key(|c| c.to_string());
        out.push((rel, json!({"code": code, "reason": body["reason"], "causes": causes})));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_install_and_validate_identically_on_the_real_apiserver_and_the_dev_cluster() {
    let reference = Reference::start();
    let dev = Dev::start().await;
    install(&reference.kubeconfig);
    install(&dev.kubeconfig);
    let real = outcomes(&reference.client().await).await;
    let ours = outcomes(&dev.client().await).await;
    for ((label, r), (_, o)) in real.iter().zip(&ours) {
        assert_eq!(r, o, "{label}: real apiserver vs dev cluster");
    }
    // The examples mean what they say.
    assert_eq!(real[0].1["code"], 201, "{:?}", real[0]);
    assert_eq!(real[0].1["spec"]["retry"]["maxAttempts"], 1, "defaults applied by the apiserver");
    assert_eq!((real[3].1["code"].as_i64(), real[4].1["code"].as_i64()), (Some(201), Some(201)), "{real:?}");
    assert!(real[5..].iter().all(|(_, v)| v["code"] == 422), "every invalid example is rejected: {real:?}");

    // The CRD's CEL rules answer the same on both: reserved env names, and the immutable queue.
    let tasks = "/apis/ephemera.dev/v1alpha1/namespaces/default/tasks";
    let home = json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "metadata": {"name": "home"},
        "spec": {"command": ["true"], "env": [{"name": "HOME", "value": "/tmp"}]}});
    let mut answers = Vec::new();
    for c in [reference.client().await, dev.client().await] {
        let (code, body) = post(&c, tasks, &home).await;
        let patch = http::Request::builder()
            .method("PATCH")
            .uri(format!("{tasks}/hello"))
            .header("content-type", "application/merge-patch+json")
            .body(json!({"spec": {"queue": "elsewhere"}}).to_string().into_bytes())
            .unwrap();
        let moved = match c.request_text(patch).await {
            Err(kube::Error::Api(s)) => (s.code, s.message),
            other => panic!("the queue move is refused, not {other:?}"),
        };
        answers.push((code, body["message"].clone(), moved));
    }
    assert_eq!(answers[0], answers[1], "real apiserver vs dev cluster");
    let (code, message, moved) = &answers[0];
    assert_eq!(*code, 422);
    assert!(message.as_str().unwrap_or_default().contains("HOME, EPHEMERA_* and LD_* are reserved"), "{message}");
    assert_eq!(moved.0, 422, "queue is immutable: {moved:?}");
    assert!(moved.1.contains("queue is immutable"), "{moved:?}");

    // kubectl: our columns, through the plural and the short name that does not collide with Tekton.
    let table = ok(dev.kubectl(&["get", "tasks.ephemera.dev"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "PHASE", "QUEUE", "PRIORITY", "ATTEMPT", "AGE"], "{table}");
    assert!(ok(dev.kubectl(&["get", "etask", "hello", "-o", "jsonpath={.spec.queue}"])).contains("default"));
    let err =
        dev.kubectl(&["apply", "-f", repo().join("e2e/examples/invalid/priority-out-of-range.yaml").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        stderr
            .contains("spec.priority: Invalid value: 5000: spec.priority in body should be less than or equal to 1000"),
        "{stderr}"
    );
}
