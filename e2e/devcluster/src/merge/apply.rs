//! Server-side apply: merge the configuration into the live object, drop what the applier stopped
//! applying (unless someone else owns it), detect conflicts, and record the applier's fields.

use super::combine::merge;
use super::fieldset::FieldSet;
use super::hints::Hint;
use super::managed::{strip_set, update_ownership, Managed, ManagerId};
use super::path::values_equal;
use super::remove::remove_items;
use super::typed::{ensure_named_fields_are_members, to_field_set, validate_config};
use super::{ApplyRequest, Conflict};
use serde_json::{Map, Value};

/// Why an apply was refused.
#[derive(Debug)]
pub enum ApplyError {
    /// Fields owned by other managers would change (409 Conflict).
    Conflicts(Vec<Conflict>),
    /// The configuration is malformed (400/422), e.g. duplicate or keyless list items.
    Invalid(String),
}

/// Server-side apply: returns the new object (with metadata.managedFields updated) or the
/// conflicts. A malformed configuration (a 400, not a 409) comes back as a single `Conflict` with
/// empty `manager` and `field` whose `message` is the error; [`try_apply`] reports it as a type.
pub fn apply(req: ApplyRequest) -> Result<Value, Vec<Conflict>> {
    try_apply(req).map_err(|e| match e {
        ApplyError::Conflicts(c) => c,
        ApplyError::Invalid(message) => {
            vec![Conflict { manager: String::new(), api_version: String::new(), field: String::new(), message }]
        }
    })
}

/// [`apply`] with malformed configurations reported separately from conflicts.
pub fn try_apply(req: ApplyRequest) -> Result<Value, ApplyError> {
    let hint = Hint::new(req.hints);
    if req.config.pointer("/metadata/managedFields").is_some_and(|v| !v.is_null()) {
        return Err(ApplyError::Invalid("metadata.managedFields must be nil".to_string()));
    }
    validate_config(req.config, hint).map_err(ApplyError::Invalid)?;
    let mut config = req.config.clone();
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }

    // A broken managedFields on the live object must not make the object unwritable.
    let mut managed = req.live.and_then(|l| Managed::decode(l).ok()).unwrap_or_default();
    let live = match req.live {
        Some(l) => {
            let mut l = l.clone();
            if let Some(meta) = l.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            l
        }
        None => Value::Object(Map::new()),
    };

    let id = ManagerId::new(req.manager, "Apply", req.api_version, req.subresource.unwrap_or(""));
    let last_set = managed.get(&id).map(|e| e.set.clone());
    let merged = merge(&live, &config, hint);
    {
        let entry = managed.entry(&id, req.api_version);
        entry.set = to_field_set(&config, hint);
        entry.api_version = req.api_version.to_string();
    }
    let new = prune(&merged, &managed, last_set.as_ref(), hint);
    update_ownership(&live, &new, hint, &mut managed, Some(&id), req.force).map_err(ApplyError::Conflicts)?;

    let unchanged = req.live.is_some() && values_equal(&live, &new);
    if let Some(pos) = managed.entries.iter().position(|e| e.id == id) {
        let entry = &mut managed.entries[pos];
        entry.set = entry.set.difference(&strip_set());
        if entry.set.is_empty() {
            managed.entries.remove(pos);
        } else if !unchanged {
            // A no-op apply keeps the entry's old time (or none, for a new applier).
            entry.time = Some(req.now.to_string());
        }
    }
    managed.cap_updates();
    let mut out = if unchanged { live } else { new };
    managed.encode_into(&mut out);
    Ok(out)
}

/// Removes from `merged` the fields the applier applied last time and no longer does, unless
/// another manager (or the new configuration) still owns them.
fn prune(merged: &Value, managed: &Managed, last: Option<&FieldSet>, hint: Hint<'_>) -> Value {
    let Some(last) = last.filter(|s| !s.is_empty()) else {
        return merged.clone();
    };
    let named = |s: &FieldSet| ensure_named_fields_are_members(s, hint);
    let last = named(last);
    let pruned = remove_items(merged, &last, hint);

    // Put back whatever someone still owns or the pruning took only as collateral.
    let merged_set = named(&to_field_set(merged, hint));
    let pruned_set = named(&to_field_set(&pruned, hint));
    let owned = named(&managed.all_fields());
    let pruned = remove_items(merged, &merged_set.difference(&pruned_set.union(&owned)), hint);

    // Only fields the applier used to own may go.
    let pruned_set = named(&to_field_set(&pruned, hint));
    remove_items(merged, &merged_set.difference(&pruned_set).intersection(&last), hint)
}

/// Message of the 409 Status, as the real server words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let who = |c: &Conflict| c.message.strip_prefix("conflict with ").unwrap_or(&c.message).to_string();
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", who(only), only.field);
    }
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let name = who(c);
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, fields)) => fields.push(&c.field),
            None => groups.push((name, vec![&c.field])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (name, fields) in groups {
        lines.push(format!("conflicts with {name}:"));
        lines.extend(fields.into_iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::test_schema::widget_hints;
    use serde_json::json;

    const V: &str = "mergetest.example.com/v1";

    fn req<'a>(
        live: Option<&'a Value>,
        config: &'a Value,
        manager: &'a str,
        force: bool,
        hints: &'a Value,
    ) -> ApplyRequest<'a> {
        ApplyRequest {
            live,
            config,
            manager,
            force,
            hints,
            api_version: V,
            now: "2026-11-23T16:16:18Z",
            subresource: None,
        }
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"].as_array().cloned().unwrap_or_default()
    }

    fn created_w1(hints: &Value) -> Value {
        let mut obj = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w1","labels":{"a":"1"}},
            "spec":{"replicas":2,"items":[{"name":"x","value":"1"}],"tags":["t1"]}});
        super::super::record_update(None, &mut obj, "creator", hints, V, "2026-11-23T16:16:08Z", None);
        obj
    }

    #[test]
    fn conflicts_match_real_server() {
        let hints = widget_hints();
        let live = created_w1(&hints);
        let config = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w1"},
            "spec":{"replicas":3,"items":[{"name":"x","value":"2"}]}});
        let conflicts = apply(req(Some(&live), &config, "applier1", false, &hints)).unwrap_err();
        // Recorded from the real server.
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 2 conflicts: conflicts with \"creator\" using mergetest.example.com/v1:\n- .spec.replicas\n- .spec.items[name=\"x\"].value"
        );
        assert_eq!(conflicts[0].field, ".spec.replicas");
        assert_eq!(conflicts[0].message, "conflict with \"creator\" using mergetest.example.com/v1");
        assert_eq!(conflicts[1].field, ".spec.items[name=\"x\"].value");
        assert_eq!(
            conflict_message(&conflicts[..1]),
            "Apply failed with 1 conflict: conflict with \"creator\" using mergetest.example.com/v1: .spec.replicas"
        );
    }

    #[test]
    fn same_values_share_ownership_without_time() {
        let hints = widget_hints();
        let live = created_w1(&hints);
        let config = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w1"},
            "spec":{"replicas":2,"items":[{"name":"x","value":"1"}]}});
        let out = apply(req(Some(&live), &config, "applier1", false, &hints)).unwrap();
        let e = entries(&out);
        // Real server: a no-op apply records the applier first (Apply sorts before Update), no time.
        assert_eq!(
            e[0],
            json!({"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:items":{"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}}},"f:replicas":{}}},
                "manager":"applier1","operation":"Apply"})
        );
        assert_eq!(e[1]["manager"], "creator");
        assert_eq!(e[1]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

        // Force: a second applier takes replicas from both (recorded from the real server).
        let forced =
            json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w1"},"spec":{"replicas":5,"tags":["t2"]}});
        let out = apply(req(Some(&out), &forced, "applier2", true, &hints)).unwrap();
        let e = entries(&out);
        assert_eq!(e[0]["manager"], "applier1");
        assert_eq!(
            e[0]["fieldsV1"],
            json!({"f:spec":{"f:items":{"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}}}}})
        );
        assert_eq!(e[1]["manager"], "applier2");
        assert_eq!(e[1]["fieldsV1"], json!({"f:spec":{"f:replicas":{},"f:tags":{"v:\"t2\"":{}}}}));
        assert_eq!(e[1]["time"], "2026-11-23T16:16:18Z");
        assert!(e[2]["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(out["spec"]["tags"], json!(["t1", "t2"]));
    }

    #[test]
    fn reapply_removes_dropped_fields_unless_shared() {
        let hints = widget_hints();
        let c1 = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w2","labels":{"l":"1"},"finalizers":["f1"]},
            "spec":{"replicas":1,"items":[{"name":"x","value":"1"},{"name":"y"}],"ports":[{"port":80}],"tags":["t1"],
            "args":["a"],"selector":{"k":"v"},"config":{"c":"d"},"nested":{"a":{"b":"1"}},"extra":{"p":{"q":1},"r":[1]}}});
        let obj = apply(req(None, &c1, "a1", false, &hints)).unwrap();
        // Real server's entry for the creating apply.
        assert_eq!(
            entries(&obj)[0]["fieldsV1"],
            json!({"f:metadata":{"f:finalizers":{"v:\"f1\"":{}},"f:labels":{"f:l":{}}},"f:spec":{"f:args":{},"f:config":{"f:c":{}},
                "f:extra":{"f:p":{".":{},"f:q":{}},"f:r":{}},"f:items":{"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}},
                "k:{\"name\":\"y\"}":{".":{},"f:name":{}}},"f:nested":{"f:a":{"f:b":{}}},
                "f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},"f:replicas":{},"f:selector":{},"f:tags":{"v:\"t1\"":{}}}})
        );
        let c2 = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w2"},
            "spec":{"replicas":1,"items":[{"name":"y"}],"nested":{"a":{"c":"2"}}}});
        let obj = apply(req(Some(&obj), &c2, "a2", false, &hints)).unwrap();
        let c3 = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w2"},"spec":{"tags":["t1"]}});
        let obj = apply(req(Some(&obj), &c3, "a1", false, &hints)).unwrap();
        // Real server: only a2's fields and a1's tag remain.
        assert_eq!(obj["spec"], json!({"items":[{"name":"y"}],"nested":{"a":{"c":"2"}},"replicas":1,"tags":["t1"]}));
        assert!(obj["metadata"].get("labels").is_none());
        assert!(obj["metadata"].get("finalizers").is_none());
        assert_eq!(obj["metadata"]["name"], "w2");
        let e = entries(&obj);
        assert_eq!(e[0]["fieldsV1"], json!({"f:spec":{"f:tags":{"v:\"t1\"":{}}}}));
        assert_eq!(
            e[1]["fieldsV1"],
            json!({"f:spec":{"f:items":{"k:{\"name\":\"y\"}":{".":{},"f:name":{}}},"f:nested":{"f:a":{"f:c":{}}},"f:replicas":{}}})
        );
    }

    #[test]
    fn noop_empty_lists_and_set_order_match_real_server() {
        let hints = widget_hints();
        let at = |r: ApplyRequest<'_>, now: &'static str| apply(ApplyRequest { now, ..r }).unwrap();
        let w = |spec: Value| json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w3"},"spec":spec});
        let c1 = w(json!({"replicas":1,"items":[{"name":"x"}],"nested":{"a":{"b":"1"}},"tags":["a"]}));
        let obj = at(req(None, &c1, "b1", false, &hints), "2026-11-23T16:20:50Z");
        // Re-applying the same configuration changes nothing and keeps the time.
        let again = at(req(Some(&obj), &c1, "b1", false, &hints), "2026-11-23T16:20:52Z");
        assert_eq!(again, obj);
        let c2 = w(json!({"config":{},"image":"i"}));
        let obj = at(req(Some(&obj), &c2, "b2", false, &hints), "2026-11-23T16:20:52Z");
        // An empty map-list is not owned and the dropped items go; an empty atomic list is owned.
        let c3 = w(json!({"items":[],"tags":["a"],"args":[]}));
        let obj = at(req(Some(&obj), &c3, "b1", false, &hints), "2026-11-23T16:20:55Z");
        assert_eq!(obj["spec"], json!({"args":[],"config":{},"image":"i","tags":["a"]}));
        let c4 = w(json!({"tags":["c","a","b"]}));
        let obj = at(req(Some(&obj), &c4, "b3", false, &hints), "2026-11-23T16:20:55Z");
        let c5 = w(json!({"image":"i"}));
        let obj = at(req(Some(&obj), &c5, "b1", false, &hints), "2026-11-23T16:20:55Z");
        // Recorded from the real server after the same sequence.
        assert_eq!(obj["spec"], json!({"config":{},"image":"i","tags":["c","a","b"]}));
        assert_eq!(
            obj["metadata"]["managedFields"],
            json!([
                {"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:config":{},"f:image":{}}},"manager":"b2","operation":"Apply","time":"2026-11-23T16:20:52Z"},
                {"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:image":{}}},"manager":"b1","operation":"Apply","time":"2026-11-23T16:20:55Z"},
                {"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:tags":{"v:\"a\"":{},"v:\"b\"":{},"v:\"c\"":{}}}},"manager":"b3","operation":"Apply","time":"2026-11-23T16:20:55Z"}
            ])
        );
    }

    #[test]
    fn invalid_configs_are_reported() {
        let hints = widget_hints();
        let bad = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w"},"spec":{"items":[{"name":"a"},{"name":"a"}]}});
        assert!(matches!(try_apply(req(None, &bad, "m", false, &hints)), Err(ApplyError::Invalid(_))));
        let mf = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w","managedFields":[]}});
        let err = apply(req(None, &mf, "m", false, &hints)).unwrap_err();
        assert_eq!(err[0].manager, "");
        assert_eq!(err[0].message, "metadata.managedFields must be nil");
    }

    #[test]
    fn status_subresource_apply() {
        let hints = widget_hints();
        let live = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w"},"spec":{"replicas":1}});
        let config = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w"},
            "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}});
        let mut r = req(Some(&live), &config, "st", false, &hints);
        r.subresource = Some("status");
        let out = apply(r).unwrap();
        // Real server's entry for the same status apply.
        assert_eq!(
            entries(&out)[0],
            json!({"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{},"f:type":{}}},"f:phase":{}}},
                "manager":"st","operation":"Apply","subresource":"status","time":"2026-11-23T16:16:18Z"})
        );
    }
}
