//! Pruning: removes fields the structural schema does not declare, then non-nullable `null`s that
//! have no default, like the real server's decoding step.

use serde_json::Value;

use super::node::{Additional, Node};

/// Keys the resource root (and every embedded resource) keeps without declaring them.
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes `obj` (a whole resource) in place and returns the pruned paths, sorted, as the real
/// server reports them for `fieldValidation=Strict/Warn`: each path `p` appears as
/// `unknown field "p"`, e.g. `spec.foo` or `spec.items[2].zzz` (no leading dot).
///
/// After pruning, `null` values of non-nullable fields without a default are dropped (they are not
/// reported). Root `apiVersion`, `kind` and `metadata` are never touched.
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_node(obj, Some(Node::new(schema)), true, "", &mut pruned);
    drop_nulls(obj, Some(Node::new(schema)));
    pruned.sort();
    pruned
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The schema below `key`, and whether the key is known at all (properties or additionalProperties).
fn child<'a>(node: Node<'a>, key: &str) -> (bool, Option<Node<'a>>) {
    if let Some(p) = node.property(key) {
        return (true, Some(Node::new(p)));
    }
    match node.additional() {
        Additional::Schema(s) => (true, Some(Node::new(s))),
        Additional::Bool(_) => (true, None),
        Additional::Absent => (false, None),
    }
}

fn prune_node(x: &mut Value, node: Option<Node<'_>>, embedded: bool, path: &str, out: &mut Vec<String>) {
    if let Some(n) = node {
        if n.preserve_unknown() {
            skip_prune(x, n, path, out);
            return;
        }
    }
    match x {
        Value::Object(m) => {
            let Some(n) = node else {
                // Nothing is known below here: every key goes.
                out.extend(m.keys().map(|k| join_key(path, k)));
                m.clear();
                return;
            };
            let embedded = embedded || n.embedded();
            let mut remove = Vec::new();
            for (k, v) in m.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                match child(n, k) {
                    (true, s) => prune_node(v, s, false, &join_key(path, k), out),
                    (false, _) => {
                        // The root's meta fields are not reported; nested ones are.
                        if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                            out.push(join_key(path, k));
                        }
                        remove.push(k.clone());
                    }
                }
            }
            for k in remove {
                m.remove(&k);
            }
        }
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items()).map(Node::new);
            for (i, v) in items.iter_mut().enumerate() {
                prune_node(v, item_schema, false, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields`: unknown keys stay, known ones are pruned normally.
fn skip_prune(x: &mut Value, n: Node<'_>, path: &str, out: &mut Vec<String>) {
    match x {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if n.embedded() && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let (true, s) = child(n, k) {
                    prune_node(v, s, false, &join_key(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = n.items().map(Node::new) {
                for (i, v) in items.iter_mut().enumerate() {
                    skip_prune(v, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn drop_nulls(x: &mut Value, node: Option<Node<'_>>) {
    match x {
        Value::Object(m) => {
            m.retain(|k, v| {
                let s = node.and_then(|n| child(n, k).1);
                let drop = v.is_null() && s.is_some_and(|s| !s.nullable() && s.default().is_none());
                !drop
            });
            for (k, v) in m.iter_mut() {
                drop_nulls(v, node.and_then(|n| child(n, k).1));
            }
        }
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items()).map(Node::new);
            for v in items.iter_mut() {
                drop_nulls(v, item_schema);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "name": {"type": "string"},
            "nested": {"type": "object", "properties": {
                "b": {"type": "integer", "nullable": true}, "c": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
            "apf": {"type": "object", "additionalProperties": false},
            "apt": {"type": "object", "additionalProperties": true}
        }}}})
    }

    #[test]
    fn prunes_and_reports_like_real_server() {
        // Real warnings: unknown field "spec.unk"; spec.nested.c (null) dropped silently.
        let mut obj = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a"}, "spec": {
            "name": "ab", "nested": {"b": null, "c": null}, "unk": 1, "free": {"x": {"y": 1}}}});
        assert_eq!(prune(&mut obj, &schema()), vec!["spec.unk"]);
        assert_eq!(obj["spec"], json!({"name": "ab", "nested": {"b": null}, "free": {"x": {"y": 1}}}));
        assert_eq!(obj["metadata"], json!({"name": "a"}));
    }

    #[test]
    fn reports_items_embedded_and_additional_properties() {
        // Real warnings, each as `unknown field "<path>"`:
        // spec.items[2].zzz; spec.embedded.extra, spec.embedded.spec.y;
        // spec.apf.y.z, spec.apt.w[0].q, spec.apt.y.z.
        let mut obj = json!({"spec": {
            "items": [{"name": ""}, {}, {"name": "ok", "zzz": 1}],
            "embedded": {"apiVersion": "v1", "kind": "Foo", "metadata": {"name": "n"},
                "spec": {"x": "a", "y": "b"}, "extra": 1},
            "apf": {"x": 1, "y": {"z": 2}},
            "apt": {"x": 1, "y": {"z": 2}, "w": [{"q": 1}]}}});
        assert_eq!(
            prune(&mut obj, &schema()),
            vec![
                "spec.apf.y.z",
                "spec.apt.w[0].q",
                "spec.apt.y.z",
                "spec.embedded.extra",
                "spec.embedded.spec.y",
                "spec.items[2].zzz"
            ]
        );
        assert_eq!(obj["spec"]["embedded"]["metadata"], json!({"name": "n"}));
        assert_eq!(obj["spec"]["apf"], json!({"x": 1, "y": {}}));
    }

    #[test]
    fn root_unknown_fields_are_reported() {
        let mut obj = json!({"apiVersion": "v", "kind": "K", "foo": 1});
        assert_eq!(prune(&mut obj, &schema()), vec!["foo"]);
    }
}
