//! Background controllers a real control plane runs: the garbage collector (ownerReferences, with
//! background, foreground and orphan propagation), the namespace lifecycle, and removal of the
//! custom resources of a deleted CRD.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http::App;
use crate::meta;
use crate::store::{EventType, ResKey, Write};

const SWEEP_EVERY: Duration = Duration::from_secs(5);
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Runs until the store is dropped.
pub async fn run(app: Arc<App>) {
    let mut rx = app.store.subscribe();
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        let relevant = tokio::select! {
            _ = tick.tick() => true,
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    ev.kind == EventType::Deleted
                        || ev.object["metadata"].get("deletionTimestamp").is_some()
                        || (ev.kind == EventType::Added && ev.key == ResKey::new("", "namespaces"))
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        if relevant {
            tokio::time::sleep(DEBOUNCE).await;
            // Drain what arrived meanwhile: one sweep covers all of it.
            while rx.try_recv().is_ok() {}
            sweep(&app);
        }
    }
}

fn id(o: &Value) -> (String, String) {
    (meta::meta_str(o, "namespace").unwrap_or("").to_string(), meta::meta_str(o, "name").unwrap_or("").to_string())
}

fn owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r["uid"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Marks for deletion (finalizers pending) or removes an object.
fn delete(app: &App, key: &ResKey, o: &Value) {
    let (ns, name) = id(o);
    let uid = meta::meta_str(o, "uid").map(String::from);
    let _ = app.store.write::<()>(key, &ns, &name, |cur| {
        let Some(cur) = cur else { return Ok(Write::Keep) };
        if meta::meta_str(cur, "uid").map(String::from) != uid {
            return Ok(Write::Keep);
        }
        if meta::finalizers(cur).is_empty() {
            return Ok(Write::Delete);
        }
        if cur["metadata"].get("deletionTimestamp").is_some() {
            return Ok(Write::Keep);
        }
        let mut next = cur.clone();
        next["metadata"]["deletionTimestamp"] = json!(meta::now());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if let Some(g) = next["metadata"]["generation"].as_i64() {
            next["metadata"]["generation"] = json!(g + 1);
        }
        Ok(Write::Put(next))
    });
}

/// Rewrites an object with `edit`; deletes it if that leaves a deleting object without finalizers.
fn edit(app: &App, key: &ResKey, o: &Value, edit: impl FnOnce(&mut Value)) {
    let (ns, name) = id(o);
    let _ = app.store.write::<()>(key, &ns, &name, |cur| {
        let Some(cur) = cur else { return Ok(Write::Keep) };
        let mut next = cur.clone();
        edit(&mut next);
        if next == *cur {
            return Ok(Write::Keep);
        }
        if next["metadata"].get("deletionTimestamp").is_some() && meta::finalizers(&next).is_empty() {
            return Ok(Write::Delete);
        }
        Ok(Write::Put(next))
    });
}

fn remove_finalizer(app: &App, key: &ResKey, o: &Value, f: &str) {
    edit(app, key, o, |v| {
        let rest: Vec<String> = meta::finalizers(v).into_iter().filter(|x| x != f).collect();
        v["metadata"]["finalizers"] = json!(rest);
    });
}

fn remove_owner(app: &App, key: &ResKey, o: &Value, owner: &str) {
    edit(app, key, o, |v| {
        if let Some(refs) = v.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
            refs.retain(|r| r["uid"].as_str() != Some(owner));
        }
    });
}

/// One pass over everything.
pub fn sweep(app: &App) {
    let registry = app.registry();
    let keys = app.store.keys();
    let mut all: Vec<(ResKey, Arc<Value>)> = Vec::new();
    for key in &keys {
        let (items, _) = app.store.list(key, None);
        all.extend(items.into_iter().map(|o| (key.clone(), o)));
    }
    let live: HashSet<String> = all.iter().filter_map(|(_, o)| meta::meta_str(o, "uid").map(String::from)).collect();

    for (key, o) in &all {
        // Custom resources whose CRD is gone.
        if registry.find_any(&key.group, &key.resource).is_none() {
            delete(app, key, o);
            continue;
        }
        // Dependents whose owners are all gone (background propagation).
        let owners = owner_uids(o);
        if !owners.is_empty() {
            let dead: Vec<&String> = owners.iter().filter(|u| !live.contains(*u)).collect();
            if dead.len() == owners.len() {
                delete(app, key, o);
            } else {
                for u in dead {
                    remove_owner(app, key, o, u);
                }
            }
        }
    }

    ensure_default_service_accounts(app, &all);

    for (key, o) in all.iter().filter(|(_, o)| o["metadata"].get("deletionTimestamp").is_some()) {
        let uid = meta::meta_str(o, "uid").unwrap_or("").to_string();
        let finalizers = meta::finalizers(o);
        let dependents: Vec<&(ResKey, Arc<Value>)> = all.iter().filter(|(_, d)| owner_uids(d).contains(&uid)).collect();
        if finalizers.iter().any(|f| f == "orphan") {
            for (k, d) in &dependents {
                remove_owner(app, k, d, &uid);
            }
            remove_finalizer(app, key, o, "orphan");
        }
        if finalizers.iter().any(|f| f == "foregroundDeletion") {
            if dependents.is_empty() {
                remove_finalizer(app, key, o, "foregroundDeletion");
            } else {
                for (k, d) in &dependents {
                    delete(app, k, d);
                }
            }
        }
        if key.group.is_empty() && key.resource == "namespaces" {
            let ns = meta::meta_str(o, "name").unwrap_or("");
            let contents: Vec<&(ResKey, Arc<Value>)> =
                all.iter().filter(|(_, d)| meta::meta_str(d, "namespace") == Some(ns)).collect();
            if contents.is_empty() {
                let _ = app.store.write::<()>(key, "", ns, |_| Ok(Write::Delete));
            } else {
                for (k, d) in contents {
                    delete(app, k, d);
                }
            }
        }
    }
}

/// Every active namespace gets a `default` ServiceAccount, as the ServiceAccount controller ensures.
fn ensure_default_service_accounts(app: &App, all: &[(ResKey, Arc<Value>)]) {
    let sa_key = ResKey::new("", "serviceaccounts");
    for (key, ns) in all {
        if !(key.group.is_empty() && key.resource == "namespaces") || ns["metadata"].get("deletionTimestamp").is_some()
        {
            continue;
        }
        let ns = meta::meta_str(ns, "name").unwrap_or("");
        let _ = app.store.write::<()>(&sa_key, ns, "default", |cur| {
            if cur.is_some() {
                return Ok(Write::Keep);
            }
            Ok(Write::Put(json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": ns, "uid": meta::uid(), "creationTimestamp": meta::now()},
            })))
        });
    }
}
