//! Defaulting: fills in `default` values of missing (or non-nullable `null`) fields, recursively,
//! the way the real server's structural defaulting does after pruning.

use serde_json::Value;

use super::node::{Additional, Node};

/// Applies the schema's defaults to `obj` in place. A `null` in a non-nullable field that has a
/// default is replaced by the default; defaults are then defaulted further themselves.
pub fn apply_defaults(obj: &mut Value, schema: &Value) {
    default_node(obj, Node::new(schema));
}

fn non_nullable_null(v: &Value, s: Option<&Value>) -> bool {
    v.is_null() && s.is_some_and(|s| !Node::new(s).nullable())
}

fn default_node(x: &mut Value, node: Node<'_>) {
    match x {
        Value::Object(m) => {
            if let Some(props) = node.properties() {
                for (k, p) in props {
                    let Some(d) = Node::new(p).default() else {
                        continue;
                    };
                    let missing = m.get(k).is_none_or(|v| non_nullable_null(v, Some(p)));
                    if missing {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let additional = match node.additional() {
                Additional::Schema(s) => Some(s),
                _ => None,
            };
            for (k, v) in m.iter_mut() {
                if let Some(p) = node.property(k) {
                    default_node(v, Node::new(p));
                } else if let Some(s) = additional {
                    if non_nullable_null(v, Some(s)) {
                        if let Some(d) = Node::new(s).default() {
                            *v = d.clone();
                        }
                    }
                    default_node(v, Node::new(s));
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = node.items() else {
                return;
            };
            for v in items.iter_mut() {
                if non_nullable_null(v, Some(item_schema)) {
                    if let Some(d) = Node::new(item_schema).default() {
                        *v = d.clone();
                    }
                }
                default_node(v, Node::new(item_schema));
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
            "priority": {"type": "integer", "default": 10},
            "nulld": {"type": "string", "default": "d"},
            "nested": {"type": "object", "default": {}, "properties": {
                "a": {"type": "string", "default": "x"},
                "b": {"type": "integer", "nullable": true}}},
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "port": {"type": "integer", "default": 80}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "v"}}
        }}}})
    }

    #[test]
    fn defaults_like_real_server() {
        // Real server, POST spec {"name":"ab","nested":{"b":null},"nulld":null,"priority":null}
        // stored {"name":"ab","nested":{"a":"x","b":null},"nulld":"d","priority":10}.
        let mut obj = json!({"spec": {"name": "ab", "nested": {"b": null}, "nulld": null, "priority": null}});
        apply_defaults(&mut obj, &schema());
        assert_eq!(obj["spec"], json!({"name": "ab", "nested": {"a": "x", "b": null}, "nulld": "d", "priority": 10}));
    }

    #[test]
    fn defaults_missing_object_then_inside_it_and_in_items() {
        let mut obj = json!({"spec": {"ports": [{"name": "x"}, null], "labels": {"k": null}}});
        apply_defaults(&mut obj, &schema());
        assert_eq!(obj["spec"]["nested"], json!({"a": "x"}));
        assert_eq!(obj["spec"]["ports"], json!([{"name": "x", "port": 80}, null]));
        assert_eq!(obj["spec"]["labels"], json!({"k": "v"}));
    }
}
