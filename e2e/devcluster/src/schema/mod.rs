//! Structural-schema handling for custom resources: defaulting, pruning and validation of an object
//! against a CRD version's `openAPIV3Schema`, producing the same causes (reason, field, message) as a
//! real kube-apiserver (Kubernetes 1.36).
//!
//! The request pipeline of the real server, which callers should follow:
//! 1. [`prune`] (drops unknown fields, then non-nullable `null`s that have no default),
//! 2. [`apply_defaults`],
//! 3. [`validate`] (OpenAPI value validation, then embedded-resource checks, then list-type checks),
//!    then [`cel::validate`] (the `x-kubernetes-validations` rules) unless a blocking error came first,
//! 4. on errors, a 422 Status whose message is [`invalid_message`].
//!
//! Where the real server's order of errors is random (it walks Go maps), this module sorts by
//! property name so results are deterministic.

pub mod cel;
mod defaults;
mod embedded;
mod format;
mod formats;
mod listtype;
mod node;
mod numeric;
mod path;
mod prune;
mod structural;
mod validate;

pub use defaults::apply_defaults;
pub use format::invalid_message;
pub use prune::prune;
pub use structural::check_structural;
pub use validate::validate;

/// One field-level error, as it appears in a Status's `details.causes`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The cause type, e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    /// `FieldValueTooLong`, `FieldValueTooMany`, `FieldValueTypeInvalid`, `FieldValueDuplicate`,
    /// `FieldValueForbidden`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.items[2].name`; `<nil>` for errors the real server reports
    /// without a path (e.g. `anyOf` failures).
    pub field: String,
    /// The cause message, e.g. `Invalid value: 2000: spec.priority in body should be less than or
    /// equal to 1000`.
    pub message: String,
}

#[cfg(test)]
mod tests;
