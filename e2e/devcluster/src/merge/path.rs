//! Path elements of a field path (`f:name`, `k:{...}`, `v:...`, `i:N`), their total order and their
//! two spellings: the FieldsV1 key and the human form used in conflict messages (`.spec.replicas`,
//! `[name="x"]`, `[="a"]`).

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// One step of a field path.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of a map or struct: `f:<name>`.
    Field(String),
    /// An element of a map-typed list, by its key fields (sorted by name): `k:{"name":"x"}`.
    Key(Vec<(String, Value)>),
    /// An element of a set-typed list, by its value: `v:"a"`.
    Value(Value),
    /// An element of a list by position: `i:3` (only read from foreign FieldsV1, never produced).
    Index(usize),
}

impl PathElement {
    /// The FieldsV1 key for this element (`f:name`, `k:{"name":"x"}`, `v:"a"`, `i:0`).
    pub fn to_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(name.clone()).to_string());
                    out.push(':');
                    out.push_str(&value.to_string());
                }
                out.push('}');
                out
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key; key fields are re-sorted so equal keys compare equal.
    pub fn from_key(key: &str) -> Result<PathElement, String> {
        let (kind, rest) = key.split_once(':').ok_or_else(|| format!("missing colon: {key}"))?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "v" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|e| format!("invalid value element {key}: {e}")),
            "k" => {
                let map: Map<String, Value> =
                    serde_json::from_str(rest).map_err(|e| format!("invalid key element {key}: {e}"))?;
                Ok(PathElement::key(map.into_iter().collect()))
            }
            "i" => rest.parse().map(PathElement::Index).map_err(|e| format!("invalid index element {key}: {e}")),
            _ => Err(format!("unknown path element type: {key}")),
        }
    }

    /// A key element with its fields put in canonical (name) order.
    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| compare_values(&a.1, &b.1)));
        PathElement::Key(fields)
    }

    /// The element as printed in conflict messages: `.name`, `[name="x",port=80]`, `[="a"]`, `[3]`.
    pub fn display(&self) -> String {
        match self {
            PathElement::Field(name) => format!(".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> =
                    fields.iter().map(|(name, value)| format!("{name}={}", value_to_display(value))).collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(value) => format!("[={}]", value_to_display(value)),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

/// Joins path elements the way conflict causes spell a field: `.spec.items[name="x"].value`.
pub fn path_to_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

// Go's `%v`/`%q` rendering of a value, as the real server prints keys in messages.
fn value_to_display(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_display).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={}", value_to_display(v))).collect(),
        other => other.to_string(),
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    // Fields, then keys, then values, then indexes: the order FieldsV1 is written in.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_field_lists(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn compare_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let c = x.0.cmp(&y.0).then_with(|| compare_values(&x.1, &y.1));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// A total order on JSON values: numbers, strings, booleans, lists, maps, null (as the real server
/// orders set and key elements). Numbers compare by value, so `1` equals `1.0`.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (fx, fy) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                fx.partial_cmp(&fy).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for (p, q) in xs.iter().zip(ys.iter()) {
                let c = p.0.cmp(q.0).then_with(|| compare_values(p.1, q.1));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Deep equality of JSON values where numbers compare by value (`1 == 1.0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_and_sort_fields() {
        let pe = PathElement::from_key(r#"k:{"protocol":"TCP","port":80}"#).unwrap();
        assert_eq!(pe.to_key(), r#"k:{"port":80,"protocol":"TCP"}"#);
        assert_eq!(pe.display(), r#"[port=80,protocol="TCP"]"#);
        let v = PathElement::from_key(r#"v:"x/y""#).unwrap();
        assert_eq!(v.to_key(), r#"v:"x/y""#);
        assert_eq!(v.display(), r#"[="x/y"]"#);
        assert_eq!(PathElement::from_key("i:3").unwrap().display(), "[3]");
        assert!(PathElement::from_key("q:1").is_err());
    }

    #[test]
    fn order_is_fields_keys_values_indexes() {
        let mut items = [
            PathElement::Index(0),
            PathElement::Value(json!("a")),
            PathElement::key(vec![("name".into(), json!("x"))]),
            PathElement::Field("z".into()),
            PathElement::Field("a".into()),
        ];
        items.sort();
        let keys: Vec<String> = items.iter().map(PathElement::to_key).collect();
        assert_eq!(keys, ["f:a", "f:z", r#"k:{"name":"x"}"#, r#"v:"a""#, "i:0"]);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(values_equal(&json!(1), &json!(1.0)));
        assert_eq!(compare_values(&json!(9), &json!(10)), Ordering::Less);
        assert_eq!(compare_values(&json!(1), &json!("1")), Ordering::Less);
    }
}
