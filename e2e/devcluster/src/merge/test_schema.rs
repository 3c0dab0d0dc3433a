//! The schema of the `widgets.mergetest.example.com` CRD the recorded real-server results in the
//! tests come from (map, set and atomic lists, atomic and granular maps, nested structs and a
//! preserve-unknown-fields object).

use super::hints::metadata_hints;
use serde_json::{json, Value};

/// The Widget CRD's openAPIV3Schema with the ObjectMeta hints merged in.
pub fn widget_hints() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": metadata_hints(),
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "image": {"type": "string"},
                    "items": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "items": {"type": "object", "required": ["port"],
                            "properties": {"port": {"type": "integer"},
                                "protocol": {"type": "string", "default": "TCP"}}}
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                        "additionalProperties": {"type": "string"}},
                    "config": {"type": "object", "additionalProperties": {"type": "string"}},
                    "nested": {"type": "object", "properties": {"a": {"type": "object",
                        "properties": {"b": {"type": "string"}, "c": {"type": "string"}}}}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "phase": {"type": "string"},
                    "conditions": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "required": ["type"],
                            "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}
                    }
                }
            }
        }
    })
}
