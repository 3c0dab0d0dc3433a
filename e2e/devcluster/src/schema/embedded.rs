//! Checks of `x-kubernetes-embedded-resource` objects below the root: `apiVersion` and `kind`
//! must be set and well-formed. (Embedded `metadata` is not validated here.)

use serde_json::{Map, Value};

use super::format::{self, Bad};
use super::node::{sorted_keys, Additional, Node};
use super::path;
use super::FieldError;

/// Embedded-resource errors for `obj`; the resource root itself is the caller's job.
pub(crate) fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    walk("", obj, Node::new(schema), true, &mut out);
    out
}

fn walk(p: &str, x: &Value, node: Node<'_>, root: bool, out: &mut Vec<FieldError>) {
    match x {
        Value::Object(m) => {
            if node.embedded() && !root {
                check_embedded(p, m, out);
            }
            for k in sorted_keys(m) {
                let Some(v) = m.get(k) else { continue };
                if let Some(s) = node.property(k) {
                    walk(&path::child(p, k), v, Node::new(s), false, out);
                } else if let Additional::Schema(s) = node.additional() {
                    walk(&path::key(p, k), v, Node::new(s), false, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = node.items() {
                for (i, v) in items.iter().enumerate() {
                    walk(&path::index(p, i), v, Node::new(s), false, out);
                }
            }
        }
        _ => {}
    }
}

fn check_embedded(p: &str, m: &Map<String, Value>, out: &mut Vec<FieldError>) {
    let api_path = path::child(p, "apiVersion");
    let kind_path = path::child(p, "kind");
    if !m.contains_key("apiVersion") {
        out.push(format::required(&api_path, ""));
    }
    if !m.contains_key("kind") {
        out.push(format::required(&kind_path, ""));
    }
    if let Some(v) = m.get("apiVersion") {
        match v.as_str() {
            None => out.push(format::invalid(&api_path, &Bad::of(v), "must be a string")),
            Some("") => out.push(format::invalid(&api_path, &Bad::of(v), "must not be empty")),
            Some(s) if s.matches('/').count() > 1 => {
                let msg = format!("unexpected GroupVersion string: {s}");
                out.push(format::invalid(&api_path, &Bad::of(v), &msg));
            }
            Some(_) => {}
        }
    }
    if let Some(v) = m.get("kind") {
        match v.as_str() {
            None => out.push(format::invalid(&kind_path, &Bad::of(v), "must be a string")),
            Some("") => out.push(format::invalid(&kind_path, &Bad::of(v), "must not be empty")),
            Some(s) => {
                let errs = dns1035_errors(&s.to_lowercase());
                if !errs.is_empty() {
                    let msg = format!("may have mixed case, but should otherwise match: {}", errs.join(","));
                    out.push(format::invalid(&kind_path, &Bad::of(v), &msg));
                }
            }
        }
    }
}

/// apimachinery's `IsDNS1035Label` messages.
fn dns1035_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_api_version_and_kind() {
        // Real: [spec.embedded.apiVersion: Required value, spec.embedded.kind: Required value]
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object"}}}}}}});
        let errs = validate(&json!({"spec": {"embedded": {"spec": {}}}}), &schema);
        let got: Vec<(String, String)> = errs.into_iter().map(|e| (e.field, e.message)).collect();
        assert_eq!(
            got,
            vec![
                ("spec.embedded.apiVersion".to_string(), "Required value".to_string()),
                ("spec.embedded.kind".to_string(), "Required value".to_string())
            ]
        );
    }
}
