//! Turning a CustomResourceDefinition object into a served resource, and the status the server
//! reports for it.

use serde_json::{json, Value};

use super::{Column, ResourceType, Version};

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn columns(v: &Value) -> Vec<Column> {
    let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) else {
        return vec![Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }];
    };
    cols.iter()
        .map(|c| Column {
            name: c["name"].as_str().unwrap_or_default().into(),
            type_: c["type"].as_str().unwrap_or("string").into(),
            format: c["format"].as_str().unwrap_or_default().into(),
            description: c["description"].as_str().unwrap_or_default().into(),
            priority: c["priority"].as_i64().unwrap_or(0),
            json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
        })
        .collect()
}

/// The served resource described by a CRD, or `None` if it is being deleted or serves no version.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    if crd["metadata"].get("deletionTimestamp").is_some() {
        return None;
    }
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = spec["group"].as_str()?.to_string();
    let plural = names["plural"].as_str()?.to_string();
    let kind = names["kind"].as_str()?.to_string();
    let mut versions: Vec<(bool, Version)> = spec["versions"]
        .as_array()?
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| {
            let subresources = &v["subresources"];
            (
                v["storage"].as_bool().unwrap_or(false),
                Version {
                    name: v["name"].as_str().unwrap_or_default().to_string(),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                    columns: columns(v),
                    status_subresource: subresources.get("status").is_some(),
                },
            )
        })
        .collect();
    if versions.is_empty() {
        return None;
    }
    // Discovery lists versions by Kubernetes version priority, not by storage flag.
    versions.sort_by_key(|v| std::cmp::Reverse(super::version_priority(&v.1.name)));
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let hints =
        versions.iter().find(|(s, _)| *s).or(versions.first()).and_then(|(_, v)| v.schema.clone()).unwrap_or(json!({}));
    Some(ResourceType {
        group,
        singular: names["singular"].as_str().map(String::from).unwrap_or_else(|| kind.to_lowercase()),
        list_kind: names["listKind"].as_str().map(String::from).unwrap_or_else(|| format!("{kind}List")),
        plural,
        kind,
        namespaced,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        versions: versions.into_iter().map(|(_, v)| v).collect(),
        verbs: vec!["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        custom: true,
        hints,
        field_selectors: Vec::new(),
        extra_subresources: Vec::new(),
    })
}

/// The status a real apiserver converges a valid CRD to: names accepted, established, stored versions.
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let mut accepted = json!({
        "kind": kind,
        "listKind": names["listKind"].as_str().map(String::from).unwrap_or_else(|| format!("{kind}List")),
        "plural": names["plural"],
        "singular": names["singular"].as_str().map(String::from).unwrap_or_else(|| kind.to_lowercase()),
    });
    for field in ["shortNames", "categories"] {
        if let Some(v) = names.get(field) {
            accepted[field] = v.clone();
        }
    }
    let prior = &crd["status"];
    let keep_time = |ty: &str| -> String {
        prior["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let mut stored: Vec<String> = strings(&prior["storedVersions"]);
    if let Some(storage) = spec["versions"].as_array().and_then(|vs| vs.iter().find(|v| v["storage"] == true)) {
        if let Some(name) = storage["name"].as_str() {
            if !stored.iter().any(|s| s == name) {
                stored.push(name.to_string());
            }
        }
    }
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"lastTransitionTime": keep_time("NamesAccepted"), "message": "no conflicts found", "reason": "NoConflicts", "status": "True", "type": "NamesAccepted"},
            {"lastTransitionTime": keep_time("Established"), "message": "the initial names have been accepted", "reason": "InitialNamesAccepted", "status": "True", "type": "Established"},
        ],
        "storedVersions": stored,
    })
}
