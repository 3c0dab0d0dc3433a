//! The Ephemera operator: reconciles Tasks into worker Pods (filled in by the operator issue).
