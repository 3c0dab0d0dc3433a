//! Validation of an object against a structural schema, mirroring kube-openapi's SchemaValidator
//! (validator order: type, allOf/anyOf/oneOf/not, string, format, number, array, enum, object) and
//! the apiextensions conversion of its errors into field errors.

use serde_json::Value;

use super::format::{self, Bad};
use super::node::{sorted_keys, Additional, Node};
use super::numeric::{self, Num};
use super::{embedded, formats, listtype, FieldError};

/// Validates `obj` against `schema`: OpenAPI value validation, then embedded-resource checks, then
/// `x-kubernetes-list-type` checks, in the order the real server reports them.
pub fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errs = Errs::default();
    check(obj, Node::new(schema), "", &mut errs);
    let mut out: Vec<FieldError> = errs.list.into_iter().map(|(_, e)| e).collect();
    out.extend(embedded::validate(obj, schema));
    out.extend(listtype::validate(obj, schema));
    out
}

/// Accumulated errors, de-duplicated by their OpenAPI message like kube-openapi's Result.
#[derive(Default)]
pub(crate) struct Errs {
    list: Vec<(String, FieldError)>,
}

impl Errs {
    fn add(&mut self, key: String, e: FieldError) {
        if !self.list.iter().any(|(k, _)| *k == key) {
            self.list.push((key, e));
        }
    }

    pub(crate) fn merge(&mut self, other: Errs) {
        for (k, e) in other.list {
            self.add(k, e);
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A plain (non-field) error: the server reports it at field `<nil>` with an empty value.
    pub(crate) fn plain(&mut self, msg: String) {
        let e = format::invalid("<nil>", &Bad::Str(String::new()), &msg);
        self.add(msg, e);
    }

    /// An OpenAPI error converted with `field.Invalid`.
    pub(crate) fn invalid(&mut self, path: &str, bad: Bad, msg: String) {
        let e = format::invalid(&field_of(path), &bad, &msg);
        self.add(msg, e);
    }

    fn type_invalid(&mut self, path: &str, bad: Bad, msg: String) {
        let e = format::type_invalid(&field_of(path), &bad, &msg);
        self.add(msg, e);
    }
}

/// The field path of an OpenAPI error name: leading dot trimmed; empty means no path at all.
fn field_of(name: &str) -> String {
    if name.is_empty() || name == "." {
        return "<nil>".to_string();
    }
    name.strip_prefix('.').unwrap_or(name).to_string()
}

fn type_name_of(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) if n.as_i64().is_some() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
        Value::Null => ("null", ""),
    }
}

/// Validates one value against one schema node (kube-openapi's `SchemaValidator.Validate`).
fn check(data: &Value, node: Node<'_>, path: &str, errs: &mut Errs) {
    if data.is_null() {
        check_type(data, node, path, errs);
        check_enum(data, node, path, errs);
        return;
    }
    if !node.types().is_empty() || !node.format().is_empty() {
        check_type(data, node, path, errs);
    }
    check_combinators(data, node, path, errs);
    match data {
        Value::String(s) => {
            check_string(s, node, path, errs);
            check_format(s, node, path, errs);
        }
        Value::Number(n) => numeric::check(Num::of(n), node, path, errs),
        Value::Array(items) => check_array(items, node, path, errs),
        _ => {}
    }
    check_enum(data, node, path, errs);
    if let Value::Object(m) = data {
        check_object(m, node, path, errs);
    }
}

fn check_type(data: &Value, node: Node<'_>, path: &str, errs: &mut Errs) {
    let types = node.types();
    let joined = types.join(",");
    if data.is_null() {
        if !types.is_empty() && !node.nullable() {
            let msg = format!("{path} in body must be of type {joined}: \"null\"");
            errs.type_invalid(path, Bad::Str("null".into()), msg);
        }
        return;
    }
    let (sch_type, fmt) = type_name_of(data);
    let want_format = node.format();
    let has = |t: &str| types.contains(&t);
    let is_float_int = sch_type == "number" && has("integer") && data.as_f64().is_some_and(numeric::is_json_integer);
    let is_int_float = sch_type == "integer" && has("number");
    let stringish = matches!(data, Value::String(_) | Value::Array(_));
    let format_ok = has(sch_type) || fmt == want_format || is_float_int || is_int_float;
    if !(stringish || want_format.is_empty() || format_ok) {
        let msg = format!("{path} in body must be of type {want_format}: {}", format::go_quote(fmt));
        errs.type_invalid(path, Bad::Str(fmt.into()), msg);
        return;
    }
    // A string format on a non-numeric type skips the type check (a kube-openapi quirk).
    let numeric = has("number") || has("integer");
    if stringish && !numeric && !want_format.is_empty() {
        return;
    }
    if !(has(sch_type) || is_float_int || is_int_float) {
        let msg = format!("{path} in body must be of type {joined}: {}", format::go_quote(sch_type));
        errs.type_invalid(path, Bad::Str(sch_type.into()), msg);
    }
}

fn check_string(s: &str, node: Node<'_>, path: &str, errs: &mut Errs) {
    let len = s.chars().count() as i64;
    // Only the first failing string rule is reported.
    if let Some(max) = node.i64("maxLength") {
        if len > max {
            let msg = format!("{path} in body should be at most {max} chars long");
            errs.add(msg, format::too_long(&field_of(path), max));
            return;
        }
    }
    if let Some(min) = node.i64("minLength") {
        if len < min {
            let msg = format!("{path} in body should be at least {min} chars long");
            errs.invalid(path, Bad::Str(s.into()), msg);
            return;
        }
    }
    if let Some(pattern) = node.str("pattern") {
        match pattern_matches(pattern, s) {
            Ok(true) => {}
            Ok(false) => {
                let msg = format!("{path} in body should match '{pattern}'");
                errs.invalid(path, Bad::Str(s.into()), msg);
            }
            Err(e) => {
                let msg = format!("{path} in body should match '{pattern}, but pattern is invalid: {e}'");
                errs.invalid(path, Bad::Str(s.into()), msg);
            }
        }
    }
}

fn pattern_matches(pattern: &str, s: &str) -> Result<bool, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(map) = cache.lock() {
        if let Some(re) = map.get(pattern) {
            return Ok(re.is_match(s));
        }
    }
    let re = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
    let hit = re.is_match(s);
    if let Ok(mut map) = cache.lock() {
        // Bound the cache: schemas have few patterns, but inputs are untrusted.
        if map.len() > 1024 {
            map.clear();
        }
        map.insert(pattern.to_string(), re);
    }
    Ok(hit)
}

fn check_format(s: &str, node: Node<'_>, path: &str, errs: &mut Errs) {
    let f = node.format();
    if f.is_empty() || !formats::is_supported(f) || formats::check(f, s) {
        return;
    }
    let msg = format!("{path} in body must be of type {f}: {}", format::go_quote(s));
    errs.type_invalid(path, Bad::Str(s.into()), msg);
}

fn check_array(items: &[Value], node: Node<'_>, path: &str, errs: &mut Errs) {
    if let Some(item_schema) = node.items() {
        for (i, v) in items.iter().enumerate() {
            check(v, Node::new(item_schema), &format!("{path}[{i}]"), errs);
        }
    }
    let size = items.len() as i64;
    if let Some(min) = node.i64("minItems") {
        if size < min {
            let msg = format!("{path} in body should have at least {min} items");
            errs.invalid(path, Bad::Int(size), msg);
        }
    }
    if let Some(max) = node.i64("maxItems") {
        if size > max {
            let msg = format!("{path} in body should have at most {max} items");
            errs.add(msg, format::too_many(&field_of(path), size, max));
        }
    }
    if node.flag("uniqueItems") {
        let dup = items.iter().enumerate().any(|(i, a)| items[..i].iter().any(|b| a == b));
        if dup {
            let msg = format!("{path} in body shouldn't contain duplicates");
            errs.invalid(path, Bad::Str(String::new()), msg);
        }
    }
}

/// Go's enum match: the value is converted to each enum member's type before comparing.
fn enum_matches(data: &Value, member: &Value) -> bool {
    match (data, member) {
        (Value::Number(d), Value::Number(m)) => match (Num::of(d), Num::of(m)) {
            (Num::Int(a), Num::Int(b)) => a == b,
            (Num::Float(a), Num::Int(b)) => a as i64 == b,
            (Num::Int(a), Num::Float(b)) => a as f64 == b,
            (Num::Float(a), Num::Float(b)) => a == b,
        },
        (Value::Null, _) => false,
        (d, m) => d == m,
    }
}

fn check_enum(data: &Value, node: Node<'_>, path: &str, errs: &mut Errs) {
    let members = node.list("enum");
    if members.is_empty() || members.iter().any(|m| enum_matches(data, m)) {
        return;
    }
    let values: Vec<String> = members
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            other => format::go_json(other),
        })
        .collect();
    let key = format!("{path} in body should be one of [{}]", values.join(" "));
    let e = format::not_supported(&field_of(path), &Bad::of(data), &values);
    errs.add(key, e);
}

fn check_object(m: &serde_json::Map<String, Value>, node: Node<'_>, path: &str, errs: &mut Errs) {
    let n = m.len() as i64;
    if let Some(min) = node.i64("minProperties") {
        if n < min {
            let msg = format!("{path} in body should have at least {min} properties");
            errs.invalid(path, Bad::Int(n), msg);
        }
    }
    if let Some(max) = node.i64("maxProperties") {
        if n > max {
            let msg = format!("{path} in body should have at most {max} properties");
            errs.add(msg, format::too_many(&field_of(path), n, max));
        }
    }
    let known = |k: &str| node.property(k).is_some();
    match node.additional() {
        Additional::Bool(false) => {
            for k in sorted_keys(m).into_iter().filter(|k| !known(k)) {
                let msg = format!("{path}.{k} in body is a forbidden property");
                errs.invalid(path, Bad::Str(k.clone()), msg);
            }
        }
        Additional::Schema(s) => {
            for k in sorted_keys(m).into_iter().filter(|k| !known(k)) {
                if let Some(v) = m.get(k) {
                    check(v, Node::new(s), &format!("{path}.{k}"), errs);
                }
            }
        }
        _ => {}
    }
    if let Some(props) = node.properties() {
        for name in sorted_keys(props) {
            if let (Some(v), Some(p)) = (m.get(name), props.get(name)) {
                let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                check(v, Node::new(p), &child, errs);
            }
        }
    }
    for r in node.list("required").iter().filter_map(Value::as_str) {
        if !m.contains_key(r) {
            let name = format!("{path}.{r}");
            let e = format::required(&field_of(&name), "");
            errs.add(format!("{name} in body is required"), e);
        }
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not`, each sub-schema validated at the same path.
fn check_combinators(data: &Value, node: Node<'_>, path: &str, errs: &mut Errs) {
    let run = |s: &Value| {
        let mut sub = Errs::default();
        check(data, Node::new(s), path, &mut sub);
        sub
    };
    let quoted = format::go_quote(path);
    let any_of = node.list("anyOf");
    if !any_of.is_empty() {
        let mut best: Option<Errs> = None;
        let mut ok = false;
        for s in any_of {
            let r = run(s);
            if r.is_empty() {
                ok = true;
                best = None;
                break;
            }
            // The real server keeps the failure with the most matched checks; the first one
            // is kept here.
            best.get_or_insert(r);
        }
        if !ok {
            errs.plain(format!("{quoted} must validate at least one schema (anyOf)"));
        }
        if let Some(b) = best {
            errs.merge(b);
        }
    }
    let one_of = node.list("oneOf");
    if !one_of.is_empty() {
        let mut best: Option<Errs> = None;
        let mut valid = 0;
        for s in one_of {
            let r = run(s);
            if r.is_empty() {
                valid += 1;
                best = None;
            } else if valid == 0 && best.is_none() {
                best = Some(r);
            }
        }
        if valid != 1 {
            let extra =
                if valid == 0 { "Found none valid".to_string() } else { format!("Found {valid} valid alternatives") };
            errs.plain(format!("{quoted} must validate one and only one schema (oneOf). {extra}"));
            if let Some(b) = best {
                errs.merge(b);
            }
        }
    }
    let all_of = node.list("allOf");
    if !all_of.is_empty() {
        let mut valid = 0;
        for s in all_of {
            let r = run(s);
            if r.is_empty() {
                valid += 1;
            }
            errs.merge(r);
        }
        if valid != all_of.len() {
            let extra = if valid == 0 { ". None validated" } else { "" };
            errs.plain(format!("{quoted} must validate all the schemas (allOf){extra}"));
        }
    }
    if let Some(not) = node.get("not") {
        if run(not).is_empty() {
            errs.plain(format!("{quoted} must not validate the schema (not)"));
        }
    }
}
