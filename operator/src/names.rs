//! Every name and label the operator gives what it creates, in one place: they must be deterministic
//! (a restarted operator finds what it made), fit Kubernetes' limits, and never let two Tasks share a
//! credential record.

/// `app.kubernetes.io/managed-by` on everything the operator creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ephemera-operator");
/// Label every managed Pod carries (the controller watches only these).
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=ephemera-operator";
/// Label naming the Task.
pub const TASK_LABEL: &str = "ephemera.dev/task";
/// Label with the attempt number.
pub const ATTEMPT_LABEL: &str = "ephemera.dev/attempt";

// Attempt Pod names are part of the lifecycle (it records them before the Pod exists).
pub use ephemera_lifecycle::names::{pod_name, task_label};

/// Label: the Task's uid (attempt records).
pub const TASK_UID_LABEL: &str = "ephemera.dev/task-uid";

/// The attempt's reporting Secret (in the Task's namespace; no Vault token in it).
pub fn reporting_secret_name(pod_name: &str) -> String {
    format!("{pod_name}-attempt")
}

/// An attempt record's name: `attempt-<task uid>-<attempt>` (a uid is unique, a shortened name is not).
pub fn attempt_record_name(task_uid: &str, attempt: i32) -> String {
    format!("attempt-{task_uid}-{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_deterministic_and_fit() {
        assert_eq!(pod_name("deploy", 2), "deploy-2");
        let long = "a".repeat(80);
        let n = pod_name(&long, 10);
        assert!(task_label(&long).len() <= 63);
        assert!(n.len() <= 63 && n.ends_with("-10"));
        assert_eq!(n, pod_name(&long, 10));
        assert_ne!(pod_name(&format!("{long}x"), 10), n);
    }

    #[test]
    fn records_of_long_or_similar_task_names_never_share_a_name() {
        // Names come from the uid, not the (possibly shortened) Task name.
        assert_ne!(attempt_record_name("uid-1", 1), attempt_record_name("uid-2", 1));
        assert_ne!(attempt_record_name("uid-1", 1), attempt_record_name("uid-1", 11));
        assert_eq!(reporting_secret_name("deploy-2"), "deploy-2-attempt");
    }
}
