//! Navigation of the "type hints" schema (openAPIV3Schema JSON with the `x-kubernetes-*` list and
//! map annotations) that decides how lists and maps merge and which fields are declared.

use serde_json::{json, Value};

/// How the elements of a list are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// The list is one value, replaced as a whole (the default).
    Atomic,
    /// Scalar elements identified by their value (`x-kubernetes-list-type: set`).
    Set,
    /// Object elements identified by the listed key fields (`x-kubernetes-list-type: map`).
    Map(Vec<String>),
}

/// A position in the hints schema; `Untyped` where the schema says nothing (maps are granular,
/// lists atomic, every key is an undeclared field).
#[derive(Debug, Clone, Copy)]
pub enum Hint<'a> {
    /// A schema node.
    Node(&'a Value),
    /// No schema information.
    Untyped,
}

impl<'a> Hint<'a> {
    /// Wraps a schema node; anything but an object means "no information".
    pub fn new(schema: &'a Value) -> Hint<'a> {
        if schema.is_object() {
            Hint::Node(schema)
        } else {
            Hint::Untyped
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self {
            Hint::Node(v) => v.get(key),
            Hint::Untyped => None,
        }
    }

    /// The schema of map key `name`, and whether it is a declared property (declared struct fields
    /// are only tracked through their leaves; undeclared keys are tracked themselves).
    pub fn field(&self, name: &str) -> (Hint<'a>, bool) {
        if let Some(p) = self.get("properties").and_then(|p| p.get(name)) {
            return (Hint::new(p), true);
        }
        match self.get("additionalProperties") {
            Some(ap @ Value::Object(_)) => (Hint::new(ap), false),
            _ => (Hint::Untyped, false),
        }
    }

    /// True when `name` is a declared property of this node.
    pub fn declares(&self, name: &str) -> bool {
        self.get("properties").and_then(|p| p.get(name)).is_some()
    }

    /// The schema of list elements.
    pub fn items(&self) -> Hint<'a> {
        self.get("items").map_or(Hint::Untyped, Hint::new)
    }

    /// True for `x-kubernetes-map-type: atomic`.
    pub fn map_atomic(&self) -> bool {
        self.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
    }

    /// The list semantics; atomic where the schema says nothing.
    pub fn list_kind(&self) -> ListKind {
        match self.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListKind::Set,
            Some("map") => {
                let keys: Vec<String> = self
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    ListKind::Set
                } else {
                    ListKind::Map(keys)
                }
            }
            _ => ListKind::Atomic,
        }
    }

    /// The schema default of key field `name` of this list's elements (used when an element omits it).
    pub fn key_default(&self, name: &str) -> Option<&'a Value> {
        self.items().get("properties").and_then(|p| p.get(name)).and_then(|p| p.get("default"))
    }

    /// Strategic-merge-patch behaviour of a list: `Some(merge key)` to merge (empty key for lists of
    /// scalars), `None` to replace. An explicit `x-kubernetes-patch-strategy` wins; otherwise map
    /// lists merge on their first key and sets merge by value.
    pub fn patch_merge(&self) -> Option<String> {
        let explicit_key = self.get("x-kubernetes-patch-merge-key").and_then(Value::as_str).map(str::to_string);
        if let Some(strategy) = self.get("x-kubernetes-patch-strategy").and_then(Value::as_str) {
            if !strategy.split(',').any(|s| s.trim() == "merge") {
                return None;
            }
            return Some(explicit_key.unwrap_or_default());
        }
        match self.list_kind() {
            ListKind::Atomic => None,
            ListKind::Set => Some(String::new()),
            ListKind::Map(keys) => Some(explicit_key.unwrap_or_else(|| keys[0].clone())),
        }
    }

    /// True when a strategic merge patch replaces this map instead of merging it.
    pub fn patch_replace_map(&self) -> bool {
        self.get("x-kubernetes-patch-strategy").and_then(Value::as_str) == Some("replace")
    }
}

/// Type hints for ObjectMeta, for the caller to merge into every schema's `metadata`: labels and
/// annotations are granular string maps, finalizers a set, ownerReferences a map keyed by uid,
/// managedFields atomic, the rest declared scalars.
pub fn metadata_hints() -> Value {
    let string = json!({"type": "string"});
    json!({
        "type": "object",
        "properties": {
            "name": string,
            "generateName": string,
            "namespace": string,
            "selfLink": string,
            "uid": string,
            "resourceVersion": string,
            "generation": {"type": "integer"},
            "creationTimestamp": string,
            "deletionTimestamp": string,
            "deletionGracePeriodSeconds": {"type": "integer"},
            "labels": {"type": "object", "additionalProperties": string},
            "annotations": {"type": "object", "additionalProperties": string},
            "finalizers": {
                "type": "array",
                "items": string,
                "x-kubernetes-list-type": "set",
                "x-kubernetes-patch-strategy": "merge"
            },
            "ownerReferences": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["uid"],
                "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-patch-merge-key": "uid",
                "items": {
                    "type": "object",
                    "required": ["apiVersion", "kind", "name", "uid"],
                    "properties": {
                        "apiVersion": string,
                        "kind": string,
                        "name": string,
                        "uid": string,
                        "controller": {"type": "boolean"},
                        "blockOwnerDeletion": {"type": "boolean"}
                    }
                }
            },
            "managedFields": {
                "type": "array",
                "x-kubernetes-list-type": "atomic",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_and_map_annotations() {
        let meta = metadata_hints();
        let h = Hint::new(&meta);
        assert_eq!(h.field("finalizers").0.list_kind(), ListKind::Set);
        assert_eq!(h.field("ownerReferences").0.list_kind(), ListKind::Map(vec!["uid".into()]));
        let (labels, declared) = h.field("labels");
        assert!(declared);
        let (label, declared) = labels.field("app");
        assert!(!declared);
        assert_eq!(label.list_kind(), ListKind::Atomic);
        assert_eq!(h.field("nope").0.list_kind(), ListKind::Atomic);
        assert_eq!(h.field("finalizers").0.patch_merge(), Some(String::new()));
        assert_eq!(h.field("ownerReferences").0.patch_merge(), Some("uid".to_string()));
        assert_eq!(h.field("managedFields").0.patch_merge(), None);
    }

    #[test]
    fn key_defaults_come_from_item_properties() {
        let s = json!({"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["port","protocol"],
            "items":{"properties":{"port":{"type":"integer"},"protocol":{"type":"string","default":"TCP"}}}});
        assert_eq!(Hint::new(&s).key_default("protocol"), Some(&json!("TCP")));
        assert_eq!(Hint::new(&s).key_default("port"), None);
    }
}
