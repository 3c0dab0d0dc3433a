//! `x-kubernetes-list-type: set` and `map` invariants: no duplicate entries / map keys.

use serde_json::{Map, Value};

use super::format::{self, go_json, Bad};
use super::node::{sorted_keys, Additional, Node};
use super::path;
use super::FieldError;

/// List-type errors for `obj`, reported after all schema errors by the real server.
pub(crate) fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Value::Object(m) = obj {
        walk_object("", m, Node::new(schema), &mut out);
    }
    out
}

fn walk_object(p: &str, m: &Map<String, Value>, node: Node<'_>, out: &mut Vec<FieldError>) {
    if let Additional::Schema(s) = node.additional() {
        for k in sorted_keys(m) {
            if let Some(v) = m.get(k) {
                walk(&path::key(p, k), v, Node::new(s), out);
            }
        }
    }
    if let Some(props) = node.properties() {
        for k in sorted_keys(m) {
            if let (Some(s), Some(v)) = (props.get(k.as_str()), m.get(k)) {
                walk(&path::child(p, k), v, Node::new(s), out);
            }
        }
    }
}

fn walk(p: &str, x: &Value, node: Node<'_>, out: &mut Vec<FieldError>) {
    match x {
        Value::Array(items) => walk_array(p, items, node, out),
        Value::Object(m) => walk_object(p, m, node, out),
        _ => {}
    }
}

fn walk_array(p: &str, items: &[Value], node: Node<'_>, out: &mut Vec<FieldError>) {
    match node.str("x-kubernetes-list-type") {
        Some("set") => {
            for i in duplicates(items) {
                out.push(format::duplicate(&path::index(p, i), &Bad::of(&items[i])));
            }
        }
        Some("map") => out.extend(check_map(p, items, node)),
        _ => {}
    }
    if let Some(s) = node.items() {
        for (i, v) in items.iter().enumerate() {
            walk(&path::index(p, i), v, Node::new(s), out);
        }
    }
}

/// Identity of an entry: scalars compare by value and Go type, compounds by their JSON.
#[derive(PartialEq)]
enum Ident {
    Scalar(Value),
    Compound(String),
    Unspecified,
}

fn ident(v: &Value) -> Ident {
    match v {
        Value::Object(_) | Value::Array(_) => Ident::Compound(go_json(v)),
        other => Ident::Scalar(other.clone()),
    }
}

/// Indices of the second occurrence of each duplicated identity.
fn dup_indices(ids: &[Ident]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let before = ids[..i].iter().filter(|x| *x == id).count();
        if before == 1 {
            out.push(i);
        }
    }
    out
}

fn duplicates(items: &[Value]) -> Vec<usize> {
    if items.len() <= 1 {
        return Vec::new();
    }
    let ids: Vec<Ident> = items.iter().map(ident).collect();
    dup_indices(&ids)
}

fn check_map(p: &str, items: &[Value], node: Node<'_>) -> Vec<FieldError> {
    for (i, x) in items.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            let msg = "must be an object for an array of list-type map";
            return vec![format::invalid(&path::index(p, i), &Bad::of(x), msg)];
        }
    }
    if items.len() <= 1 {
        return Vec::new();
    }
    let keys: Vec<&str> = node.list("x-kubernetes-list-map-keys").iter().filter_map(Value::as_str).collect();
    if let [key] = keys.as_slice() {
        let ids: Vec<Ident> = items
            .iter()
            .map(|x| match x.get(*key) {
                Some(v) => ident(v),
                None => Ident::Unspecified,
            })
            .collect();
        return dup_indices(&ids)
            .into_iter()
            .map(|i| {
                let mut shown = Map::new();
                if let Some(v) = items[i].get(*key) {
                    shown.insert((*key).to_string(), v.clone());
                }
                format::duplicate(&path::index(p, i), &Bad::Json(Value::Object(shown)))
            })
            .collect();
    }
    let key_maps: Vec<Value> = items
        .iter()
        .map(|x| {
            let mut km = Map::new();
            for k in &keys {
                if let Some(v) = x.get(*k) {
                    km.insert((*k).to_string(), v.clone());
                }
            }
            Value::Object(km)
        })
        .collect();
    let ids: Vec<Ident> = key_maps.iter().map(ident).collect();
    dup_indices(&ids)
        .into_iter()
        .map(|i| format::duplicate(&path::index(p, i), &Bad::Json(key_maps[i].clone())))
        .collect()
}
