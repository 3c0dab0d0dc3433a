//! Checks that a CRD's `openAPIV3Schema` is structural, plus the common OpenAPI-schema rules the
//! real server applies when a CRD is created (list types, `uniqueItems`, ...). Covers the usual
//! mistakes, not every rule (defaults, CEL rules and metadata details are not checked).

use serde_json::Value;

use super::format::{self, Bad};
use super::node::{sorted_keys, Additional, Node};
use super::path;
use super::validate;
use super::FieldError;

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Checks `schema` (a version's `openAPIV3Schema`) and returns the errors the real server reports
/// on CRD create: the structural errors (sorted, as the server sorts them) followed by other
/// schema errors. `version_path` is where the schema sits, e.g. `spec.validation` (the server's
/// path when all versions share one schema) or `spec.versions[0].schema`; a trailing
/// `.openAPIV3Schema` is added unless present.
pub fn check_structural(schema: &Value, version_path: &str) -> Vec<FieldError> {
    let base = if version_path.ends_with("openAPIV3Schema") {
        version_path.to_string()
    } else {
        path::child(version_path, "openAPIV3Schema")
    };
    let mut structural = Vec::new();
    invariants(Node::new(schema), Level::Root, &base, &mut structural);
    structural.sort_by_key(|e: &FieldError| format!("{}: {}", e.field, e.message));
    if structural.is_empty() {
        // The server validates defaults only once the schema is structural.
        defaults(Node::new(schema), &base, &mut structural);
    }
    let mut other = Vec::new();
    openapi_rules(Node::new(schema), &base, &mut other);
    structural.extend(other);
    structural
}

fn type_bad(node: Node<'_>) -> Bad {
    Bad::Str(node.type_name().to_string())
}

fn invariants(node: Node<'_>, lvl: Level, p: &str, out: &mut Vec<FieldError>) {
    let ty = node.type_name();
    if ty == "array" && node.items().is_none() {
        out.push(format::required(&path::child(p, "items"), "must be specified"));
    }
    if let Some(items) = node.items() {
        invariants(Node::new(items), Level::Item, &path::child(p, "items"), out);
    }
    if let Some(props) = node.properties() {
        for k in sorted_keys(props) {
            if let Some(s) = props.get(k) {
                let kp = path::key(&path::child(p, "properties"), k);
                invariants(Node::new(s), Level::Field, &kp, out);
            }
        }
    }
    let additional = node.additional();
    if !matches!(additional, Additional::Absent) {
        if lvl == Level::Root {
            let f = path::child(p, "additionalProperties");
            out.push(format::forbidden(&f, "must not be used at the root"));
        }
        if let Additional::Schema(s) = additional {
            let ap = path::child(p, "additionalProperties");
            invariants(Node::new(s), Level::Field, &ap, out);
        }
    }
    let int_or_string = node.flag("x-kubernetes-int-or-string");
    if int_or_string && node.preserve_unknown() {
        let f = path::child(p, "x-kubernetes-preserve-unknown-fields");
        let msg = "must be false if x-kubernetes-int-or-string is true";
        out.push(format::invalid(&f, &Bad::Bool(true), msg));
    }
    if int_or_string && node.embedded() {
        let f = path::child(p, "x-kubernetes-embedded-resource");
        let msg = "must be false if x-kubernetes-int-or-string is true";
        out.push(format::invalid(&f, &Bad::Bool(true), msg));
    }
    value_validation(node, p, out);
    let type_path = path::child(p, "type");
    if node.embedded() && ty != "object" {
        let msg = "must be object if x-kubernetes-embedded-resource is true";
        if ty.is_empty() {
            out.push(format::required(&type_path, msg));
        } else {
            out.push(format::invalid(&type_path, &type_bad(node), msg));
        }
    } else if ty.is_empty() && !int_or_string && !node.preserve_unknown() {
        let msg = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(format::required(&type_path, msg));
    }
    if node.embedded() && !matches!(additional, Additional::Absent) {
        let f = path::child(p, "additionalProperties");
        let msg = "must not be used if x-kubernetes-embedded-resource is set";
        out.push(format::forbidden(&f, msg));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(format::invalid(&type_path, &type_bad(node), "must be object at the root"));
    }
    let check_meta = lvl == Level::Root || node.embedded();
    for meta in ["kind", "apiVersion"] {
        if let (true, Some(s)) = (check_meta, node.property(meta)) {
            let s = Node::new(s);
            if s.type_name() != "string" {
                let props = path::key(&path::child(p, "properties"), meta);
                let f = path::child(&props, "type");
                out.push(format::invalid(&f, &type_bad(s), "must be string"));
            }
        }
    }
    if let (true, Some(meta)) = (check_meta, node.property("metadata")) {
        let meta_node = Node::new(meta);
        let mp = path::key(&path::child(p, "properties"), "metadata");
        if meta_node.type_name() != "object" {
            let f = path::child(&mp, "type");
            out.push(format::invalid(&f, &type_bad(meta_node), "must be object"));
        }
        if lvl == Level::Root && !metadata_is_plain(meta) {
            let msg =
                "must not specify anything other than name and generateName, but metadata is implicitly specified";
            out.push(format::forbidden(&mp, msg));
        }
    }
    if node.embedded() && !node.preserve_unknown() && node.properties().is_none_or(|m| m.is_empty()) {
        let f = path::child(p, "properties");
        let msg =
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields";
        out.push(format::required(&f, msg));
    }
}

/// Each `default` must itself validate against its schema (errors are relative to `.default`).
fn defaults(node: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    if let (Some(d), Some(raw)) = (node.default(), node.0) {
        let schema = Value::Object(raw.clone());
        let at = path::child(p, "default");
        for mut e in validate::validate(d, &schema) {
            e.field = if e.field == "<nil>" { at.clone() } else { path::child(&at, &e.field) };
            out.push(e);
        }
    }
    if let Some(items) = node.items() {
        defaults(Node::new(items), &path::child(p, "items"), out);
    }
    if let Some(props) = node.properties() {
        for k in sorted_keys(props) {
            if let Some(s) = props.get(k) {
                defaults(Node::new(s), &path::key(&path::child(p, "properties"), k), out);
            }
        }
    }
    if let Additional::Schema(s) = node.additional() {
        defaults(Node::new(s), &path::child(p, "additionalProperties"), out);
    }
}

/// Root `metadata` may only restate `type` and the `name`/`generateName` properties.
fn metadata_is_plain(meta: &Value) -> bool {
    let Some(m) = meta.as_object() else {
        return true;
    };
    m.iter().all(|(k, v)| match k.as_str() {
        "type" => true,
        "properties" => v.as_object().is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

fn is_int_or_string_any_of(list: &[Value]) -> bool {
    list.len() == 2
        && list[0] == serde_json::json!({"type": "integer"})
        && list[1] == serde_json::json!({"type": "string"})
}

/// Rules for `anyOf`/`allOf`/`oneOf`/`not` branches, which may only carry value validations.
fn value_validation(node: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    let any_of = node.list("anyOf");
    if !is_int_or_string_any_of(any_of) {
        for (i, s) in any_of.iter().enumerate() {
            nested(Node::new(s), &path::index(&path::child(p, "anyOf"), i), out);
        }
    }
    for (i, s) in node.list("allOf").iter().enumerate() {
        let ip = path::index(&path::child(p, "allOf"), i);
        let sn = Node::new(s);
        if i == 0 && is_int_or_string_any_of(sn.list("anyOf")) {
            nested_generics(sn, &ip, out);
            continue;
        }
        nested(sn, &ip, out);
    }
    for (i, s) in node.list("oneOf").iter().enumerate() {
        nested(Node::new(s), &path::index(&path::child(p, "oneOf"), i), out);
    }
    if let Some(s) = node.get("not") {
        nested(Node::new(s), &path::child(p, "not"), out);
    }
}

fn nested(node: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    value_validation(node, p, out);
    if let Some(items) = node.items() {
        nested(Node::new(items), &path::child(p, "items"), out);
    }
    if let Some(props) = node.properties() {
        for k in sorted_keys(props) {
            if let Some(s) = props.get(k) {
                nested(Node::new(s), &path::key(&path::child(p, "properties"), k), out);
            }
        }
    }
    nested_generics(node, p, out);
}

fn nested_generics(node: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    let forbid = |out: &mut Vec<FieldError>, key: &str, msg: &str| {
        out.push(format::forbidden(&path::child(p, key), msg));
    };
    if !node.type_name().is_empty() {
        forbid(out, "type", "must be empty to be structural");
    }
    if node.get("additionalProperties").is_some() {
        forbid(out, "additionalProperties", "must be undefined to be structural");
    }
    if node.get("default").is_some() {
        forbid(out, "default", "must be undefined to be structural");
    }
    for (key, msg) in [("title", "must be empty to be structural"), ("description", "must be empty to be structural")] {
        if node.str(key).is_some_and(|s| !s.is_empty()) {
            forbid(out, key, msg);
        }
    }
    for key in [
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if node.flag(key) {
            forbid(out, key, "must be false to be structural");
        }
    }
    if !node.list("x-kubernetes-list-map-keys").is_empty() {
        forbid(out, "x-kubernetes-list-map-keys", "must be empty to be structural");
    }
    for key in ["x-kubernetes-list-type", "x-kubernetes-map-type"] {
        if node.get(key).is_some() {
            forbid(out, key, "must be undefined to be structural");
        }
    }
    if !node.list("x-kubernetes-validations").is_empty() {
        forbid(out, "x-kubernetes-validations", "must be empty to be structural");
    }
}

/// The non-structural OpenAPI rules, in the server's traversal order.
fn openapi_rules(node: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    let ty = node.type_name();
    if !ty.is_empty() && !TYPES.contains(&ty) {
        let values: Vec<String> = TYPES.iter().map(|s| s.to_string()).collect();
        out.push(format::not_supported(&path::child(p, "type"), &type_bad(node), &values));
    }
    if node.flag("uniqueItems") {
        let msg = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
        out.push(format::forbidden(&path::child(p, "uniqueItems"), msg));
    }
    let has_props = node.properties().is_some_and(|m| !m.is_empty());
    match node.additional() {
        Additional::Absent => {}
        a => {
            if has_props && !matches!(a, Additional::Bool(true)) {
                let msg = "additionalProperties and properties are mutual exclusive";
                out.push(format::forbidden(&path::child(p, "additionalProperties"), msg));
            }
            if let Additional::Schema(s) = a {
                openapi_rules(Node::new(s), &path::child(p, "additionalProperties"), out);
            }
        }
    }
    if let Some(props) = node.properties() {
        for k in sorted_keys(props) {
            if let Some(s) = props.get(k) {
                openapi_rules(Node::new(s), &path::key(&path::child(p, "properties"), k), out);
            }
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, s) in node.list(key).iter().enumerate() {
            openapi_rules(Node::new(s), &path::index(&path::child(p, key), i), out);
        }
    }
    if let Some(items) = node.items() {
        openapi_rules(Node::new(items), &path::child(p, "items"), out);
    }
    if node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        let f = path::child(p, "x-kubernetes-preserve-unknown-fields");
        out.push(format::invalid(&f, &Bad::Bool(false), "must be true or undefined"));
    }
    list_rules(node, p, out);
}

fn list_rules(node: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    let ty = node.type_name();
    let type_path = path::child(p, "type");
    if let Some(mt) = node.str("x-kubernetes-map-type") {
        if ty != "object" {
            let msg = "must be object if x-kubernetes-map-type is specified";
            if ty.is_empty() {
                out.push(format::required(&type_path, msg));
            } else {
                out.push(format::invalid(&type_path, &type_bad(node), msg));
            }
        }
        if mt != "atomic" && mt != "granular" {
            let f = path::child(p, "x-kubernetes-map-type");
            let values = vec!["atomic".to_string(), "granular".to_string()];
            out.push(format::not_supported(&f, &Bad::Str(mt.into()), &values));
        }
    }
    let list_type = node.str("x-kubernetes-list-type");
    let items = node.items().map(Node::new);
    if let Some(lt) = list_type {
        if ty != "array" {
            let msg = "must be array if x-kubernetes-list-type is specified";
            if ty.is_empty() {
                out.push(format::required(&type_path, msg));
            } else {
                out.push(format::invalid(&type_path, &type_bad(node), msg));
            }
        } else if let (Some(is), "set") = (items, lt) {
            set_item_rules(is, p, out);
        }
        if !["atomic", "set", "map"].contains(&lt) {
            let f = path::child(p, "x-kubernetes-list-type");
            let values: Vec<String> = ["atomic", "set", "map"].iter().map(|s| s.to_string()).collect();
            out.push(format::not_supported(&f, &Bad::Str(lt.into()), &values));
        }
    }
    let map_keys = node.list("x-kubernetes-list-map-keys");
    if !map_keys.is_empty() {
        let f = path::child(p, "x-kubernetes-list-type");
        let msg = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => out.push(format::required(&f, msg)),
            Some("map") => {}
            Some(lt) => out.push(format::invalid(&f, &Bad::Str(lt.into()), msg)),
        }
    }
    if list_type == Some("map") {
        if map_keys.is_empty() {
            let f = path::child(p, "x-kubernetes-list-map-keys");
            out.push(format::required(&f, "must not be empty if x-kubernetes-list-type is map"));
        }
        match items {
            None => {
                let msg = "must have a schema if x-kubernetes-list-type is map";
                out.push(format::required(&path::child(p, "items"), msg));
            }
            Some(is) if is.type_name() != "object" => {
                let f = path::child(&path::child(p, "items"), "type");
                let msg = "must be object if parent array's x-kubernetes-list-type is map";
                out.push(format::invalid(&f, &type_bad(is), msg));
            }
            Some(_) => {}
        }
    }
}

/// Items of a `set` must be atomic.
fn set_item_rules(is: Node<'_>, p: &str, out: &mut Vec<FieldError>) {
    let msg = "must be atomic as item of a list with x-kubernetes-list-type=set";
    let items_path = path::child(p, "items");
    match is.type_name() {
        "array" => {
            if let Some(lt) = is.str("x-kubernetes-list-type").filter(|lt| *lt != "atomic") {
                let f = path::child(&items_path, "x-kubernetes-list-type");
                out.push(format::invalid(&f, &Bad::Str(lt.into()), msg));
            }
        }
        "object" if is.str("x-kubernetes-map-type") != Some("atomic") => {
            // The server prints the item's list type here, which is unset: null.
            let bad = match is.str("x-kubernetes-list-type") {
                Some(lt) => Bad::Str(lt.into()),
                None => Bad::Json(Value::Null),
            };
            let f = path::child(&items_path, "x-kubernetes-map-type");
            out.push(format::invalid(&f, &bad, msg));
        }
        _ => {}
    }
}
