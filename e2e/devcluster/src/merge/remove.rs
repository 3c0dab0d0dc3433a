//! Removing a set of fields from an object (members go whole, children are removed inside).

use super::fieldset::FieldSet;
use super::hints::Hint;
use super::path::PathElement;
use super::typed::list_elements;
use serde_json::{Map, Value};

/// `value` without the fields of `set`; containers emptied by the removal disappear.
pub fn remove_items(value: &Value, set: &FieldSet, hint: Hint<'_>) -> Value {
    node(value, set, hint).unwrap_or_else(|| Value::Object(Map::new()))
}

fn node(value: &Value, set: &FieldSet, hint: Hint<'_>) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.is_empty() || hint.map_atomic() {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in map {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        if let Some(kept) = node(v, sub, hint.field(k).0) {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let (_, pes) = list_elements(&hint, items)?;
            let item_hint = hint.items();
            let mut out = Vec::new();
            for (pe, item) in pes.iter().zip(items) {
                if set.has_member(pe) {
                    continue;
                }
                match set.child(pe) {
                    Some(sub) => out.push(node(item, sub, item_hint).unwrap_or(Value::Null)),
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        scalar => Some(scalar.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::test_schema::widget_hints;
    use serde_json::json;

    #[test]
    fn removes_members_and_children() {
        let hints = widget_hints();
        let obj = json!({"spec":{"replicas":1,"items":[{"name":"x","value":"1"},{"name":"y"}],"tags":["a","b"],
            "nested":{"a":{"b":"1"}}}});
        let set =
            FieldSet::from_json(&json!({"f:spec":{"f:replicas":{},"f:items":{"k:{\"name\":\"x\"}":{"f:value":{}},
            "k:{\"name\":\"y\"}":{}},"f:tags":{"v:\"a\"":{}},"f:nested":{"f:a":{"f:b":{}}}}}))
            .unwrap();
        let out = remove_items(&obj, &set, Hint::new(&hints));
        assert_eq!(out, json!({"spec":{"items":[{"name":"x"}],"tags":["b"]}}));
    }
}
