//! Strategic merge patch (`application/strategic-merge-patch+json`), following apimachinery's
//! strategicpatch: maps merge (null deletes a key), lists merge by their patch merge key (or by
//! value for scalars) when the hints say so and are replaced otherwise, with the directives
//! `$patch` (replace/delete/merge), `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>`.

use super::hints::Hint;
use super::path::values_equal;
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList";

/// Strategic merge patch (application/strategic-merge-patch+json) with directives $patch
/// (replace/delete/merge), $retainKeys, $setElementOrder/<field>, $deleteFromPrimitiveList/<field>,
/// null deletes a map key; merge-key lists per hints; errors as String for a 400/422.
pub fn strategic_merge(target: &Value, patch: &Value, hints: &Value) -> Result<Value, String> {
    let original = match target {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err("invalid JSON document".to_string()),
    };
    let Value::Object(patch) = patch else {
        return Err("invalid JSON document".to_string());
    };
    merge_map(original, patch.clone(), Hint::new(hints)).map(Value::Object)
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    hint: Hint<'_>,
) -> Result<Map<String, Value>, String> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                return Ok(patch);
            }
            Some("delete") => return Ok(Map::new()),
            // The real server rejects `merge` on a map; merging is what it would mean anyway.
            Some("merge") => {
                patch.remove(DIRECTIVE);
            }
            _ => {
                return Err(format!(
                    "unknown patch type: {} in map: {}",
                    display(directive),
                    Value::Object(patch.clone())
                ))
            }
        }
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, hint)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_PRIMITIVE) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(field) => (field.to_string(), true),
                None => return Err("invalid patch format of primitive list".to_string()),
            },
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.get(&key) else {
            if !delete_list {
                set_or_remove(&mut original, key, clean(patch_value));
            }
            continue;
        };
        if kind(current) != kind(&patch_value) {
            if !delete_list {
                set_or_remove(&mut original, key, clean(patch_value));
            }
            continue;
        }
        let (child, _) = hint.field(&key);
        let merged = match (current, patch_value) {
            (Value::Object(cur), Value::Object(p)) => {
                if child.patch_replace_map() {
                    Some(Value::Object(p))
                } else {
                    Some(Value::Object(merge_map(cur.clone(), p, child)?))
                }
            }
            (Value::Array(cur), Value::Array(p)) => {
                Some(Value::Array(merge_slice_handler(cur.clone(), p, child, delete_list)?.items))
            }
            (_, p) => remove_directives(p),
        };
        set_or_remove(&mut original, key, merged);
    }
    Ok(original)
}

fn set_or_remove(map: &mut Map<String, Value>, key: String, value: Option<Value>) {
    match value {
        Some(v) => {
            map.insert(key, v);
        }
        None => {
            map.remove(&key);
        }
    }
}

// Values new to the object carry no nulls (they mean "delete", and there is nothing to delete)
// and no directives.
fn clean(mut value: Value) -> Option<Value> {
    discard_nulls(&mut value);
    remove_directives(value)
}

fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

// Drops maps holding a `$patch` directive; `None` when `value` itself is one.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(m.into_iter().filter_map(|(k, v)| remove_directives(v).map(|v| (k, v))).collect()))
        }
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(remove_directives).collect())),
        other => Some(other),
    }
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    List,
    Map,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), String> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || "invalid patch format of retainKeys".to_string();
    let retain = retain.as_array().ok_or_else(bad)?;
    let keeps = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE) || k.starts_with(SET_ORDER) {
            continue;
        }
        if !keeps(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| keeps(k));
    Ok(())
}

fn list_of(v: Option<&Value>) -> Result<Option<&Vec<Value>>, String> {
    match v {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(format!("expected a list, but received {other}")),
    }
}

// `$setElementOrder/<field>`: merge the field, then order it as the directive lists
// (directive order first, then patch order, then live order).
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    hint: Hint<'_>,
) -> Result<(), String> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ORDER)).cloned().collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let bad = || "invalid patch format of setElementOrder list".to_string();
        let order = order.as_array().cloned().ok_or_else(bad)?;
        let field = key.strip_prefix(SET_ORDER).and_then(|r| r.strip_prefix('/')).ok_or_else(bad)?.to_string();
        let original_list = list_of(original.get(&field))?.cloned();
        let patch_list = list_of(patch.get(&field))?.cloned();
        let (child, _) = hint.field(&field);
        let merge_key = child.patch_merge().unwrap_or_default();
        validate_set_order(patch_list.as_deref().unwrap_or(&[]), &order, &merge_key)?;
        let patch_items = patch_list.clone().unwrap_or_default();
        let live = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(cur), None) => Merged { items: cur.clone(), live_view: cur },
            (None, Some(p)) => match remove_directives(Value::Array(p)) {
                Some(Value::Array(items)) => Merged { items, live_view: Vec::new() },
                _ => continue,
            },
            (Some(cur), Some(p)) => merge_slice_handler(cur, p, child, false)?,
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged.items, &order, &merge_key)?;
        let elem = element_kind(&[&live, &patch_items])?;
        let both = normalize_element_order(in_order, server_only, &order, &merged.live_view, &merge_key, elem)?;
        original.insert(field.clone(), Value::Array(both));
        patch.remove(&field);
    }
    Ok(())
}

fn validate_set_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<(), String> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        patch_list.iter().filter(|v| !is_delete_item(v)).collect()
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if same_item(non_delete[pi], &order[si], merge_key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER} list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        ));
    }
    Ok(())
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

// Whether two list items are the same element: by merge key for maps, by value for scalars.
fn same_item(a: &Value, b: &Value, merge_key: &str) -> Result<bool, String> {
    if merge_key.is_empty() {
        return Ok(values_equal(a, b));
    }
    let ka = key_of(a, merge_key)?;
    let kb = key_of(b, merge_key)?;
    Ok(values_equal(ka, kb))
}

fn key_of<'a>(item: &'a Value, merge_key: &str) -> Result<&'a Value, String> {
    item.get(merge_key).ok_or_else(|| format!("map: {item} does not contain declared merge key: {merge_key}"))
}

// A merged list, plus the live order the real implementation sees afterwards: its in-place
// deletions and appends show through in `$setElementOrder` ordering.
struct Merged {
    items: Vec<Value>,
    live_view: Vec<Value>,
}

fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    hint: Hint<'_>,
    delete_list: bool,
) -> Result<Merged, String> {
    match hint.patch_merge() {
        Some(merge_key) => merge_slice(original, patch, &merge_key, hint, delete_list),
        None if delete_list => merge_slice(original, patch, "", hint, true),
        None => Ok(Merged { items: patch, live_view: original }),
    }
}

fn element_kind(lists: &[&[Value]]) -> Result<Kind, String> {
    let mut found: Option<Kind> = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let k = kind(item);
        match found {
            None if k == Kind::List => return Err("lists of lists are not supported".to_string()),
            None => found = Some(k),
            Some(prev) if prev != k => return Err("list element types are not identical".to_string()),
            Some(_) => {}
        }
    }
    found.ok_or_else(|| "no elements in any of the given slices".to_string())
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    hint: Hint<'_>,
    delete_list: bool,
) -> Result<Merged, String> {
    if original.is_empty() && patch.is_empty() {
        return Ok(Merged { items: Vec::new(), live_view: original });
    }
    let elem = element_kind(&[&original, &patch])?;
    if elem != Kind::Map {
        if delete_list {
            let items = original.iter().filter(|v| !patch.iter().any(|d| values_equal(v, d))).cloned().collect();
            return Ok(Merged { items, live_view: original });
        }
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| values_equal(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, "")?;
        let items = normalize_element_order(in_patch, server_only, &patch, &original, "", elem)?;
        return Ok(Merged { items, live_view: original });
    }
    if merge_key.is_empty() {
        return Err("cannot merge lists without merge key".to_string());
    }
    let live_len = original.len();
    let (original, patch) = apply_list_directives(original, patch, merge_key)?;
    let merged = merge_items(original.clone(), &patch, merge_key, hint.items())?;
    let mut live_view = merged.clone();
    live_view.truncate(live_len);
    let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
    let items = normalize_element_order(in_patch, server_only, &patch, &original, merge_key, elem)?;
    Ok(Merged { items, live_view })
}

// `{"$patch":"delete", key: v}` items delete, `{"$patch":"replace"}` makes the patch the list.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let target = key_of(&item, merge_key)?.clone();
                original.retain(|o| !o.get(merge_key).is_some_and(|k| values_equal(k, &target)));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err("merging lists cannot yet be specified in the patch".to_string()),
            _ => return Err(format!("unknown patch type: {} in map: {item}", display(directive))),
        }
    }
    if replace {
        let cleaned = plain.into_iter().filter_map(clean).collect();
        return Ok((cleaned, Vec::new()));
    }
    Ok((original, plain))
}

fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    item_hint: Hint<'_>,
) -> Result<Vec<Value>, String> {
    for item in patch {
        let Value::Object(p) = item else {
            return Err(format!("expected a map, but received {item}"));
        };
        let key = key_of(item, merge_key)?;
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            if !o.is_object() {
                return Err(format!("value for key {i} is not a map"));
            }
            if o.get(merge_key).is_some_and(|k| values_equal(k, key)) {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                let cur = original[i].as_object().cloned().unwrap_or_default();
                original[i] = Value::Object(merge_map(cur, p.clone(), item_hint)?);
            }
            None => original.extend(clean(item.clone())),
        }
    }
    Ok(original)
}

// Splits `merged` into the items named by `by` and the rest, each keeping merged order.
fn partition(merged: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut named = Vec::new();
    let mut rest = Vec::new();
    for item in merged {
        let hit = if merge_key.is_empty() {
            by.iter().any(|b| values_equal(b, &item))
        } else {
            let key = key_of(&item, merge_key)?;
            by.iter().any(|b| b.get(merge_key).is_some_and(|k| values_equal(k, key)))
        };
        if hit {
            named.push(item);
        } else {
            rest.push(item);
        }
    }
    Ok((named, rest))
}

fn position(list: &[Value], item: &Value, merge_key: &str, elem: Kind) -> Option<usize> {
    let pick = |v: &'_ Value| -> Option<Value> {
        if elem == Kind::Map {
            v.get(merge_key).cloned()
        } else {
            Some(v.clone())
        }
    };
    let wanted = pick(item);
    list.iter().position(|v| match (&pick(v), &wanted) {
        (Some(a), Some(b)) => values_equal(a, b),
        (None, None) => true,
        _ => false,
    })
}

fn sort_by_order(mut items: Vec<Value>, order: &[Value], merge_key: &str, elem: Kind) -> Result<Vec<Value>, String> {
    let mut deletes = Vec::new();
    if elem == Kind::Map {
        for v in items.iter().chain(order.iter()) {
            key_of(v, merge_key)?;
        }
        let (keep, del): (Vec<Value>, Vec<Value>) = items.into_iter().partition(|v| !is_delete_item(v));
        items = keep;
        deletes = del;
    }
    items.sort_by_key(|v| position(order, v, merge_key, elem).unwrap_or(usize::MAX));
    items.extend(deletes);
    Ok(items)
}

// Patch items in patch order, live-only items in live order, interleaved so that both relative
// orders hold and live neighbours stay together where possible.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    elem: Kind,
) -> Result<Vec<Value>, String> {
    let right = sort_by_order(patch_items, patch_order, merge_key, elem)?;
    let left = sort_by_order(server_only, server_order, merge_key, elem)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = position(server_order, &left[i], merge_key, elem);
            let ri = position(server_order, &right[j], merge_key, elem);
            match (li, ri) {
                (Some(a), Some(b)) if a < b => {
                    out.push(left[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(right[j].clone());
                    j += 1;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_hints() -> Value {
        let by = |key: &str| {
            json!({"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":[key],
                "items":{"type":"object","x-kubernetes-preserve-unknown-fields":true}})
        };
        let mut containers = by("name");
        containers["items"]["properties"] = json!({"env": by("name"), "ports": {
            "type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["containerPort","protocol"],
            "items":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}});
        let mut volumes = by("name");
        volumes["items"]["x-kubernetes-patch-strategy"] = json!("merge,retainKeys");
        json!({"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{
            "metadata": crate::merge::metadata_hints(),
            "spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{
                "containers": containers, "volumes": volumes}}}})
    }

    fn smp(target: Value, patch: Value) -> Result<Value, String> {
        strategic_merge(&target, &patch, &pod_hints())
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = smp(
            json!({"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"x":1}}),
            json!({"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"y":{"z":null,"w":1}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata":{"labels":{"b":"2","c":"3"}},"spec":{"x":1,"y":{"w":1}}}));
    }

    #[test]
    fn lists_merge_by_key_and_atomic_lists_replace() {
        let target = json!({"spec":{"containers":[{"name":"a","image":"1","env":[{"name":"X","value":"1"}]},{"name":"b","image":"2"}],
            "args":["x","y"]}});
        let patch = json!({"spec":{"containers":[{"name":"a","image":"3","env":[{"name":"Y","value":"2"}]},{"name":"c","image":"4"}],
            "args":["z"]}});
        let out = smp(target, patch).unwrap();
        assert_eq!(
            out,
            // Without $setElementOrder, new items go before the live-only ones (as apimachinery).
            json!({"spec":{"containers":[{"name":"a","image":"3","env":[{"name":"Y","value":"2"},{"name":"X","value":"1"}]},
                {"name":"c","image":"4"},{"name":"b","image":"2"}],"args":["z"]}})
        );
    }

    #[test]
    fn list_directives() {
        let target = json!({"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]},
            "metadata":{"finalizers":["f1","f2"]}});
        let patch = json!({"spec":{"containers":[{"name":"b","$patch":"delete"}]},
            "metadata":{"$deleteFromPrimitiveList/finalizers":["f1"],"finalizers":["f3"]}});
        let out = smp(target.clone(), patch).unwrap();
        assert_eq!(
            out,
            json!({"spec":{"containers":[{"name":"a"},{"name":"c"}]},"metadata":{"finalizers":["f3","f2"]}})
        );
        let replace = json!({"spec":{"containers":[{"name":"z"},{"$patch":"replace"}]}});
        let out = smp(target.clone(), replace).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name":"z"}]));
        let bad = json!({"spec":{"containers":[{"image":"x"}]}});
        assert!(smp(target.clone(), bad).unwrap_err().contains("merge key: name"));
        let bad = json!({"spec":{"containers":[{"name":"a","$patch":"bogus"}]}});
        assert!(smp(target, bad).is_err());
    }

    #[test]
    fn map_directives() {
        let target = json!({"spec":{"a":{"x":1,"y":2},"b":{"x":1}}});
        let out =
            smp(target.clone(), json!({"spec":{"a":{"$patch":"replace","z":3},"b":{"$patch":"delete"}}})).unwrap();
        assert_eq!(out, json!({"spec":{"a":{"z":3},"b":{}}}));
        let out = smp(target.clone(), json!({"spec":{"$patch":"delete"}})).unwrap();
        assert_eq!(out, json!({"spec":{}}));
        assert!(smp(target, json!({"spec":{"$patch":"nope"}})).is_err());
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let target = json!({"spec":{"volumes":[{"name":"v","hostPath":{"path":"/x"},"emptyDir":null}]}});
        let patch = json!({"spec":{"volumes":[{"name":"v","$retainKeys":["name","emptyDir"],"emptyDir":{}}]}});
        let out = smp(target.clone(), patch).unwrap();
        assert_eq!(out, json!({"spec":{"volumes":[{"name":"v","emptyDir":{}}]}}));
        let bad = json!({"spec":{"volumes":[{"name":"v","$retainKeys":["name"],"emptyDir":{}}]}});
        assert!(smp(target, bad).is_err());
    }

    #[test]
    fn set_element_order() {
        let target = json!({"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}});
        let patch = json!({"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}],
            "containers":[{"name":"a","image":"x"}]}});
        let out = smp(target, patch).unwrap();
        assert_eq!(out, json!({"spec":{"containers":[{"name":"c"},{"name":"a","image":"x"},{"name":"b"}]}}));
        let target = json!({"metadata":{"finalizers":["a","b"]}});
        let patch = json!({"metadata":{"$setElementOrder/finalizers":["b","c","a"],"finalizers":["c"]}});
        let out = smp(target, patch).unwrap();
        assert_eq!(out, json!({"metadata":{"finalizers":["b","c","a"]}}));
    }

    #[test]
    fn delete_with_set_element_order_matches_apimachinery() {
        // apimachinery's "add map and delete map from merging list" three-way case.
        let hints = json!({"properties":{"mergingList":{"type":"array","x-kubernetes-patch-strategy":"merge",
            "x-kubernetes-patch-merge-key":"name","items":{"type":"object"}}}});
        let current = json!({"mergingList":[{"name":1},{"name":2,"other":"b"},{"name":4,"other":"c"}]});
        let patch = json!({"$setElementOrder/mergingList":[{"name":2},{"name":3}],
            "mergingList":[{"name":3},{"name":1,"$patch":"delete"}]});
        let out = strategic_merge(&current, &patch, &hints).unwrap();
        assert_eq!(out, json!({"mergingList":[{"name":2,"other":"b"},{"name":4,"other":"c"},{"name":3}]}));
    }

    #[test]
    fn new_items_keep_live_order() {
        let target = json!({"metadata":{"finalizers":["a","b"]}});
        let out = smp(target, json!({"metadata":{"finalizers":["c","a"]}})).unwrap();
        assert_eq!(out, json!({"metadata":{"finalizers":["c","a","b"]}}));
    }

    #[test]
    fn type_changes_replace_and_clean_new_values() {
        let out = smp(
            json!({"spec":{"a":"x"}}),
            json!({"spec":{"a":{"b":null,"c":1},"n":{"m":null,"k":[{"$patch":"delete"}]}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec":{"a":{"c":1},"n":{"k":[]}}}));
        assert!(strategic_merge(&json!({}), &json!([1]), &json!({})).is_err());
    }
}
