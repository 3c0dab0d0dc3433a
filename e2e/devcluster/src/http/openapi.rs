//! OpenAPI v2 and v3 documents. kubectl reads v3 to learn that every resource accepts the
//! `fieldValidation` parameter (so it validates server-side) and to find the installed CRDs' schemas.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::resources::{Registry, ResourceType};

use super::status::ApiError;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Reverse-DNS schema name: `com.example.demo.v1.Widget`, `io.k8s.api.core.v1.Pod`.
fn schema_name(rt: &ResourceType, version: &str) -> String {
    if rt.group.is_empty() {
        return format!("io.k8s.api.core.v1.{}", rt.kind);
    }
    if rt.group.ends_with(".k8s.io") && !rt.custom {
        let short = rt.group.trim_end_matches(".k8s.io").replace('.', "");
        return format!("io.k8s.api.{short}.{version}.{}", rt.kind);
    }
    let mut parts: Vec<&str> = rt.group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{}", parts.join("."), rt.kind)
}

fn object_meta() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer", "format": "int64"},
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        }
    })
}

fn kind_schema(rt: &ResourceType, version: &str) -> Value {
    let gvk = json!([{"group": rt.group, "kind": rt.kind, "version": version}]);
    let base = rt.version(version).and_then(|v| v.schema.clone());
    let mut schema = match base {
        Some(s) => s,
        // Built-ins are stored free-form here; say so rather than invent a partial schema.
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if let Some(obj) = schema.as_object_mut() {
        let props = obj.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("apiVersion".into(), json!({"type": "string"}));
            p.insert("kind".into(), json!({"type": "string"}));
            p.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("#/components/schemas/{META}.ObjectMeta")}]}),
            );
        }
        obj.insert("x-kubernetes-group-version-kind".into(), gvk);
    }
    schema
}

fn operation(rt: &ResourceType, version: &str, action: &str, write: bool) -> Value {
    let mut params = vec![json!({"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}})];
    if write {
        params.push(json!({"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
        params
            .push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
    }
    if action == "patch" {
        params.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(rt, version))});
    json!({
        "operationId": format!("{action}{}", rt.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "kind": rt.kind, "version": version},
    })
}

/// The OpenAPI v3 document of one group/version.
pub fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Result<Value, ApiError> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(format!("{META}.ObjectMeta"), object_meta());
    let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let mut any = false;
    for rt in reg.in_group_version(group, version) {
        any = true;
        schemas.insert(schema_name(rt, version), kind_schema(rt, version));
        let base = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        let only_create = rt.verbs == ["create"];
        let mut collection = json!({"post": operation(rt, version, "post", true)});
        if !only_create {
            collection["get"] = operation(rt, version, "list", false);
            collection["delete"] = operation(rt, version, "deletecollection", false);
        }
        if only_create {
            // Create-only review kinds: a PATCH entry tells kubectl the server validates fields, so it
            // does not fall back to downloading the (protobuf-only) OpenAPI v2 document.
            collection["patch"] = operation(rt, version, "patch", true);
            paths.insert(base.clone(), collection);
            continue;
        }
        paths.insert(base.clone(), collection);
        let item = json!({
            "get": operation(rt, version, "get", false),
            "put": operation(rt, version, "put", true),
            "patch": operation(rt, version, "patch", true),
            "delete": operation(rt, version, "delete", false),
        });
        paths.insert(format!("{base}/{{name}}"), item);
        if rt.version(version).is_some_and(|v| v.status_subresource) {
            let status = json!({
                "get": operation(rt, version, "get", false),
                "put": operation(rt, version, "put", true),
                "patch": operation(rt, version, "patch", true),
            });
            paths.insert(format!("{base}/{{name}}/status"), status);
        }
    }
    if !any {
        return Err(ApiError::path_not_found());
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.36.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash(v: &Value) -> String {
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3`: the index of per-group-version documents, each with a content hash for caching.
pub fn v3_root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, vs) in reg.groups() {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let Ok(doc) = v3_group_version(reg, &g, &v) else { continue };
        let rel = if g.is_empty() { format!("api/{v}") } else { format!("apis/{g}/{v}") };
        paths.insert(rel.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{rel}?hash={}", hash(&doc))}));
    }
    json!({"paths": paths})
}

/// `/openapi/v2`: a Swagger 2.0 document with every kind's definition (for older clients).
pub fn v2(reg: &Registry) -> Value {
    let mut defs = Map::new();
    defs.insert(format!("{META}.ObjectMeta"), object_meta());
    for rt in &reg.types {
        for v in &rt.versions {
            let mut s = kind_schema(rt, &v.name);
            if let Some(p) = s.pointer_mut("/properties/metadata") {
                *p = json!({"$ref": format!("#/definitions/{META}.ObjectMeta")});
            }
            defs.insert(schema_name(rt, &v.name), s);
        }
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.36.0"}, "paths": {}, "definitions": defs})
}
