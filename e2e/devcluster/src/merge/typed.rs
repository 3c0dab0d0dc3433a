//! Schema-aware views of an object: the path element of a list item, the field set an object
//! spells out (what an applier owns), and validation of an apply configuration.

use super::fieldset::FieldSet;
use super::hints::{Hint, ListKind};
use super::path::{path_to_string, PathElement};
use serde_json::Value;
use std::collections::BTreeSet;

/// The path element identifying `item` in a list of `kind` (an error for atomic lists).
pub fn item_element(list: &Hint<'_>, kind: &ListKind, item: &Value) -> Result<PathElement, String> {
    match kind {
        ListKind::Atomic => Err("invalid indexing of non-associative list".to_string()),
        ListKind::Set => match item {
            Value::Object(_) => Err("associative list without keys has an element that's a map type".to_string()),
            Value::Array(_) => Err("not supported: associative list with lists as elements".to_string()),
            Value::Null => Err("associative list without keys has an element that's an explicit null".to_string()),
            scalar => Ok(PathElement::Value(scalar.clone())),
        },
        ListKind::Map(keys) => {
            let map = match item {
                Value::Object(map) => map,
                Value::Null => return Err("associative list with keys may not have a null element".to_string()),
                _ => return Err("associative list with keys may not have non-map elements".to_string()),
            };
            let mut fields = Vec::new();
            for key in keys {
                // A missing key field falls back to its schema default (e.g. protocol: TCP).
                if let Some(v) = map.get(key).or_else(|| list.key_default(key)) {
                    fields.push((key.clone(), v.clone()));
                }
            }
            if fields.is_empty() {
                return Err(format!(
                    "associative list with keys has an element that omits all key fields {keys:?} (and doesn't have default values for any key fields)"
                ));
            }
            Ok(PathElement::key(fields))
        }
    }
}

/// Path elements of all items of a list, or `None` when one cannot be identified (the list is
/// then handled as atomic so that a malformed live object never blocks a write).
pub fn list_elements(list: &Hint<'_>, items: &[Value]) -> Option<(ListKind, Vec<PathElement>)> {
    let kind = list.list_kind();
    if kind == ListKind::Atomic {
        return None;
    }
    let pes: Result<Vec<_>, _> = items.iter().map(|item| item_element(list, &kind, item)).collect();
    pes.ok().map(|pes| (kind, pes))
}

/// The set of fields `value` spells out: leaves, atomic lists and maps, list items, undeclared map
/// keys, and empty or null fields.
pub fn to_field_set(value: &Value, hint: Hint<'_>) -> FieldSet {
    let mut set = FieldSet::new();
    walk(value, hint, &mut Vec::new(), &mut set);
    set
}

fn walk(value: &Value, hint: Hint<'_>, path: &mut Vec<PathElement>, set: &mut FieldSet) {
    match value {
        Value::Object(map) => {
            if hint.map_atomic() {
                set.insert(path);
                return;
            }
            for (key, child) in map {
                let (child_hint, declared) = hint.field(key);
                path.push(PathElement::Field(key.clone()));
                walk(child, child_hint, path, set);
                let empty = child.is_null() || child.as_object().is_some_and(|m| m.is_empty());
                if empty || !declared {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some((_, pes)) = list_elements(&hint, items) else {
                set.insert(path);
                return;
            };
            let mut seen = BTreeSet::new();
            let mut dups = BTreeSet::new();
            for pe in &pes {
                if !seen.insert(pe) {
                    dups.insert(pe);
                }
            }
            let item_hint = hint.items();
            for (pe, item) in pes.iter().zip(items) {
                path.push(pe.clone());
                // Duplicated items are owned as a whole, not field by field.
                if !dups.contains(pe) {
                    walk(item, item_hint, path, set);
                }
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// Adds declared fields that have tracked children as members themselves, so removing the set
/// removes such fields whole (structured-merge-diff's `EnsureNamedFieldsAreMembers`).
pub fn ensure_named_fields_are_members(set: &FieldSet, hint: Hint<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    for pe in set.members() {
        out.insert_member(pe.clone());
    }
    for (pe, child) in set.children() {
        let child_hint = match pe {
            PathElement::Field(name) => {
                if hint.declares(name) {
                    out.insert_member(pe.clone());
                }
                hint.field(name).0
            }
            PathElement::Key(_) => hint.items(),
            _ => Hint::Untyped,
        };
        out.set_child(pe.clone(), ensure_named_fields_are_members(child, child_hint));
    }
    out
}

/// Checks that every associative list in an apply configuration has identifiable, unique items.
pub fn validate_config(value: &Value, hint: Hint<'_>) -> Result<(), String> {
    check(value, hint, &mut Vec::new())
}

fn check(value: &Value, hint: Hint<'_>, path: &mut Vec<PathElement>) -> Result<(), String> {
    match value {
        Value::Object(map) if !hint.map_atomic() => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                check(child, hint.field(key).0, path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            let kind = hint.list_kind();
            if kind == ListKind::Atomic {
                return Ok(());
            }
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let pe = item_element(&hint, &kind, item)
                    .map_err(|e| format!("{}: element {i}: {e}", path_to_string(path)))?;
                if !seen.insert(pe.clone()) {
                    return Err(format!("{}: duplicate entries for key {}", path_to_string(path), pe.display()));
                }
                path.push(pe);
                check(item, hint.items(), path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::test_schema::widget_hints;
    use serde_json::json;

    #[test]
    fn apply_field_set_matches_real_server() {
        let hints = widget_hints();
        // The apply configuration and the fieldsV1 the real server recorded for it (minus the
        // metadata/apiVersion/kind entries the server strips).
        let config = json!({"spec":{"replicas":1,"items":[{"name":"x","value":"1"},{"name":"y"}],
            "ports":[{"port":80}],"tags":["t1"],"args":["a"],"selector":{"k":"v"},"config":{"c":"d"},
            "nested":{"a":{"b":"1"}},"extra":{"p":{"q":1},"r":[1]}}});
        let real = json!({"f:spec":{"f:args":{},"f:config":{"f:c":{}},"f:extra":{"f:p":{".":{},"f:q":{}},"f:r":{}},
            "f:items":{"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"y\"}":{".":{},"f:name":{}}},
            "f:nested":{"f:a":{"f:b":{}}},"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},
            "f:replicas":{},"f:selector":{},"f:tags":{"v:\"t1\"":{}}}});
        assert_eq!(to_field_set(&config, Hint::new(&hints)).to_json(), real);
    }

    #[test]
    fn named_fields_become_members() {
        let hints = widget_hints();
        let set = FieldSet::from_json(&json!({"f:spec":{"f:nested":{"f:a":{"f:b":{}}},"f:extra":{"f:p":{"f:q":{}}}}}))
            .unwrap();
        let out = ensure_named_fields_are_members(&set, Hint::new(&hints));
        assert_eq!(
            out.to_json(),
            json!({"f:spec":{".":{},"f:extra":{".":{},"f:p":{"f:q":{}}},"f:nested":{".":{},"f:a":{".":{},"f:b":{}}}}})
        );
    }

    #[test]
    fn validation_reports_bad_items() {
        let hints = widget_hints();
        let h = Hint::new(&hints);
        assert!(validate_config(&json!({"spec":{"items":[{"name":"a"},{"name":"b"}]}}), h).is_ok());
        let dup = validate_config(&json!({"spec":{"items":[{"name":"a"},{"name":"a"}]}}), h);
        assert_eq!(dup.unwrap_err(), ".spec.items: duplicate entries for key [name=\"a\"]");
        assert!(validate_config(&json!({"spec":{"items":[{"value":"a"}]}}), h).is_err());
        assert!(validate_config(&json!({"spec":{"tags":[{"a":1}]}}), h).is_err());
    }
}
