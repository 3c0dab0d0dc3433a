//! Version conversion for resources that one storage serves under two APIs. Events are stored once,
//! as core/v1, and served as `events.k8s.io/v1` too (as upstream), so `kubectl get events` shows
//! what controllers record through the newer API and the other way round.

use serde_json::{Map, Value};

use super::ResourceType;

/// (events.k8s.io/v1 field, core/v1 field) pairs that differ only in name.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_new_events(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events"
}

/// Whether objects of this resource are converted between storage and the served form.
pub fn converts(rt: &ResourceType) -> bool {
    is_new_events(rt)
}

fn rename(obj: &Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) -> Value {
    let Some(m) = obj.as_object() else { return obj.clone() };
    let mut out: Map<String, Value> = m.clone();
    for (from, to) in pairs {
        if let Some(v) = out.remove(from) {
            out.insert(to.to_string(), v);
        }
    }
    Value::Object(out)
}

/// Stored form → the form this resource is served in.
pub fn to_served(rt: &ResourceType, obj: &Value) -> Value {
    if !is_new_events(rt) {
        return obj.clone();
    }
    rename(obj, EVENT_FIELDS.iter().map(|(new, old)| (*old, *new)))
}

/// Served form → stored form.
pub fn to_storage(rt: &ResourceType, obj: &Value) -> Value {
    if !is_new_events(rt) {
        return obj.clone();
    }
    let mut v = rename(obj, EVENT_FIELDS.iter().copied());
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String("v1".into()));
        m.insert("kind".into(), Value::String("Event".into()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_apis() {
        let rt = crate::resources::builtins().into_iter().find(|r| r.group == "events.k8s.io").unwrap();
        let served = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"name": "p"}, "note": "hi", "reportingController": "op", "reason": "Started"});
        let stored = to_storage(&rt, &served);
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "hi");
        assert_eq!(stored["reportingComponent"], "op");
        assert_eq!(stored["apiVersion"], "v1");
        let back = to_served(&rt, &stored);
        assert_eq!(back["note"], "hi");
        assert_eq!(back["regarding"]["name"], "p");
    }
}
