//! Authorization: RBAC as kube-apiserver's RBAC authorizer evaluates it (Roles, ClusterRoles and
//! their bindings), the `system:masters` short-circuit, impersonation, and the bootstrap policy a
//! fresh cluster starts with.

mod attributes;
mod bootstrap;
mod decide;
mod impersonate;
mod rules;

pub use attributes::{Attributes, Scope};
pub use bootstrap::bootstrap_policy;
pub use decide::{authorize, rules_for, Decision, Policy};
pub use impersonate::{impersonate, ImpersonationError};
