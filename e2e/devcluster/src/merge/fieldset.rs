//! Sets of field paths, the content of a managedFields entry's `fieldsV1`.
//!
//! A set is a tree: `members` are paths that end at this node, `children` hold the longer paths.
//! In FieldsV1 a member is `"f:x":{}`; a path that is both a member and a prefix of other members
//! carries `".":{}` inside its object.

use super::path::{path_to_string, PathElement};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A set of field paths (structured-merge-diff's `fieldpath.Set`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// True when the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds one path; the empty path (the object itself) is ignored.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// True when exactly this path is in the set.
    #[cfg(test)]
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// True when `pe` is a member at the top level of this set.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// Borrowed view of the paths below `pe`.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe).filter(|c| !c.is_empty())
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out.prune();
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Paths in `self` that are not exactly paths of `other` (longer paths are kept).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// All paths, members of a node before the paths below it (the order conflicts are listed in).
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// All paths in message form, e.g. `.spec.replicas`, `.spec.items[name="x"].value`.
    pub fn leaf_strings(&self) -> Vec<String> {
        self.paths().iter().map(|p| path_to_string(p)).collect()
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub(crate) fn set_child(&mut self, pe: PathElement, child: FieldSet) {
        if child.is_empty() {
            self.children.remove(&pe);
        } else {
            self.children.insert(pe, child);
        }
    }

    // Empty child sets carry no path; dropping them keeps equality and JSON output canonical.
    fn prune(&mut self) {
        self.children.retain(|_, c| {
            c.prune();
            !c.is_empty()
        });
    }

    /// The FieldsV1 JSON form, keys in the real server's order.
    pub fn to_json(&self) -> Value {
        Value::Object(self.to_json_map(false))
    }

    fn to_json_map(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        // Members and children are emitted merged in element order, as the real encoder does.
        let mut keys: BTreeSet<&PathElement> = self.members.iter().collect();
        keys.extend(self.children.iter().filter(|(_, c)| !c.is_empty()).map(|(k, _)| k));
        for pe in keys {
            let is_member = self.members.contains(pe);
            let value = match self.children.get(pe).filter(|c| !c.is_empty()) {
                Some(child) => Value::Object(child.to_json_map(is_member)),
                None => Value::Object(Map::new()),
            };
            out.insert(pe.to_key(), value);
        }
        out
    }

    /// Parses FieldsV1 JSON.
    pub fn from_json(value: &Value) -> Result<FieldSet, String> {
        let map = value.as_object().ok_or_else(|| "fieldsV1 must be an object".to_string())?;
        let mut out = FieldSet::new();
        for (key, sub) in map {
            if key == "." {
                continue;
            }
            let pe = PathElement::from_key(key)?;
            let sub_map = sub.as_object().ok_or_else(|| format!("fieldsV1 entry {key} must be an object"))?;
            if sub_map.is_empty() || sub_map.contains_key(".") {
                out.members.insert(pe.clone());
            }
            let child = FieldSet::from_json(sub)?;
            if !child.is_empty() {
                out.children.insert(pe, child);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    #[test]
    fn json_round_trip_matches_real_fields_v1() {
        // Recorded from the real server (create of a Widget by an Update manager).
        let real = json!({"f:metadata":{"f:finalizers":{".":{},"v:\"x/y\"":{}},"f:labels":{".":{},"f:a":{}}},
            "f:spec":{".":{},"f:items":{".":{},"k:{\"name\":\"x\"}":{".":{},"f:name":{},"f:value":{}}},
            "f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{},"f:protocol":{}}},
            "f:replicas":{}}});
        let set = FieldSet::from_json(&real).unwrap();
        assert_eq!(set.to_json(), real);
        assert!(set.has(&[f("spec"), f("replicas")]));
        assert!(set.has(&[f("spec")]));
        assert!(!set.has(&[f("metadata")]));
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_json(&json!({"f:spec":{"f:a":{},"f:b":{}}})).unwrap();
        let b = FieldSet::from_json(&json!({"f:spec":{".":{},"f:b":{},"f:c":{}}})).unwrap();
        assert_eq!(a.union(&b).to_json(), json!({"f:spec":{".":{},"f:a":{},"f:b":{},"f:c":{}}}));
        assert_eq!(a.intersection(&b).to_json(), json!({"f:spec":{"f:b":{}}}));
        assert_eq!(a.difference(&b).to_json(), json!({"f:spec":{"f:a":{}}}));
        assert_eq!(b.difference(&b), FieldSet::new());
        // Difference removes exact paths only: owning `.spec` does not cover `.spec.a`.
        let whole_spec = FieldSet::from_json(&json!({"f:spec":{}})).unwrap();
        assert_eq!(a.difference(&whole_spec), a);
    }

    #[test]
    fn paths_list_members_before_children() {
        let s =
            FieldSet::from_json(&json!({"f:spec":{"f:items":{"k:{\"name\":\"x\"}":{"f:value":{}}},"f:replicas":{}}}))
                .unwrap();
        assert_eq!(s.leaf_strings(), [".spec.replicas", ".spec.items[name=\"x\"].value"]);
    }

    #[test]
    fn rejects_malformed_json() {
        assert!(FieldSet::from_json(&json!([])).is_err());
        assert!(FieldSet::from_json(&json!({"x:y":{}})).is_err());
        assert!(FieldSet::from_json(&json!({"f:y":1})).is_err());
    }
}
