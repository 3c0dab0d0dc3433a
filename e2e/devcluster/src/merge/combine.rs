//! Merging an apply configuration into the live object: the configuration's values win, granular
//! maps merge key by key, associative lists merge item by item, atomic values are replaced.

use super::hints::Hint;
use super::path::PathElement;
use super::typed::list_elements;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

// Stands in for duplicated live items, which merge as if absent.
static NULL: Value = Value::Null;

/// Merges `config` into `live`.
pub fn merge(live: &Value, config: &Value, hint: Hint<'_>) -> Value {
    node(Some(live), Some(config), hint).unwrap_or_else(|| Value::Object(Map::new()))
}

fn node(l: Option<&Value>, r: Option<&Value>, hint: Hint<'_>) -> Option<Value> {
    let Some(r) = r else {
        return l.cloned();
    };
    let Some(l) = l else {
        return Some(r.clone());
    };
    match (l, r) {
        (Value::Object(lm), Value::Object(rm)) => maps(lm, rm, r, hint),
        // A null configuration value keeps a non-empty granular map, as the real server does.
        (Value::Object(lm), Value::Null) if !lm.is_empty() && !hint.map_atomic() => Some(l.clone()),
        (Value::Array(la), Value::Array(ra)) => lists(la, ra, r, hint),
        (Value::Array(la), Value::Null) if !la.is_empty() && list_elements(&hint, la).is_some() => Some(l.clone()),
        _ => Some(r.clone()),
    }
}

fn maps(lm: &Map<String, Value>, rm: &Map<String, Value>, r: &Value, hint: Hint<'_>) -> Option<Value> {
    if hint.map_atomic() || (lm.is_empty() && rm.is_empty()) {
        return Some(r.clone());
    }
    let mut out = Map::new();
    for (k, lv) in lm {
        if let Some(v) = node(Some(lv), rm.get(k), hint.field(k).0) {
            out.insert(k.clone(), v);
        }
    }
    for (k, rv) in rm {
        if !lm.contains_key(k) {
            if let Some(v) = node(None, Some(rv), hint.field(k).0) {
                out.insert(k.clone(), v);
            }
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

// Keeps the live order, placing configuration items where the configuration orders them
// (structured-merge-diff's list merge, step for step).
fn lists(la: &[Value], ra: &[Value], r: &Value, hint: Hint<'_>) -> Option<Value> {
    if la.is_empty() && ra.is_empty() {
        return Some(r.clone());
    }
    let (Some((_, lpes)), Some((_, rpes))) = (list_elements(&hint, la), list_elements(&hint, ra)) else {
        return Some(r.clone());
    };
    let mut observed_r: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, item) in rpes.iter().zip(ra) {
        observed_r.entry(pe).or_insert(item);
    }
    let mut observed_l: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, item) in lpes.iter().zip(la) {
        observed_l.entry(pe).and_modify(|v| *v = &NULL).or_insert(item);
    }
    let mut shared: VecDeque<&PathElement> = rpes.iter().filter(|pe| observed_l.contains_key(pe)).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_r: BTreeSet<&PathElement> = BTreeSet::new();
    let item_hint = hint.items();
    let mut out = Vec::with_capacity(la.len().max(ra.len()));
    let (ln, rn) = (lpes.len(), rpes.len());
    let (mut li, mut ri) = (0, 0);
    while li < ln || ri < rn {
        if li < ln && ri < rn {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_r.insert(pe);
                let lv = observed_l.get(pe).copied();
                let rv = observed_r.get(pe).copied();
                out.extend(node(lv, rv, item_hint));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            // A shared item out of the configuration's order waits for its turn.
            if observed_r.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < ln {
            let pe = &lpes[li];
            if !observed_r.contains_key(pe) {
                out.extend(node(Some(&la[li]), None, item_hint));
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
            }
        }
        if ri < rn {
            let pe = &rpes[ri];
            merged_r.insert(pe);
            let lv = observed_l.get(pe).copied();
            let rv = observed_r.get(pe).copied();
            out.extend(node(lv, rv, item_hint));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::test_schema::widget_hints;
    use serde_json::json;

    #[test]
    fn merges_by_list_and_map_semantics() {
        let hints = widget_hints();
        let live = json!({"spec":{"replicas":1,"items":[{"name":"x","value":"1"},{"name":"y"}],
            "tags":["a","b"],"args":["a","b"],"selector":{"k":"v","l":"w"},"config":{"c":"d"},"nested":{"a":{"b":"1"}}}});
        let config = json!({"spec":{"replicas":3,"items":[{"name":"y","value":"2"},{"name":"z"}],
            "tags":["c"],"args":["c"],"selector":{"k":"x"},"config":{"e":"f"},"nested":{"a":{"c":"2"}}}});
        let out = merge(&live, &config, Hint::new(&hints));
        assert_eq!(
            out,
            json!({"spec":{"replicas":3,"items":[{"name":"x","value":"1"},{"name":"y","value":"2"},{"name":"z"}],
                "tags":["a","b","c"],"args":["c"],"selector":{"k":"x"},"config":{"c":"d","e":"f"},
                "nested":{"a":{"b":"1","c":"2"}}}})
        );
    }

    #[test]
    fn configuration_order_wins_for_shared_items() {
        let hints = widget_hints();
        let live = json!({"spec":{"tags":["a","b","c"]}});
        let config = json!({"spec":{"tags":["c","a"]}});
        let out = merge(&live, &config, Hint::new(&hints));
        assert_eq!(out, json!({"spec":{"tags":["b","c","a"]}}));
    }
}
