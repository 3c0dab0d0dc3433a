//! The resource registry: which resources exist (built-in kinds plus every established CRD), and how
//! each is named, scoped, versioned, validated and printed.

mod builtin;
mod convert;
mod crd;
mod defaults;
pub mod service;

use std::sync::Arc;

use serde_json::Value;

use crate::store::ResKey;

pub use builtin::builtins;
pub use convert::{converts, to_served, to_storage};
pub use crd::{crd_status, from_crd};
pub use defaults::{pod_defaults, workload_defaults};

/// A printer column (`additionalPrinterColumns`).
#[derive(Debug, Clone)]
pub struct Column {
    /// Header.
    pub name: String,
    /// OpenAPI type of the cell (string, integer, number, boolean, date).
    pub type_: String,
    /// Optional format.
    pub format: String,
    /// Description.
    pub description: String,
    /// Priority (0 shown by default, >0 only with `-o wide`).
    pub priority: i64,
    /// JSONPath (simple `.a.b[0].c` form).
    pub json_path: String,
}

/// One served version of a resource.
#[derive(Debug, Clone)]
pub struct Version {
    /// Version name, e.g. `v1alpha1`.
    pub name: String,
    /// Structural schema for custom resources (None for built-ins: no schema validation).
    pub schema: Option<Value>,
    /// Printer columns; empty means the default Name/Age table.
    pub columns: Vec<Column>,
    /// Whether `/status` is a subresource.
    pub status_subresource: bool,
}

/// A resource the server serves.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group ("" = core).
    pub group: String,
    /// Plural name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// List kind.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (e.g. `all`).
    pub categories: Vec<String>,
    /// Served versions, the preferred (storage) one first.
    pub versions: Vec<Version>,
    /// Verbs for discovery.
    pub verbs: Vec<&'static str>,
    /// True for custom resources (validated and pruned by their schema).
    pub custom: bool,
    /// List-type hints for server-side apply and strategic merge (openAPIV3Schema form).
    pub hints: Value,
    /// Field selectors allowed besides metadata.name/namespace.
    pub field_selectors: Vec<&'static str>,
    /// Extra subresources served (e.g. `log`, `token`).
    pub extra_subresources: Vec<&'static str>,
}

impl ResourceType {
    /// Storage key.
    pub fn key(&self) -> ResKey {
        // events.k8s.io/v1 Events are core/v1 Events in storage (see `convert`).
        if self.group == "events.k8s.io" && self.plural == "events" {
            return ResKey::new("", "events");
        }
        ResKey::new(&self.group, &self.plural)
    }

    /// The named version, if served.
    pub fn version(&self, v: &str) -> Option<&Version> {
        self.versions.iter().find(|x| x.name == v)
    }

    /// `group/version` or `version` for core.
    pub fn api_version(&self, v: &str) -> String {
        if self.group.is_empty() {
            v.to_string()
        } else {
            format!("{}/{}", self.group, v)
        }
    }
}

/// The full set of served resources at one moment (rebuilt when CRDs change).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Every resource.
    pub types: Vec<Arc<ResourceType>>,
}

impl Registry {
    /// Built-ins plus the given established CRDs.
    pub fn build(crds: &[Arc<Value>]) -> Self {
        let mut types: Vec<Arc<ResourceType>> = builtins().into_iter().map(Arc::new).collect();
        for crd in crds {
            if let Some(rt) = from_crd(crd) {
                types.push(Arc::new(rt));
            }
        }
        Self { types }
    }

    /// Finds a resource by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.iter().find(|t| t.group == group && t.plural == plural && t.version(version).is_some()).cloned()
    }

    /// Finds a resource by group and plural, any version.
    pub fn find_any(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.iter().find(|t| t.group == group && t.plural == plural).cloned()
    }

    /// Every group (other than core) with its versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            let entry = match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some(e) => e,
                None => {
                    out.push((t.group.clone(), Vec::new()));
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            for v in &t.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Resources served in one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
        self.types.iter().filter(move |t| t.group == group && t.version(version).is_some())
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by numbers.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]);
    }
}
