//! The shipped ValidatingAdmissionPolicy that keeps `spec.origin` the API server's: its CEL
//! expressions, evaluated by a CEL implementation, decide as a kube-apiserver would for the requests
//! that matter (no real kube-apiserver runs here, and the dev cluster has no admission plugins).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use serde_json::{json, Value};

const POLICY: &str = include_str!("../policies/task-origin.yaml");
const API_SERVER: &str = "system:serviceaccount:ephemera-system:ephemera-api";

fn policy() -> Value {
    let first = POLICY.split("\n---\n").next().unwrap_or_default();
    serde_saphyr::from_str(first).expect("the policy parses")
}

fn eval(expr: &str, request: &Value, object: &Value, old: &Value) -> bool {
    let program = cel::Program::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
    let mut ctx = cel::Context::default();
    ctx.add_variable("request", request.clone()).unwrap();
    ctx.add_variable("object", object.clone()).unwrap();
    ctx.add_variable("oldObject", old.clone()).unwrap();
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => b,
        other => panic!("{expr}: {other:?}"),
    }
}

/// Whether the policy admits the request (not matched = admitted).
fn admitted(user: &str, operation: &str, object: Value, old: Value) -> bool {
    let p = policy();
    let request = json!({"operation": operation, "userInfo": {"username": user}});
    let matched = p["spec"]["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| eval(c["expression"].as_str().unwrap(), &request, &object, &old));
    !matched
        || p["spec"]["validations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| eval(v["expression"].as_str().unwrap(), &request, &object, &old))
}

fn task(origin: Option<Value>) -> Value {
    let mut t = json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "metadata": {"name": "t"},
        "spec": {"command": ["true"]}});
    if let Some(o) = origin {
        t["spec"]["origin"] = o;
    }
    t
}

#[test]
fn only_the_api_server_records_where_a_task_came_from() {
    let by_api = Some(json!({"source": "api", "requester": "token:ci"}));
    let forged = Some(json!({"source": "api", "requester": "token:someone-else"}));
    let kubectl = "alice";
    assert!(admitted(API_SERVER, "CREATE", task(by_api.clone()), Value::Null), "the API server records it");
    assert!(admitted(kubectl, "CREATE", task(None), Value::Null), "kubectl apply of a plain Task");
    assert!(!admitted(kubectl, "CREATE", task(forged.clone()), Value::Null), "a forged origin on create");
    assert!(!admitted(kubectl, "UPDATE", task(forged), task(by_api.clone())), "changing it later");
    assert!(!admitted(kubectl, "UPDATE", task(by_api.clone()), task(None)), "adding it later");
    assert!(!admitted(kubectl, "UPDATE", task(None), task(by_api.clone())), "removing it");
    assert!(
        admitted(
            "system:serviceaccount:ephemera-system:ephemera-operator",
            "UPDATE",
            task(by_api.clone()),
            task(by_api)
        ),
        "an update that leaves it alone (the operator's finalizer, a cancel)"
    );
}

#[test]
fn the_policy_matches_tasks_and_is_bound() {
    let p = policy();
    assert_eq!(p["kind"], "ValidatingAdmissionPolicy");
    assert_eq!(p["spec"]["failurePolicy"], "Fail");
    let rules = &p["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["resources"], json!(["tasks"]));
    assert_eq!(rules["apiGroups"], json!(["ephemera.dev"]));
    let binding = POLICY.split("\n---\n").nth(1).expect("a binding");
    let b: Value = serde_saphyr::from_str(binding).unwrap();
    assert_eq!(
        (b["kind"].as_str(), b["spec"]["policyName"].as_str()),
        (Some("ValidatingAdmissionPolicyBinding"), Some("ephemera-task-origin"))
    );
    assert_eq!(b["spec"]["validationActions"], json!(["Deny"]));
}
