//! managedFields entries: decoding and encoding, the ownership update shared by every write, and
//! Update-operation tracking (`record_update`).

use super::compare::{compare, Comparison};
use super::fieldset::FieldSet;
use super::hints::Hint;
use super::path::PathElement;
use super::Conflict;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Update entries kept before the oldest are folded into "ancient-changes" buckets.
const MAX_UPDATE_MANAGERS: usize = 10;

/// Who owns a set: entries with equal ids are one entry. Apply ids carry no API version, so an
/// applier keeps one entry across versions; Update ids do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ManagerId {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
}

impl ManagerId {
    /// The id of `manager` for `operation` ("Apply" or "Update").
    pub fn new(manager: &str, operation: &str, api_version: &str, subresource: &str) -> Self {
        let manager = if manager.is_empty() { "unknown" } else { manager };
        ManagerId {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: if operation == "Apply" { String::new() } else { api_version.to_string() },
            subresource: subresource.to_string(),
        }
    }

    /// The real server's identifier string (JSON of the id fields), which orders conflicts.
    fn identifier(&self) -> String {
        let mut m = Map::new();
        for (k, v) in [
            ("manager", &self.manager),
            ("operation", &self.operation),
            ("apiVersion", &self.api_version),
            ("subresource", &self.subresource),
        ] {
            if !v.is_empty() {
                m.insert(k.to_string(), Value::String(v.clone()));
            }
        }
        Value::Object(m).to_string()
    }

    /// How conflict messages name the manager: `"m"`, `"m" with subresource "status"`,
    /// `"m" using v1` (the latter for Update entries).
    pub fn describe(&self) -> String {
        let mut out = Value::String(self.manager.clone()).to_string();
        if !self.subresource.is_empty() {
            out.push_str(" with subresource ");
            out.push_str(&Value::String(self.subresource.clone()).to_string());
        }
        if self.operation == "Update" {
            out.push_str(" using ");
            out.push_str(&self.api_version);
        }
        out
    }
}

/// One managedFields entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: ManagerId,
    pub api_version: String,
    pub set: FieldSet,
    pub time: Option<String>,
}

/// All entries of an object.
#[derive(Debug, Clone, Default)]
pub(crate) struct Managed {
    pub entries: Vec<Entry>,
}

impl Managed {
    /// Decodes `metadata.managedFields` of `obj` (absent means none).
    pub fn decode(obj: &Value) -> Result<Managed, String> {
        let Some(list) = obj.pointer("/metadata/managedFields") else {
            return Ok(Managed::default());
        };
        let list = match list {
            Value::Null => return Ok(Managed::default()),
            Value::Array(list) => list,
            _ => return Err("managedFields must be a list".to_string()),
        };
        let mut out = Managed::default();
        for raw in list {
            let text = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let fields_type = text("fieldsType");
            if fields_type != "FieldsV1" {
                return Err(format!("invalid fieldsType {fields_type:?}"));
            }
            let set = match raw.get("fieldsV1") {
                Some(v) if !v.is_null() => FieldSet::from_json(v)?,
                _ => FieldSet::new(),
            };
            let api_version = text("apiVersion");
            let id = ManagerId {
                manager: text("manager"),
                operation: text("operation"),
                api_version: if text("operation") == "Apply" { String::new() } else { api_version.clone() },
                subresource: text("subresource"),
            };
            if out.get(&id).is_some() {
                return Err(format!("found duplicate manager: {}", id.identifier()));
            }
            let time = raw.get("time").and_then(Value::as_str).map(str::to_string);
            out.entries.push(Entry { id, api_version, set, time });
        }
        Ok(out)
    }

    /// The entry of `id`.
    pub fn get(&self, id: &ManagerId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.id == id)
    }

    /// The entry of `id`, created empty (with `api_version`) when missing.
    pub fn entry(&mut self, id: &ManagerId, api_version: &str) -> &mut Entry {
        let pos = match self.entries.iter().position(|e| &e.id == id) {
            Some(pos) => pos,
            None => {
                self.entries.push(Entry {
                    id: id.clone(),
                    api_version: api_version.to_string(),
                    set: FieldSet::new(),
                    time: None,
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[pos]
    }

    /// Union of every entry's set.
    pub fn all_fields(&self) -> FieldSet {
        self.entries.iter().fold(FieldSet::new(), |acc, e| acc.union(&e.set))
    }

    /// Writes the entries, in the real server's order, into `obj.metadata.managedFields` (removing
    /// the key when there are none).
    pub fn encode_into(&self, obj: &mut Value) {
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.entries.is_empty() {
            meta.remove("managedFields");
            return;
        }
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by(|a, b| {
            (&a.id.operation, &a.time, &a.id.manager, &a.api_version, &a.id.subresource).cmp(&(
                &b.id.operation,
                &b.time,
                &b.id.manager,
                &b.api_version,
                &b.id.subresource,
            ))
        });
        let list = entries
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.id.manager));
                m.insert("operation".into(), json!(e.id.operation));
                m.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = &e.time {
                    m.insert("time".into(), json!(t));
                }
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_json());
                if !e.id.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.id.subresource));
                }
                Value::Object(m)
            })
            .collect();
        meta.insert("managedFields".into(), Value::Array(list));
    }

    /// Folds the oldest Update entries into per-version "ancient-changes" entries so that at most
    /// ten Update entries remain.
    pub fn cap_updates(&mut self) {
        let mut updaters: Vec<ManagerId> =
            self.entries.iter().filter(|e| e.id.operation != "Apply").map(|e| e.id.clone()).collect();
        let mut count = updaters.len();
        if count <= MAX_UPDATE_MANAGERS {
            return;
        }
        let time_of = |m: &Managed, id: &ManagerId| m.get(id).and_then(|e| e.time.clone());
        updaters.sort_by_cached_key(|id| (time_of(self, id), id.identifier()));
        let mut first_by_version: BTreeMap<String, ManagerId> = BTreeMap::new();
        for id in updaters {
            if count <= MAX_UPDATE_MANAGERS {
                break;
            }
            let Some(entry) = self.get(&id).cloned() else {
                continue;
            };
            let version = entry.api_version.clone();
            let bucket = ManagerId::new("ancient-changes", "Update", &version, "");
            match first_by_version.get(&version) {
                Some(first) => {
                    if self.get(&bucket).is_none() {
                        if let Some(e) = self.entries.iter_mut().find(|e| &e.id == first) {
                            e.id = bucket.clone();
                        }
                    }
                    let b = self.entry(&bucket, &version);
                    b.set = b.set.union(&entry.set);
                    b.time = entry.time.clone();
                    self.entries.retain(|e| e.id != id);
                    count -= 1;
                }
                None => {
                    first_by_version.insert(version, id);
                }
            }
        }
    }
}

/// Fields never tracked: identity and server-set metadata (exact paths; `metadata`'s children stay).
pub(crate) fn strip_set() -> FieldSet {
    let mut s = FieldSet::new();
    let f = |n: &str| PathElement::Field(n.to_string());
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(name)]);
    }
    s
}

/// Compares `old` with `new` and moves ownership: fields another entry owns that changed are
/// conflicts (an error unless `force`, otherwise taken away), removed fields leave every entry.
/// `workflow` is the writer's own entry, exempt from both.
pub(crate) fn update_ownership(
    old: &Value,
    new: &Value,
    hint: Hint<'_>,
    managed: &mut Managed,
    workflow: Option<&ManagerId>,
    force: bool,
) -> Result<Comparison, Vec<Conflict>> {
    let cmp = compare(old, new, hint);
    let changed = cmp.added.union(&cmp.modified);
    let mut clashes: Vec<(ManagerId, FieldSet)> = Vec::new();
    for e in &managed.entries {
        if Some(&e.id) == workflow {
            continue;
        }
        let clash = e.set.intersection(&changed);
        if !clash.is_empty() {
            clashes.push((e.id.clone(), clash));
        }
    }
    if !force && !clashes.is_empty() {
        clashes.sort_by_cached_key(|(id, _)| id.identifier());
        let mut out = Vec::new();
        for (id, set) in clashes {
            let api_version = managed.get(&id).map(|e| e.api_version.clone()).unwrap_or_default();
            for field in set.leaf_strings() {
                out.push(Conflict {
                    manager: id.manager.clone(),
                    api_version: api_version.clone(),
                    field,
                    message: format!("conflict with {}", id.describe()),
                });
            }
        }
        return Err(out);
    }
    for e in managed.entries.iter_mut() {
        if Some(&e.id) == workflow {
            continue;
        }
        if let Some((_, clash)) = clashes.iter().find(|(id, _)| id == &e.id) {
            e.set = e.set.difference(clash);
        }
        e.set = e.set.difference(&cmp.removed);
    }
    managed.entries.retain(|e| !e.set.is_empty());
    Ok(cmp)
}

fn strip_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

// Where the entries to update come from: the request may set or reset managedFields itself.
fn starting_entries(old: Option<&Value>, new: &Value, subresource: Option<&str>) -> Managed {
    let from_old = || old.and_then(|o| Managed::decode(o).ok()).unwrap_or_default();
    if subresource.is_some() {
        return from_old();
    }
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(list)) if list.is_empty() => return Managed::default(),
        Some(Value::Array(list)) if list.len() == 1 && list[0].as_object().is_some_and(|m| m.is_empty()) => {
            return Managed::default()
        }
        _ => {}
    }
    match Managed::decode(new) {
        Ok(m) if !m.entries.is_empty() => m,
        _ => from_old(),
    }
}

/// Records an Update-operation write (create, update or non-apply patch) in `new`'s
/// metadata.managedFields: `manager` gains the fields that changed from `old`, other entries lose
/// them and every entry loses removed fields; empty entries disappear. With `old` None (create)
/// the object is compared against one holding only `new`'s apiVersion and kind, as for custom
/// resources; for kinds whose zero value has more fields, pass that zero object as `old`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    hints: &Value,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) {
    let hint = Hint::new(hints);
    let mut managed = starting_entries(old, new, subresource);
    let old_obj = match old {
        Some(o) => strip_managed_fields(o),
        None => {
            let mut m = Map::new();
            for k in ["apiVersion", "kind"] {
                if let Some(v) = new.get(k) {
                    m.insert(k.to_string(), v.clone());
                }
            }
            Value::Object(m)
        }
    };
    let new_obj = strip_managed_fields(new);
    // Forced, so this cannot fail; the writer's previous entry is treated like any other.
    let Ok(cmp) = update_ownership(&old_obj, &new_obj, hint, &mut managed, None, true) else {
        return;
    };
    let changed = cmp.modified.union(&cmp.added).difference(&strip_set());
    if !changed.is_empty() {
        let id = ManagerId::new(manager, "Update", api_version, subresource.unwrap_or(""));
        let e = managed.entry(&id, api_version);
        e.set = e.set.union(&changed);
        e.api_version = api_version.to_string();
        e.time = Some(now.to_string());
    }
    managed.cap_updates();
    managed.encode_into(new);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::test_schema::widget_hints;

    const V: &str = "mergetest.example.com/v1";

    fn fields_of(obj: &Value) -> Vec<(String, String, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap().to_string(),
                            e["operation"].as_str().unwrap().to_string(),
                            e["fieldsV1"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn create_matches_real_server() {
        let hints = widget_hints();
        let mut obj = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w1","namespace":"default",
            "labels":{"a":"1"},"finalizers":["x/y"]},"spec":{"replicas":2,"items":[{"name":"x","value":"1"}],
            "ports":[{"port":80,"protocol":"TCP"}],"tags":["t1"],"args":["a"],"selector":{"k":"v"},"config":{"c":"d"},
            "nested":{"a":{"b":"1"}},"extra":{"p":{"q":1},"r":[1]}}});
        record_update(None, &mut obj, "creator", &hints, V, "2026-11-23T16:16:08Z", None);
        // Recorded from the real server for the same create.
        let real = json!([{"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:finalizers":{".":{},"v:\"x/y\"":{}},
            "f:labels":{".":{},"f:a":{}}},"f:spec":{".":{},"f:args":{},"f:config":{".":{},"f:c":{}},
            "f:extra":{".":{},"f:p":{".":{},"f:q":{}},"f:r":{}},"f:items":{".":{},"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}}},
            "f:nested":{".":{},"f:a":{".":{},"f:b":{}}},"f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{},"f:protocol":{}}},
            "f:replicas":{},"f:selector":{},"f:tags":{".":{},"v:\"t1\"":{}}}},"manager":"creator","operation":"Update",
            "time":"2026-11-23T16:16:08Z"}]);
        assert_eq!(obj["metadata"]["managedFields"], real);
    }

    #[test]
    fn update_takes_fields_and_drops_removed_ones() {
        let hints = widget_hints();
        // Live state recorded from the real server (two appliers), then a merge patch by "editor".
        let old = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w2","managedFields":[
            {"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:tags":{"v:\"t1\"":{}}}},"manager":"a1","operation":"Apply","time":"2026-11-23T16:16:18Z"},
            {"apiVersion":V,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:items":{"k:{\"name\":\"y\"}":{".":{},"f:name":{}}},
                "f:nested":{"f:a":{"f:c":{}}},"f:replicas":{}}},"manager":"a2","operation":"Apply","time":"2026-11-23T16:16:18Z"}]},
            "spec":{"items":[{"name":"y"}],"nested":{"a":{"c":"2"}},"replicas":1,"tags":["t1"]}});
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"e":"1"});
        new["spec"]["replicas"] = json!(7);
        new["spec"]["items"] = json!([{"name":"y","value":"v"}]);
        record_update(Some(&old), &mut new, "editor", &hints, V, "2026-11-23T16:16:23Z", None);
        let real_editor = json!({"f:metadata":{"f:labels":{".":{},"f:e":{}}},"f:spec":{"f:items":{"k:{\"name\":\"y\"}":{"f:value":{}}},"f:replicas":{}}});
        let real_a2 =
            json!({"f:spec":{"f:items":{"k:{\"name\":\"y\"}":{".":{},"f:name":{}}},"f:nested":{"f:a":{"f:c":{}}}}});
        let got = fields_of(&new);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], ("a2".into(), "Apply".into(), real_a2));
        assert_eq!(got[2], ("editor".into(), "Update".into(), real_editor));

        // A no-op patch by another manager leaves no entry; removing nested drops a2's claim.
        let mut same = new.clone();
        record_update(Some(&new), &mut same, "other", &hints, V, "2026-11-23T16:16:24Z", None);
        assert_eq!(fields_of(&same).len(), 3);
        let mut removed = new.clone();
        removed["spec"].as_object_mut().unwrap().remove("nested");
        record_update(Some(&new), &mut removed, "remover", &hints, V, "2026-11-23T16:16:25Z", None);
        let got = fields_of(&removed);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].2, json!({"f:spec":{"f:items":{"k:{\"name\":\"y\"}":{".":{},"f:name":{}}}}}));
    }

    #[test]
    fn status_subresource_entries_are_separate() {
        let hints = widget_hints();
        let old = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w"},"status":{"phase":"Running"}});
        let mut new = old.clone();
        new["status"]["phase"] = json!("Done");
        record_update(Some(&old), &mut new, "st2", &hints, V, "2026-11-23T16:16:23Z", Some("status"));
        let entry = &new["metadata"]["managedFields"][0];
        assert_eq!(entry["subresource"], "status");
        assert_eq!(entry["fieldsV1"], json!({"f:status":{"f:phase":{}}}));
    }

    #[test]
    fn reset_and_cap() {
        let hints = widget_hints();
        let mut obj = json!({"apiVersion":V,"kind":"Widget","metadata":{"name":"w"},"spec":{}});
        for i in 0..12 {
            let old = obj.clone();
            obj["spec"][format!("k{i}")] = json!(i);
            let t = format!("2026-11-23T16:16:{i:02}Z");
            record_update(Some(&old), &mut obj, &format!("m{i:02}"), &hints, V, &t, None);
        }
        let got = fields_of(&obj);
        assert_eq!(got.len(), 10);
        assert_eq!(got[0].0, "ancient-changes");
        assert_eq!(got[0].2, json!({"f:spec":{"f:k0":{},"f:k1":{},"f:k2":{}}}));
        let old = obj.clone();
        obj["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&old), &mut obj, "x", &hints, V, "2026-11-23T16:17:00Z", None);
        assert!(obj["metadata"].get("managedFields").is_none());
    }
}
