//! Field ownership and merging, as a real kube-apiserver does them: server-side apply with
//! managedFields (FieldsV1), ownership tracking for Update operations (create, update, patch), and
//! strategic merge patch.
//!
//! List and map semantics come from a type-hints schema in openAPIV3Schema form
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`, `properties`,
//! `items`, `additionalProperties`); where it says nothing, maps are granular and lists atomic. The
//! algorithms follow structured-merge-diff (apply, ownership) and apimachinery's strategicpatch.

mod apply;
mod combine;
mod compare;
pub mod fieldset;
pub mod hints;
mod managed;
pub mod path;
mod remove;
mod strategic;
#[cfg(test)]
mod test_schema;
mod typed;

use serde_json::Value;

pub use apply::{apply, conflict_message};
// Optional API: for callers that want the message of a malformed configuration as an error type.
#[allow(unused_imports)]
pub use apply::{try_apply, ApplyError};
pub use hints::metadata_hints;
pub use managed::record_update;
pub use strategic::strategic_merge;

/// A field manager conflict (for 409 Conflict: details.causes[] = {reason:"FieldManagerConflict",
/// message, field}).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Name of the manager owning the field.
    pub manager: String,
    /// API version of that manager's entry.
    pub api_version: String,
    /// The field, e.g. `.spec.replicas` or `.spec.items[name="x"].value`.
    pub field: String,
    /// The cause message, e.g. `conflict with "kubectl-client-side-apply" using v1` (Update
    /// entries name their version, Apply entries don't).
    pub message: String,
}

/// Input of [`apply`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The stored object, `None` when apply creates it.
    pub live: Option<&'a Value>,
    /// The applied configuration.
    pub config: &'a Value,
    /// The field manager (`fieldManager` query parameter).
    pub manager: &'a str,
    /// `force=true`: take conflicting fields away from their owners.
    pub force: bool,
    /// Type hints of the kind (see the module doc).
    pub hints: &'a Value,
    /// apiVersion of the request, recorded in the entry.
    pub api_version: &'a str,
    /// Current time, RFC 3339 with seconds.
    pub now: &'a str,
    /// `Some("status")` for applies to a subresource.
    pub subresource: Option<&'a str>,
}
