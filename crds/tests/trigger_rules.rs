//! The TaskTrigger CRD's CEL validation rules, evaluated by a CEL implementation as the API server
//! would, rule by rule (the local cluster evaluates them on every write too, held to the real CRD API
//! server by its differential suite; `e2e/suite/tests/e2e/task_crd.rs` installs the CRDs on both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use kube::CustomResourceExt as _;
use serde_json::{json, Value};

/// Every `(rule, message)` at `path` (JSON pointer into the spec's schema).
fn rules(pointer: &str) -> Vec<(String, String)> {
    let crd = serde_json::to_value(ephemera_crds::TaskTrigger::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let node = spec.pointer(pointer).unwrap_or_else(|| panic!("{pointer}"));
    node["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap().to_string(), r["message"].as_str().unwrap().to_string()))
        .collect()
}

/// The messages of the rules `value` breaks (an evaluation error counts as broken, as upstream).
fn broken(pointer: &str, value: Value) -> Vec<String> {
    rules(pointer)
        .into_iter()
        .filter(|(rule, _)| {
            let program = cel::Program::compile(rule).unwrap();
            let mut ctx = cel::Context::default();
            ctx.add_variable("self", value.clone()).unwrap();
            !matches!(program.execute(&ctx), Ok(cel::Value::Bool(true)))
        })
        .map(|(_, m)| m)
        .collect()
}

fn rule(name: &str) -> Value {
    json!({"name": name, "task": {"command": ["true"]}})
}

#[test]
fn each_source_needs_what_it_authenticates_with() {
    let github = json!({"source": "github", "secretRef": {"name": "hook", "key": "secret"}, "rules": [rule("a")]});
    assert!(broken("", github).is_empty());
    let unsigned = json!({"source": "github", "rules": [rule("a")]});
    assert_eq!(broken("", unsigned), ["secretRef is required (for salesforce: the token the endpoint URL carries)"]);
    let salesforce = json!({"source": "salesforce", "secretRef": {"name": "t", "key": "k"}, "allowedOrgIds": ["00D000000000001AAA"], "rules": [rule("a")]});
    assert!(broken("", salesforce).is_empty());
    let any_org = json!({"source": "salesforce", "secretRef": {"name": "t", "key": "k"}, "rules": [rule("a")]});
    assert_eq!(broken("", any_org), ["a salesforce trigger names the org ids it accepts (allowedOrgIds)"]);
    let azure = json!({"source": "azure-devops", "secretRef": {"name": "h", "key": "k"}, "rules": [rule("a")]});
    assert_eq!(
        broken("", azure),
        ["an azure-devops trigger says how the secret is presented (azure.basicUsername or azure.header)"]
    );
}

#[test]
fn azure_presents_the_secret_one_way_and_rule_names_are_unique() {
    assert!(broken("/properties/azure", json!({"header": "X-Hook-Secret"})).is_empty());
    assert_eq!(broken("/properties/azure", json!({})).len(), 1);
    assert_eq!(broken("/properties/azure", json!({"header": "X", "basicUsername": "u"})).len(), 1);
    assert!(broken("/properties/rules", json!([rule("a"), rule("b")])).is_empty());
    assert_eq!(broken("/properties/rules", json!([rule("a"), rule("a")])), ["rule names are unique"]);
}
