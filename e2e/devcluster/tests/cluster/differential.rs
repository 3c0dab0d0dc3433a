//! The differential suite: the same custom-resource scenarios run against the dev cluster and the
//! real apiextensions-apiserver, and what a client observes (status codes, reasons, messages, the
//! fields that matter) must be identical. Timestamps, uids and resourceVersion values are ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use crate::common::{Dev, Reference};
use futures::{AsyncBufReadExt, StreamExt};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

const NS_PATH: &str = "/apis/diff.ephemera.dev/v1/namespaces/default/things";
const CLUSTER_PATH: &str = "/apis/diff.ephemera.dev/v1/clusterthings";

const CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.diff.ephemera.dev}
spec:
  group: diff.ephemera.dev
  scope: Namespaced
  names: {plural: things, singular: thing, kind: Thing, shortNames: [th], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Mode, type: string, jsonPath: .spec.mode, priority: 1}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              mode: {type: string, enum: [fast, safe], default: safe}
              label: {type: string, maxLength: 5, pattern: '^[a-z]+$'}
              tags: {type: array, maxItems: 3, x-kubernetes-list-type: set, items: {type: string}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer, default: 80}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              phase: {type: string}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterthings.diff.ephemera.dev}
spec:
  group: diff.ephemera.dev
  scope: Cluster
  names: {plural: clusterthings, singular: clusterthing, kind: ClusterThing}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

struct Resp {
    code: u16,
    warnings: Vec<String>,
    body: Value,
}

async fn call(c: &Client, method: &str, path: &str, content_type: &str, accept: &str, body: Option<String>) -> Resp {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(Body::from(body.unwrap_or_default().into_bytes()))
        .unwrap();
    let resp = c.send(req).await.expect("request sent");
    let code = resp.status().as_u16();
    let warnings = resp.headers().get_all("warning").iter().filter_map(|v| v.to_str().ok().map(String::from)).collect();
    let bytes = resp.into_body().collect_bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Resp { code, warnings, body }
}

async fn req(c: &Client, method: &str, path: &str, body: Value) -> Resp {
    let ct = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
    let b = if body.is_null() { None } else { Some(body.to_string()) };
    call(c, method, path, ct, "application/json", b).await
}

/// Removes what legitimately differs between servers and runs.
/// A PATCH with the given patch content type.
async fn patch_as(c: &Client, path: &str, content_type: &str, body: impl Into<String>) -> Resp {
    call(c, "PATCH", path, content_type, "application/json", Some(body.into())).await
}

fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    scrub(&mut v);
    v
}

fn scrub(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "time",
                "lastTransitionTime",
                "selfLink",
                "continue",
            ] {
                if let Some(x) = m.get_mut(k) {
                    *x = json!("<scrubbed>");
                }
            }
            m.values_mut().for_each(scrub);
        }
        Value::Array(a) => a.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// A failure as a client sees it: code, reason, message and the set of causes (order-insensitive:
/// the real server's order depends on Go map iteration).
fn failure(r: &Resp) -> Value {
    let mut causes: Vec<Value> =
        r.body.pointer("/details/causes").and_then(Value::as_array).cloned().unwrap_or_default();
    causes.sort_by_key(|c| c.to_string());
    let message = r.body["message"].as_str().unwrap_or("");
    // Multi-error messages list causes in map order on the real server: compare them as a set.
    let message = match (message.find(": ["), message.ends_with(']')) {
        (Some(i), true) => {
            let mut parts: Vec<&str> = message[i + 3..message.len() - 1].split(", ").collect();
            parts.sort();
            format!("{}: [{}]", &message[..i], parts.join(", "))
        }
        _ => message.to_string(),
    };
    json!({"code": r.code, "reason": r.body["reason"], "message": message, "causes": causes})
}

fn object(r: &Resp) -> Value {
    json!({"code": r.code, "object": normalize(&r.body), "warnings": r.warnings})
}

fn thing(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Thing", "metadata": {"name": name}, "spec": spec})
}

/// Runs every scenario and returns labelled observations.
async fn scenarios(c: &Client) -> Vec<(String, Value)> {
    let mut obs: Vec<(String, Value)> = Vec::new();
    let mut see = |label: &str, v: Value| obs.push((label.to_string(), v));

    // Install both CRDs with server-side apply and wait until their resources are served.
    for doc in CRDS.split("\n---\n") {
        let crd: Value = serde_saphyr::from_str(doc).unwrap();
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        let r = patch_as(
            c,
            &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}?fieldManager=diff&force=true"),
            "application/apply-patch+yaml",
            doc.to_string(),
        )
        .await;
        see(&format!("install {name}"), json!({"code": r.code, "status": normalize(&r.body["status"])}));
    }
    for path in [NS_PATH, CLUSTER_PATH] {
        for _ in 0..100 {
            if req(c, "GET", path, Value::Null).await.code == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let crd =
        req(c, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.diff.ephemera.dev", Value::Null)
            .await;
    see("crd status after establishing", normalize(&crd.body["status"]));
    let disc = req(c, "GET", "/apis/diff.ephemera.dev/v1", Value::Null).await;
    let mut resources: Vec<Value> = disc.body["resources"].as_array().cloned().unwrap_or_default();
    for r in &mut resources {
        if let Some(m) = r.as_object_mut() {
            m.remove("storageVersionHash");
        }
        if let Some(verbs) = r.get_mut("verbs").and_then(Value::as_array_mut) {
            verbs.sort_by_key(|v| v.to_string());
        }
    }
    resources.sort_by_key(|r| r["name"].to_string());
    see("discovery", json!(resources));
    let group = req(c, "GET", "/apis/diff.ephemera.dev", Value::Null).await;
    see("group", normalize(&group.body));

    // Create: defaulting, duplicates, validation, unknown fields, names.
    let r = req(c, "POST", NS_PATH, thing("a", json!({"size": 3, "ports": [{"name": "http"}]}))).await;
    see("create a", object(&r));
    let r = req(c, "POST", NS_PATH, thing("a", json!({"size": 3}))).await;
    see("create duplicate", failure(&r));
    let r = req(
        c,
        "POST",
        NS_PATH,
        thing("bad", json!({"size": 30, "mode": "slow", "label": "TOOLONG", "tags": ["x", "x"]})),
    )
    .await;
    see("create invalid", failure(&r));
    let r = req(c, "POST", NS_PATH, thing("bad2", json!({"label": 5}))).await;
    see("create wrong type and missing required", failure(&r));
    let r = req(c, "POST", NS_PATH, thing("bad3", json!({"size": 2, "ports": [{"name": "a"}, {"name": "a"}]}))).await;
    see("create duplicate map key", failure(&r));
    let r = req(
        c,
        "POST",
        &format!("{NS_PATH}?fieldValidation=Strict"),
        thing("u1", json!({"size": 1, "zzz": 1, "aaa": {"b": 1}})),
    )
    .await;
    see("create unknown strict", failure(&r));
    let r = req(c, "POST", NS_PATH, thing("u2", json!({"size": 1, "zzz": 1, "free": {"anything": [1, 2]}}))).await;
    see("create unknown warn", object(&r));
    let r =
        req(c, "POST", &format!("{NS_PATH}?fieldValidation=Ignore"), thing("u3", json!({"size": 1, "zzz": 1}))).await;
    see("create unknown ignore", object(&r));
    let mut labelled = thing("lbl", json!({"size": 1}));
    labelled["metadata"]["labels"] = json!({"bad key!": "v", "ok": "bad value!", "example.com/fine": "yes"});
    let r = req(c, "POST", NS_PATH, labelled).await;
    see("create with invalid labels", failure(&r));
    let mut annotated = thing("ann", json!({"size": 1}));
    annotated["metadata"]["annotations"] = json!({"big": "x".repeat(270_000)});
    let r = req(c, "POST", NS_PATH, annotated).await;
    see("create with oversized annotations", failure(&r));
    let mut meta_unknown = thing("mu", json!({"size": 1, "zzz": 1}));
    meta_unknown["metadata"]["bogus"] = json!(1);
    let r = req(c, "POST", &format!("{NS_PATH}?fieldValidation=Strict"), meta_unknown.clone()).await;
    see("create unknown metadata strict", failure(&r));
    meta_unknown["metadata"]["name"] = json!("mu2");
    let r = req(c, "POST", NS_PATH, meta_unknown).await;
    see("create unknown metadata warn", object(&r));
    let r = req(c, "POST", NS_PATH, thing("Bad_Name", json!({"size": 1}))).await;
    see("create bad name", failure(&r));
    let r = req(
        c,
        "POST",
        NS_PATH,
        json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Thing", "metadata": {}, "spec": {"size": 1}}),
    )
    .await;
    see("create without name", failure(&r));
    let r = req(c, "POST", NS_PATH, json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Thing", "metadata": {"generateName": "gen-"}, "spec": {"size": 1}})).await;
    see(
        "generateName",
        json!({"code": r.code, "prefix": r.body["metadata"]["name"].as_str().map(|n| (&n[..4], n.len()))}),
    );
    let r = req(
        c,
        "POST",
        NS_PATH,
        json!({"apiVersion": "diff.ephemera.dev/v2", "kind": "Thing", "metadata": {"name": "v2"}, "spec": {"size": 1}}),
    )
    .await;
    see("create wrong apiVersion", failure(&r));
    let r = req(c, "POST", NS_PATH, json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Thing", "metadata": {"name": "o", "namespace": "other"}, "spec": {"size": 1}})).await;
    see("create namespace mismatch", failure(&r));
    let r = req(c, "POST", &format!("{NS_PATH}?dryRun=All"), thing("dry", json!({"size": 1}))).await;
    see("dry-run create", json!({"code": r.code, "spec": r.body["spec"]}));
    see("dry-run not stored", json!(req(c, "GET", &format!("{NS_PATH}/dry"), Value::Null).await.code));
    let r = req(c, "POST", CLUSTER_PATH, json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "ClusterThing", "metadata": {"name": "ct"}, "x": {"y": 1}})).await;
    see("create cluster-scoped", object(&r));

    // Status subresource and generation.
    let r = req(c, "PATCH", &format!("{NS_PATH}/a"), json!({"status": {"phase": "Main"}, "spec": {"size": 4}})).await;
    see("patch main with status", object(&r));
    let r = req(c, "PATCH", &format!("{NS_PATH}/a/status"), json!({"status": {"phase": "Ready"}, "spec": {"size": 9}}))
        .await;
    see("patch status with spec", object(&r));
    let r = req(c, "PATCH", &format!("{NS_PATH}/a"), json!({"metadata": {"labels": {"k": "v"}}})).await;
    see("patch labels only (no generation bump)", object(&r));

    // Update: stale resourceVersion, missing resourceVersion, immutable fields.
    let current = req(c, "GET", &format!("{NS_PATH}/a"), Value::Null).await.body;
    let mut stale = current.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let r = req(c, "PUT", &format!("{NS_PATH}/a"), stale).await;
    see("update stale", failure(&r));
    let mut no_rv = current.clone();
    no_rv["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let r = req(c, "PUT", &format!("{NS_PATH}/a"), no_rv).await;
    see("update without resourceVersion", failure(&r));
    let mut good = current.clone();
    good["spec"]["size"] = json!(5);
    let r = req(c, "PUT", &format!("{NS_PATH}/a"), good).await;
    see("update", object(&r));
    let r = req(c, "PUT", &format!("{NS_PATH}/missing"), thing("missing", json!({"size": 1}))).await;
    see("update missing", failure(&r));
    let r = req(c, "PUT", &format!("{NS_PATH}/a"), thing("other", json!({"size": 1}))).await;
    see("update name mismatch", failure(&r));

    // Patch types.
    let jp = json!([{"op": "replace", "path": "/spec/size", "value": 6}, {"op": "add", "path": "/spec/tags", "value": ["p"]}]);
    let r = patch_as(c, &format!("{NS_PATH}/a"), "application/json-patch+json", jp.to_string()).await;
    see("json patch", object(&r));
    let jp = json!([{"op": "test", "path": "/spec/size", "value": 99}]);
    let r = patch_as(c, &format!("{NS_PATH}/a"), "application/json-patch+json", jp.to_string()).await;
    see("json patch failed test", json!({"code": r.code, "reason": r.body["reason"]}));
    // kube-runtime's finalizer helper: `test` for null on an absent field, then add the list.
    let jp = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": []}, {"op": "add", "path": "/metadata/finalizers/-", "value": "diff.ephemera.dev/x"}]);
    let r = patch_as(c, &format!("{NS_PATH}/u3"), "application/json-patch+json", jp.to_string()).await;
    see(
        "json patch test null on absent field",
        json!({"code": r.code, "finalizers": r.body["metadata"]["finalizers"]}),
    );
    let jp = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["diff.ephemera.dev/x"]}, {"op": "remove", "path": "/metadata/finalizers/0"}]);
    let r = patch_as(c, &format!("{NS_PATH}/u3"), "application/json-patch+json", jp.to_string()).await;
    see("json patch remove last finalizer", json!({"code": r.code, "finalizers": r.body["metadata"]["finalizers"]}));
    let r = patch_as(c, &format!("{NS_PATH}/a"), "application/strategic-merge-patch+json", "{}").await;
    see("strategic merge on a CR", json!({"code": r.code, "reason": r.body["reason"]}));
    let r = req(c, "PATCH", &format!("{NS_PATH}/nope"), json!({"spec": {"size": 1}})).await;
    see("patch missing", failure(&r));
    let r = req(c, "PATCH", &format!("{NS_PATH}/a"), json!({"spec": {"size": 0}})).await;
    see("patch invalid", failure(&r));

    // Server-side apply: managers, conflicts, force, removal of fields no longer applied.
    let apply = |mgr: &str, force: bool, spec: Value| {
        let body =
            json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Thing", "metadata": {"name": "s"}, "spec": spec})
                .to_string();
        let path = format!("{NS_PATH}/s?fieldManager={mgr}{}", if force { "&force=true" } else { "" });
        async move { patch_as(c, &path, "application/apply-patch+yaml", body).await }
    };
    let managed = |r: &Resp| {
        let mut mf: Vec<Value> = r.body["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        mf.sort_by_key(|m| m["manager"].to_string());
        json!({"code": r.code, "spec": r.body["spec"], "managedFields": normalize(&json!(mf))})
    };
    let r = apply("alice", false, json!({"size": 2, "tags": ["a"], "ports": [{"name": "web", "port": 8080}]})).await;
    see("apply create", managed(&r));
    let r = apply("bob", false, json!({"size": 3, "tags": ["b"]})).await;
    see("apply conflict", failure(&r));
    let r = apply("bob", false, json!({"size": 2, "tags": ["b"], "ports": [{"name": "db", "port": 5432}]})).await;
    see("apply shared value no conflict", managed(&r));
    let r = apply("bob", true, json!({"size": 4, "tags": ["b"]})).await;
    see("apply force", managed(&r));
    let r = apply("alice", false, json!({"ports": [{"name": "web", "port": 8080}]})).await;
    see("apply drops fields", managed(&r));
    let r = req(c, "PATCH", &format!("{NS_PATH}/s?fieldManager=carol"), json!({"spec": {"mode": "fast"}})).await;
    see("update manager after apply", managed(&r));
    let r = patch_as(c, &format!("{NS_PATH}/s"), "application/apply-patch+yaml", "{}").await;
    see("apply without fieldManager", failure(&r));
    let r = patch_as(c, &format!("{NS_PATH}/s/status?fieldManager=st"), "application/apply-patch+yaml", json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Thing", "metadata": {"name": "s"}, "status": {"phase": "Up"}}).to_string()).await;
    see("apply status", managed(&r));

    // Lists: table output, paging, selectors.
    for i in 0..5 {
        let mut t = thing(&format!("p{i}"), json!({"size": i + 1}));
        t["metadata"]["labels"] = json!({"tier": if i < 2 { "front" } else { "back" }});
        req(c, "POST", NS_PATH, t).await;
    }
    let table = call(
        c,
        "GET",
        &format!("{NS_PATH}?labelSelector=tier"),
        "application/json",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        None,
    )
    .await;
    let cols: Vec<Value> = table.body["columnDefinitions"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Value> = table.body["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| json!({"cells": r["cells"], "kind": r["object"]["kind"]}))
        .collect();
    see("table", json!({"kind": table.body["kind"], "columns": cols, "rows": rows}));
    let single = call(
        c,
        "GET",
        &format!("{NS_PATH}/p1"),
        "application/json",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        None,
    )
    .await;
    see(
        "table single",
        json!({"rows": single.body["rows"].as_array().map(|r| r.len()), "cells": single.body["rows"][0]["cells"]}),
    );
    let mut names = Vec::new();
    let mut cont = String::new();
    let mut pages = Vec::new();
    loop {
        let path = format!(
            "{NS_PATH}?labelSelector=tier&limit=2{}",
            if cont.is_empty() { String::new() } else { format!("&continue={cont}") }
        );
        let page = req(c, "GET", &path, Value::Null).await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        names.extend(items.iter().map(|i| i["metadata"]["name"].clone()));
        pages.push(json!({"items": items.len(), "remaining": page.body["metadata"]["remainingItemCount"], "kind": page.body["kind"]}));
        cont = page.body["metadata"]["continue"].as_str().unwrap_or("").to_string();
        if cont.is_empty() || pages.len() > 5 {
            break;
        }
    }
    see("paging", json!({"pages": pages, "names": names}));
    let unpaged = req(c, "GET", &format!("{NS_PATH}?limit=2"), Value::Null).await;
    see(
        "paging without selector",
        json!({"items": unpaged.body["items"].as_array().map(Vec::len), "remaining": unpaged.body["metadata"]["remainingItemCount"]}),
    );
    for sel in ["tier=front", "tier!=front", "tier in (back,front)", "tier notin (back)", "!tier", "tier,tier=back"] {
        let r = req(c, "GET", &format!("{NS_PATH}?labelSelector={}", urlencode(sel)), Value::Null).await;
        let mut names: Vec<String> = r.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .map(|n| if n.starts_with("gen-") { "gen-*".to_string() } else { n.to_string() })
            .collect();
        names.sort();
        see(&format!("labelSelector {sel}"), json!(names));
    }
    let r = req(c, "GET", &format!("{NS_PATH}?fieldSelector=metadata.name%3Dp3"), Value::Null).await;
    see(
        "fieldSelector name",
        json!(r.body["items"].as_array().map(|a| a.iter().map(|i| i["metadata"]["name"].clone()).collect::<Vec<_>>())),
    );
    let r = req(c, "GET", &format!("{NS_PATH}?fieldSelector=spec.size%3D1"), Value::Null).await;
    see("fieldSelector unsupported", failure(&r));
    let r = req(c, "GET", &format!("{NS_PATH}/nope"), Value::Null).await;
    see("get missing", failure(&r));
    let r = req(c, "GET", "/apis/diff.ephemera.dev/v1/namespaces/default/nothings", Value::Null).await;
    see("unknown resource", json!({"code": r.code, "reason": r.body["reason"]}));

    // Watch from a resourceVersion: exactly the later changes, in order.
    let from = req(c, "GET", NS_PATH, Value::Null).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    req(c, "PATCH", &format!("{NS_PATH}/p0"), json!({"spec": {"size": 9}})).await;
    req(c, "DELETE", &format!("{NS_PATH}/p1"), Value::Null).await;
    req(c, "POST", NS_PATH, thing("w1", json!({"size": 1}))).await;
    req(c, "PATCH", &format!("{NS_PATH}/w1/status"), json!({"status": {"phase": "x"}})).await;
    see(
        "watch from version",
        json!(watch_events(c, &format!("{NS_PATH}?watch=true&resourceVersion={from}&timeoutSeconds=2"), 4).await),
    );
    see(
        "watch with selector",
        json!(
            watch_events(
                c,
                &format!("{NS_PATH}?watch=true&resourceVersion={from}&labelSelector=tier%3Dfront&timeoutSeconds=2"),
                2
            )
            .await
        ),
    );
    see(
        "watch initial state with bookmark",
        json!(
            watch_events(
                c,
                &format!("{NS_PATH}?watch=true&allowWatchBookmarks=true&labelSelector=tier%3Dback&timeoutSeconds=2"),
                4
            )
            .await
        ),
    );

    // Finalizers and deletion.
    let mut f = thing("fin", json!({"size": 1}));
    f["metadata"]["finalizers"] = json!(["diff.ephemera.dev/hold"]);
    req(c, "POST", NS_PATH, f).await;
    let r = req(c, "DELETE", &format!("{NS_PATH}/fin"), Value::Null).await;
    see(
        "delete with finalizer",
        json!({"code": r.code, "kind": r.body["kind"], "marked": r.body["metadata"]["deletionTimestamp"].is_string(), "finalizers": r.body["metadata"]["finalizers"]}),
    );
    let r = req(
        c,
        "PATCH",
        &format!("{NS_PATH}/fin"),
        json!({"metadata": {"finalizers": ["diff.ephemera.dev/hold", "diff.ephemera.dev/new"]}}),
    )
    .await;
    see("add finalizer while deleting", failure(&r));
    let r = req(c, "PATCH", &format!("{NS_PATH}/fin"), json!({"spec": {"size": 2}})).await;
    see("update while deleting", json!({"code": r.code, "generation": r.body["metadata"]["generation"]}));
    let r = req(c, "PATCH", &format!("{NS_PATH}/fin"), json!({"metadata": {"finalizers": null}})).await;
    see("remove last finalizer", json!({"code": r.code}));
    see("gone after finalizers", json!(req(c, "GET", &format!("{NS_PATH}/fin"), Value::Null).await.code));
    let r = req(c, "DELETE", &format!("{NS_PATH}/a"), Value::Null).await;
    see("delete", normalize(&r.body));
    let r = req(c, "DELETE", &format!("{NS_PATH}/a"), Value::Null).await;
    see("delete missing", failure(&r));
    let r = req(
        c,
        "DELETE",
        &format!("{NS_PATH}/p2"),
        json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}),
    )
    .await;
    see("delete precondition", json!({"code": r.code, "reason": r.body["reason"]}));
    let r = req(c, "DELETE", &format!("{NS_PATH}?labelSelector=tier%3Dback"), Value::Null).await;
    let mut deleted: Vec<Value> =
        r.body["items"].as_array().cloned().unwrap_or_default().iter().map(|i| i["metadata"]["name"].clone()).collect();
    deleted.sort_by_key(|v| v.to_string());
    see("deletecollection", json!({"code": r.code, "kind": r.body["kind"], "deleted": deleted}));

    // Validation ratcheting: after the CRD is tightened, unchanged invalid values do not block writes.
    let mut r9 = thing("r", json!({"size": 9}));
    r9["metadata"]["finalizers"] = json!(["diff.ephemera.dev/hold"]);
    req(c, "POST", NS_PATH, r9).await;
    let doc = CRDS.split("\n---\n").next().unwrap_or_default().replace("maximum: 10", "maximum: 5");
    let r = patch_as(
        c,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.diff.ephemera.dev?fieldManager=diff&force=true",
        "application/apply-patch+yaml",
        doc,
    )
    .await;
    see("tighten CRD", json!(r.code));
    let mut tightened = false;
    for _ in 0..50 {
        let probe = req(c, "POST", &format!("{NS_PATH}?dryRun=All"), thing("probe", json!({"size": 9}))).await;
        if probe.code == 422 {
            tightened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    see("tightened schema in force", json!(tightened));
    let r = req(c, "PATCH", &format!("{NS_PATH}/r"), json!({"metadata": {"labels": {"team": "x"}}})).await;
    see("ratchet: label an invalid object", json!(r.code));
    let r = req(c, "PATCH", &format!("{NS_PATH}/r/status"), json!({"status": {"phase": "Seen"}})).await;
    see("ratchet: status of an invalid object", json!(r.code));
    let r = req(c, "PATCH", &format!("{NS_PATH}/r"), json!({"spec": {"size": 8}})).await;
    see("ratchet: changing the invalid value", failure(&r));
    req(c, "DELETE", &format!("{NS_PATH}/r"), Value::Null).await;
    let r = req(c, "PATCH", &format!("{NS_PATH}/r"), json!({"metadata": {"finalizers": null}})).await;
    see("ratchet: finalizer removal completes", json!(r.code));
    see("ratchet: gone", json!(req(c, "GET", &format!("{NS_PATH}/r"), Value::Null).await.code));
    obs
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads up to `n` watch events (type, name, selected fields) within the watch's own timeout.
async fn watch_events(c: &Client, path: &str, n: usize) -> Vec<Value> {
    let req = http::Request::builder().uri(path).body(Vec::new()).unwrap();
    let mut out = Vec::new();
    let Ok(stream) = c.request_stream(req).await else { return vec![json!("watch refused")] };
    let mut lines = stream.lines();
    let deadline = tokio::time::sleep(Duration::from_secs(4));
    tokio::pin!(deadline);
    while out.len() < n {
        let line = tokio::select! {
            _ = &mut deadline => break,
            l = lines.next() => l,
        };
        let Some(Ok(line)) = line else { break };
        let Ok(ev) = serde_json::from_str::<Value>(&line) else { continue };
        let o = &ev["object"];
        out.push(json!({
            "type": ev["type"],
            "name": o["metadata"]["name"],
            "size": o["spec"]["size"],
            "phase": o["status"]["phase"],
            "initialEnd": o["metadata"]["annotations"]["k8s.io/initial-events-end"],
        }));
    }
    out
}

/// Error messages that quote a whole object (with its uid and timestamps) compare by shape only.
fn scrub_quoted_object(line: &str) -> String {
    match (line.find("Invalid value: \""), line.rfind("\": strict decoding error")) {
        (Some(a), Some(b)) if a < b => format!("{}<object>{}", &line[..a + 16], &line[b..]),
        _ => line.to_string(),
    }
}

/// kubectl against both servers: the same commands print the same thing (ages aside).
fn kubectl_observations(kubeconfig: &std::path::Path) -> Vec<(String, Value)> {
    let run = |args: &[&str], stdin: Option<&str>| {
        let out = crate::common::kubectl(kubeconfig, args, stdin);
        let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("Warning") && !l.contains("memcache"))
            .map(scrub_quoted_object)
            .collect();
        json!({"ok": out.status.success(), "stdout": String::from_utf8_lossy(&out.stdout), "stderr": stderr})
    };
    let manifest = "apiVersion: diff.ephemera.dev/v1\nkind: Thing\nmetadata:\n  name: kc\n  namespace: default\nspec:\n  size: 2\n";
    vec![
        ("kubectl apply --server-side".into(), run(&["apply", "--server-side", "-f", "-"], Some(manifest))),
        (
            "kubectl get".into(),
            run(
                &[
                    "get",
                    "things",
                    "kc",
                    "-n",
                    "default",
                    "-o",
                    "custom-columns=N:.metadata.name,S:.spec.size,M:.spec.mode",
                ],
                None,
            ),
        ),
        ("kubectl get table".into(), run(&["get", "th", "kc", "-n", "default", "--no-headers", "-o", "wide"], None)),
        (
            "kubectl patch".into(),
            run(&["patch", "thing", "kc", "-n", "default", "--type", "merge", "-p", r#"{"spec":{"size":3}}"#], None),
        ),
        (
            "kubectl apply invalid".into(),
            run(&["apply", "-f", "-"], Some(&manifest.replace("size: 2", "size: 20\n  extra: 1"))),
        ),
        (
            "kubectl get jsonpath".into(),
            run(&["get", "thing", "kc", "-n", "default", "-o", "jsonpath={.spec.size} {.metadata.generation}"], None),
        ),
        ("kubectl delete".into(), run(&["delete", "thing", "kc", "-n", "default"], None)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_cluster_matches_the_real_apiserver() {
    let reference = Reference::start();
    let dev = Dev::start().await;
    let real = scenarios(&reference.client().await).await;
    let ours = scenarios(&dev.client().await).await;
    let mut real = real;
    let mut ours = ours;
    real.extend(kubectl_observations(&reference.kubeconfig));
    ours.extend(kubectl_observations(&dev.kubeconfig));
    assert_eq!(real.len(), ours.len());
    let mut diffs = Vec::new();
    for ((label, r), (_, o)) in real.iter().zip(&ours) {
        if r != o {
            diffs.push(format!("--- {label}\n  real: {r}\n  ours: {o}"));
        }
    }
    assert!(diffs.is_empty(), "{} of {} observations differ:\n{}", diffs.len(), real.len(), diffs.join("\n"));
    eprintln!("{} observations identical on the real apiserver and the dev cluster", real.len());
}

/// A CRD whose schema carries validation rules of every shape the CEL validator has to get right.
const RULES_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rules.diff.ephemera.dev}
spec:
  group: diff.ephemera.dev
  scope: Namespaced
  names: {plural: rules, singular: rule, kind: Rule}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - {rule: "self.min <= self.max", message: "min must not exceed max", fieldPath: ".min"}
            - {rule: "!has(self.secret)", reason: FieldValueForbidden, message: "secret is not allowed"}
            - {rule: "size(self.name) > 0"}
            - {rule: "self.max < 100", messageExpression: "self.name + ' has a max of 100 or more'"}
            properties:
              name: {type: string, maxLength: 20}
              min: {type: integer}
              max: {type: integer}
              secret: {type: string, maxLength: 20}
              queue:
                type: string
                maxLength: 20
                x-kubernetes-validations: [{rule: "self == oldSelf", message: "queue is immutable"}]
              env:
                type: array
                maxItems: 10
                items:
                  type: object
                  required: [name]
                  properties: {name: {type: string, maxLength: 64}}
                x-kubernetes-validations: [{rule: "self.all(e, !e.name.startsWith('LD_'))", message: "LD_* is reserved"}]
              ports:
                type: array
                maxItems: 10
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string, maxLength: 20}
                    port:
                      type: integer
                      x-kubernetes-validations: [{rule: "self == oldSelf", message: "port is immutable"}]
              labels:
                type: object
                maxProperties: 10
                additionalProperties:
                  type: string
                  maxLength: 20
                  x-kubernetes-validations: [{rule: "self != 'bad'", message: "no bad labels"}]
"#;

const RULES_PATH: &str = "/apis/diff.ephemera.dev/v1/namespaces/default/rules";

fn rule_obj(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "diff.ephemera.dev/v1", "kind": "Rule", "metadata": {"name": name}, "spec": spec})
}

/// The validation-rule scenarios: what each write answers.
async fn rule_scenarios(c: &Client) -> Vec<(String, Value)> {
    let mut obs: Vec<(String, Value)> = Vec::new();
    let mut see = |label: &str, v: Value| obs.push((label.to_string(), v));
    let r = patch_as(
        c,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rules.diff.ephemera.dev?fieldManager=diff&force=true",
        "application/apply-patch+yaml",
        RULES_CRD.to_string(),
    )
    .await;
    see("install", json!({"code": r.code, "message": r.body["message"]}));
    for _ in 0..100 {
        if req(c, "GET", RULES_PATH, Value::Null).await.code == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let good = json!({"name": "a", "min": 1, "max": 2, "queue": "q1", "env": [{"name": "PATH"}],
        "ports": [{"name": "http", "port": 80}], "labels": {"team": "x"}});
    let r = req(c, "POST", RULES_PATH, rule_obj("good", good.clone())).await;
    see("valid", json!(r.code));
    let cases = [
        ("min over max, reported at fieldPath", json!({"name": "a", "min": 3, "max": 2})),
        ("a forbidden field, with its reason", json!({"name": "a", "min": 1, "max": 2, "secret": "x"})),
        ("no message: the rule itself", json!({"name": "", "min": 1, "max": 2})),
        ("messageExpression", json!({"name": "a", "min": 1, "max": 200})),
        ("a list rule", json!({"name": "a", "min": 1, "max": 2, "env": [{"name": "LD_PRELOAD"}]})),
        ("a map value rule", json!({"name": "a", "min": 1, "max": 2, "labels": {"team": "bad"}})),
        ("several at once", json!({"name": "", "min": 9, "max": 200, "secret": "s", "env": [{"name": "LD_X"}]})),
        ("a blocking schema error skips the rules", json!({"name": "a", "min": 1, "max": 2, "env": [{}]})),
        ("too long blocks the rules too", json!({"name": "a".repeat(25), "min": 3, "max": 2})),
        ("a missing field the rule reads", json!({"name": "a", "min": 1})),
    ];
    for (label, spec) in cases {
        let r = req(c, "POST", RULES_PATH, rule_obj("bad", spec)).await;
        see(label, failure(&r));
    }
    let path = format!("{RULES_PATH}/good");
    let r = req(c, "PATCH", &path, json!({"spec": {"queue": "q2"}})).await;
    see("a transition rule on update", failure(&r));
    let r = req(c, "PATCH", &path, json!({"spec": {"queue": "q1", "labels": {"team": "y"}}})).await;
    see("an unchanged immutable field", json!(r.code));
    let r = req(c, "PATCH", &path, json!({"spec": {"ports": [{"name": "http", "port": 81}]}})).await;
    see("a map-list item correlates by key", failure(&r));
    let r = req(
        c,
        "PATCH",
        &path,
        json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 90}]}}),
    )
    .await;
    see("a new map-list item has no old value", json!(r.code));
    obs
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_rules_are_evaluated_as_the_real_apiserver_does() {
    let reference = Reference::start();
    let dev = Dev::start().await;
    let real = rule_scenarios(&reference.client().await).await;
    let ours = rule_scenarios(&dev.client().await).await;
    assert_eq!(real.len(), ours.len());
    let diffs: Vec<String> = real
        .iter()
        .zip(&ours)
        .filter(|((_, r), (_, o))| r != o)
        .map(|((label, r), (_, o))| format!("--- {label}\n  real: {r}\n  ours: {o}"))
        .collect();
    assert!(diffs.is_empty(), "{} of {} observations differ:\n{}", diffs.len(), real.len(), diffs.join("\n"));
    eprintln!("{} validation-rule observations identical on the real apiserver and the dev cluster", real.len());
}
