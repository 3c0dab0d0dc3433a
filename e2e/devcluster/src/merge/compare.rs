//! Comparison of two versions of an object: which fields were added, modified or removed.

use super::fieldset::FieldSet;
use super::hints::Hint;
use super::path::{values_equal, PathElement};
use super::typed::list_elements;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Fields added, modified and removed between two objects.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Fields present only in the new object.
    pub added: FieldSet,
    /// Leaf fields (scalars, atomic lists and maps) whose value changed.
    pub modified: FieldSet,
    /// Fields present only in the old object.
    pub removed: FieldSet,
}

/// Compares `old` with `new` under the type hints.
pub fn compare(old: &Value, new: &Value, hint: Hint<'_>) -> Comparison {
    let mut out = Comparison::default();
    node(Some(old), Some(new), hint, &mut Vec::new(), &mut out);
    out
}

fn node(l: Option<&Value>, r: Option<&Value>, hint: Hint<'_>, path: &mut Vec<PathElement>, out: &mut Comparison) {
    let was_leaf = inner(l, r, hint, path, out);
    // A struct, map or list that appears or disappears is itself added or removed.
    if !was_leaf {
        if l.is_none() {
            out.added.insert(path);
        } else if r.is_none() {
            out.removed.insert(path);
        }
    }
}

fn as_map(v: Option<&Value>) -> Option<Option<&Map<String, Value>>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::Object(m)) => Some(Some(m)),
        _ => None,
    }
}

fn as_list(v: Option<&Value>) -> Option<Option<&Vec<Value>>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(a)) => Some(Some(a)),
        _ => None,
    }
}

// Returns true when the node was compared as a leaf.
fn inner(
    l: Option<&Value>,
    r: Option<&Value>,
    hint: Hint<'_>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> bool {
    let any_map = matches!(l, Some(Value::Object(_))) || matches!(r, Some(Value::Object(_)));
    let any_list = matches!(l, Some(Value::Array(_))) || matches!(r, Some(Value::Array(_)));
    if any_map {
        if let (Some(lm), Some(rm)) = (as_map(l), as_map(r)) {
            return maps(l, r, lm, rm, hint, path, out);
        }
    } else if any_list {
        if let (Some(la), Some(ra)) = (as_list(l), as_list(r)) {
            return lists(l, r, la, ra, hint, path, out);
        }
    }
    leaf(l, r, path, out)
}

fn leaf(l: Option<&Value>, r: Option<&Value>, path: &[PathElement], out: &mut Comparison) -> bool {
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if !values_equal(a, b) => out.modified.insert(path),
        _ => {}
    }
    true
}

fn maps(
    l: Option<&Value>,
    r: Option<&Value>,
    lm: Option<&Map<String, Value>>,
    rm: Option<&Map<String, Value>>,
    hint: Hint<'_>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> bool {
    let empty = |m: Option<&Map<String, Value>>| m.is_none_or(|m| m.is_empty());
    // Empty and null maps compare as leaves so that {} vs null vs absent stays visible.
    if hint.map_atomic() || (empty(lm) && empty(rm)) {
        return leaf(l, r, path, out);
    }
    if let Some(lm) = lm {
        for (k, lv) in lm {
            path.push(PathElement::Field(k.clone()));
            node(Some(lv), rm.and_then(|m| m.get(k)), hint.field(k).0, path, out);
            path.pop();
        }
    }
    if let Some(rm) = rm {
        for (k, rv) in rm {
            if lm.is_some_and(|m| m.contains_key(k)) {
                continue;
            }
            path.push(PathElement::Field(k.clone()));
            node(None, Some(rv), hint.field(k).0, path, out);
            path.pop();
        }
    }
    false
}

fn lists(
    l: Option<&Value>,
    r: Option<&Value>,
    la: Option<&Vec<Value>>,
    ra: Option<&Vec<Value>>,
    hint: Hint<'_>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> bool {
    let empty: Vec<Value> = Vec::new();
    let (la, ra) = (la.unwrap_or(&empty), ra.unwrap_or(&empty));
    if la.is_empty() && ra.is_empty() {
        return leaf(l, r, path, out);
    }
    let (Some((_, lpes)), Some((_, rpes))) = (list_elements(&hint, la), list_elements(&hint, ra)) else {
        return leaf(l, r, path, out);
    };
    // Duplicated items compare through their first occurrence.
    let index = |pes: &[PathElement]| {
        let mut m: BTreeMap<PathElement, usize> = BTreeMap::new();
        for (i, pe) in pes.iter().enumerate() {
            m.entry(pe.clone()).or_insert(i);
        }
        m
    };
    let lindex = index(&lpes);
    let rindex = index(&rpes);
    let mut order: Vec<&PathElement> = rindex.keys().collect();
    order.extend(lindex.keys().filter(|pe| !rindex.contains_key(*pe)));
    let item_hint = hint.items();
    for pe in order {
        path.push(pe.clone());
        let lv = lindex.get(pe).map(|&i| &la[i]);
        let rv = rindex.get(pe).map(|&i| &ra[i]);
        node(lv, rv, item_hint, path, out);
        path.pop();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::test_schema::widget_hints;
    use serde_json::json;

    #[test]
    fn create_marks_new_structs_as_added() {
        // Real server, create of a Widget by an Update manager (fieldsV1 of "creator", spec part).
        let hints = widget_hints();
        let new = json!({"spec":{"replicas":2,"items":[{"name":"x","value":"1"}],"tags":["t1"],
            "config":{"c":"d"},"extra":{"p":{"q":1},"r":[1]},"selector":{"k":"v"}}});
        let c = compare(&json!({}), &new, Hint::new(&hints));
        assert_eq!(
            c.added.to_json(),
            json!({"f:spec":{".":{},"f:config":{".":{},"f:c":{}},"f:extra":{".":{},"f:p":{".":{},"f:q":{}},"f:r":{}},
                "f:items":{".":{},"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}}},
                "f:replicas":{},"f:selector":{},"f:tags":{".":{},"v:\"t1\"":{}}}})
        );
        assert!(c.modified.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn update_records_changes_only() {
        let hints = widget_hints();
        let old =
            json!({"metadata":{"name":"w"},"spec":{"replicas":1,"items":[{"name":"y"}],"nested":{"a":{"c":"2"}}}});
        let new = json!({"metadata":{"name":"w","labels":{"e":"1"}},"spec":{"replicas":7,"items":[{"name":"y","value":"v"}]}});
        let c = compare(&old, &new, Hint::new(&hints));
        assert_eq!(
            c.added.to_json(),
            json!({"f:metadata":{"f:labels":{".":{},"f:e":{}}},"f:spec":{"f:items":{"k:{\"name\":\"y\"}":{"f:value":{}}}}})
        );
        assert_eq!(c.modified.to_json(), json!({"f:spec":{"f:replicas":{}}}));
        assert_eq!(c.removed.to_json(), json!({"f:spec":{"f:nested":{".":{},"f:a":{".":{},"f:c":{}}}}}));
    }
}
