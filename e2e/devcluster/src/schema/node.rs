//! Read access to one node of an `openAPIV3Schema` (a JSON object), tolerant of malformed input.

use serde_json::{Map, Value};

/// What `additionalProperties` says about keys not listed in `properties`.
pub(crate) enum Additional<'a> {
    /// Not set: unknown keys are pruned.
    Absent,
    /// `true` or `false`: keys are kept (with nothing known below them); `false` also forbids them.
    Bool(bool),
    /// A schema every other key's value must follow.
    Schema(&'a Value),
}

/// A schema node; an absent or non-object schema behaves as the empty schema.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a>(pub(crate) Option<&'a Map<String, Value>>);

impl<'a> Node<'a> {
    pub(crate) fn new(schema: &'a Value) -> Self {
        Node(schema.as_object())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.and_then(|m| m.get(key))
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The declared `type`, or empty.
    pub(crate) fn type_name(&self) -> &'a str {
        self.str("type").unwrap_or("")
    }

    /// Types as the validator sees them: int-or-string means `integer,string`.
    pub(crate) fn types(&self) -> Vec<&'a str> {
        if self.flag("x-kubernetes-int-or-string") {
            return vec!["integer", "string"];
        }
        match self.type_name() {
            "" => Vec::new(),
            t => vec![t],
        }
    }

    pub(crate) fn nullable(&self) -> bool {
        self.flag("nullable")
    }

    pub(crate) fn preserve_unknown(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    pub(crate) fn embedded(&self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    pub(crate) fn default(&self) -> Option<&'a Value> {
        self.get("default")
    }

    pub(crate) fn properties(&self) -> Option<&'a Map<String, Value>> {
        self.get("properties").and_then(Value::as_object)
    }

    pub(crate) fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties().and_then(|p| p.get(name))
    }

    /// The single `items` schema (tuple forms are not structural and are ignored).
    pub(crate) fn items(&self) -> Option<&'a Value> {
        self.get("items").filter(|v| v.is_object())
    }

    pub(crate) fn additional(&self) -> Additional<'a> {
        match self.get("additionalProperties") {
            Some(Value::Bool(b)) => Additional::Bool(*b),
            Some(v @ Value::Object(_)) => Additional::Schema(v),
            _ => Additional::Absent,
        }
    }

    pub(crate) fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    pub(crate) fn i64(&self, key: &str) -> Option<i64> {
        let v = self.get(key)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    pub(crate) fn list(&self, key: &str) -> &'a [Value] {
        self.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `format` after the real server strips formats it does not support for the type.
    pub(crate) fn format(&self) -> &'a str {
        let f = self.str("format").unwrap_or("");
        if f.is_empty() {
            return f;
        }
        // int-or-string has two types, which the server treats like "no single type".
        let ty = if self.flag("x-kubernetes-int-or-string") { "" } else { self.type_name() };
        let keep = match ty {
            "" | "string" => super::formats::is_supported(f),
            "integer" => f == "int32" || f == "int64",
            "number" => f == "float" || f == "double",
            _ => false,
        };
        if keep {
            f
        } else {
            ""
        }
    }
}

/// Sorted keys of a JSON object, for a deterministic walk.
pub(crate) fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys
}
