//! The operator's durable record of one attempt's Vault token: a Secret in the operator's own
//! namespace (never the Task's, where the stock `edit` role can read Secrets), named from the Task's
//! uid and the attempt (collision-free, whatever the Task's name). It holds the one-time wrapping
//! token until the hand-off releases it to the attempt's own Pod, the child token's accessor until it
//! is revoked, and which Pod (name and uid) may claim it. Its existence is the record that a token may
//! still be live, so revocation survives operator restarts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::ResourceExt;

pub use crate::names::attempt_record_name as name;
use crate::names::{ATTEMPT_LABEL, MANAGED_BY, TASK_UID_LABEL};
/// Annotation: the Task's namespace.
const NAMESPACE_ANNOTATION: &str = "ephemera.dev/namespace";
/// Annotation: the Task's name.
const TASK_ANNOTATION: &str = "ephemera.dev/task";
/// Annotation: the attempt's Pod name.
const POD_ANNOTATION: &str = "ephemera.dev/pod";
/// Annotation: the uid of the Pod the operator created for the attempt (set right after creating it).
const POD_UID_ANNOTATION: &str = "ephemera.dev/pod-uid";
/// Annotation: when the child token expires on its own (RFC 3339).
const EXPIRES_ANNOTATION: &str = "ephemera.dev/token-expires";
/// Annotation: when the wrapping token stops being unwrappable (RFC 3339).
const WRAP_EXPIRES_ANNOTATION: &str = "ephemera.dev/wrap-expires";
/// Annotation: when the hand-off released the wrapping token (RFC 3339).
const RELEASED_ANNOTATION: &str = "ephemera.dev/released";
/// Data key: the wrapping token (removed when released).
const WRAPPING_KEY: &str = "wrapping-token";
/// Data key: the child token's accessor.
const ACCESSOR_KEY: &str = "accessor";

/// Which attempt a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The Task's namespace.
    pub namespace: String,
    /// The Task's name.
    pub task: String,
    /// The Task's uid.
    pub task_uid: String,
    /// The attempt.
    pub attempt: i32,
    /// The attempt's Pod name.
    pub pod: String,
}

/// A new record for `owner` holding `wrapping` and `accessor`.
pub fn build(
    owner: &Owner,
    ns: &str,
    wrapping: &str,
    accessor: &str,
    token_expires: &str,
    wrap_expires: &str,
) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name(&owner.task_uid, owner.attempt));
    s.metadata.namespace = Some(ns.to_string());
    s.metadata.labels = Some(BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (TASK_UID_LABEL.to_string(), owner.task_uid.clone()),
        (ATTEMPT_LABEL.to_string(), owner.attempt.to_string()),
    ]));
    s.metadata.annotations = Some(BTreeMap::from([
        (NAMESPACE_ANNOTATION.to_string(), owner.namespace.clone()),
        (TASK_ANNOTATION.to_string(), owner.task.clone()),
        (POD_ANNOTATION.to_string(), owner.pod.clone()),
        (EXPIRES_ANNOTATION.to_string(), token_expires.to_string()),
        (WRAP_EXPIRES_ANNOTATION.to_string(), wrap_expires.to_string()),
    ]));
    s.type_ = Some("Opaque".into());
    s.data = Some(BTreeMap::from([
        (WRAPPING_KEY.to_string(), ByteString(wrapping.as_bytes().to_vec())),
        (ACCESSOR_KEY.to_string(), ByteString(accessor.as_bytes().to_vec())),
    ]));
    s
}

/// What a record says, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Whose it is.
    pub owner: Owner,
    /// The recorded Pod uid (empty until the operator created the Pod).
    pub pod_uid: String,
    /// The child token's accessor.
    pub accessor: Option<String>,
    /// Whether the wrapping token is still there (not yet released).
    pub holds_wrapping_token: bool,
    /// Child token expiry (RFC 3339).
    pub token_expires: String,
    /// Wrapping token expiry (RFC 3339).
    pub wrap_expires: String,
}

/// Reads a record (None: not a well-formed record of ours).
pub fn view(s: &Secret) -> Option<View> {
    let labels = s.labels();
    if labels.get(MANAGED_BY.0).map(String::as_str) != Some(MANAGED_BY.1) {
        return None;
    }
    let a = s.annotations();
    let get = |k: &str| a.get(k).cloned().unwrap_or_default();
    let owner = Owner {
        namespace: get(NAMESPACE_ANNOTATION),
        task: get(TASK_ANNOTATION),
        task_uid: labels.get(TASK_UID_LABEL)?.clone(),
        attempt: labels.get(ATTEMPT_LABEL)?.parse().ok()?,
        pod: get(POD_ANNOTATION),
    };
    let data = s.data.as_ref();
    Some(View {
        pod_uid: get(POD_UID_ANNOTATION),
        accessor: data
            .and_then(|d| d.get(ACCESSOR_KEY))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|a| !a.is_empty()),
        holds_wrapping_token: data.is_some_and(|d| d.get(WRAPPING_KEY).is_some_and(|b| !b.0.is_empty())),
        token_expires: get(EXPIRES_ANNOTATION),
        wrap_expires: get(WRAP_EXPIRES_ANNOTATION),
        owner,
    })
}

/// The wrapping token, if still held.
pub fn wrapping_token(s: &Secret) -> Option<secrecy::SecretString> {
    let b = s.data.as_ref()?.get(WRAPPING_KEY)?;
    (!b.0.is_empty()).then(|| secrecy::SecretString::from(String::from_utf8_lossy(&b.0).into_owned()))
}

/// `s` with the Pod uid recorded.
pub fn with_pod_uid(mut s: Secret, pod_uid: &str) -> Secret {
    s.annotations_mut().insert(POD_UID_ANNOTATION.into(), pod_uid.into());
    s
}

/// `s` with the wrapping token taken out and the release time recorded.
pub fn released(mut s: Secret, at: &str) -> Secret {
    if let Some(d) = s.data.as_mut() {
        d.remove(WRAPPING_KEY);
    }
    s.annotations_mut().insert(RELEASED_ANNOTATION.into(), at.into());
    s
}

/// The label selector of one Task's records.
pub fn selector(task_uid: &str) -> String {
    format!("{}={},{}={}", MANAGED_BY.0, MANAGED_BY.1, TASK_UID_LABEL, task_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            namespace: "team-a".into(),
            task: "deploy".into(),
            task_uid: "0b6c1d2e-aaaa-bbbb-cccc-000000000001".into(),
            attempt: 2,
            pod: "deploy-2".into(),
        }
    }

    #[test]
    fn a_record_reads_back_and_releases_its_wrapping_token_once() {
        let s = build(&owner(), "ephemera-system", "hvs.wrap", "acc1", "2026-12-01T10:00:00Z", "2026-12-01T09:05:00Z");
        assert_eq!(s.metadata.name.as_deref(), Some("attempt-0b6c1d2e-aaaa-bbbb-cccc-000000000001-2"));
        let v = view(&s).unwrap();
        assert_eq!(v.owner, owner());
        assert!(v.holds_wrapping_token && v.pod_uid.is_empty());
        assert_eq!(v.accessor.as_deref(), Some("acc1"));
        let s = with_pod_uid(s, "pod-uid-1");
        assert_eq!(view(&s).unwrap().pod_uid, "pod-uid-1");
        let s = released(s, "2026-12-01T09:01:00Z");
        let v = view(&s).unwrap();
        assert!(!v.holds_wrapping_token && wrapping_token(&s).is_none());
        assert_eq!(v.accessor.as_deref(), Some("acc1"), "the accessor stays until the token is revoked");
    }

    #[test]
    fn a_secret_without_our_labels_is_not_a_record() {
        let mut s = build(&owner(), "ns", "w", "a", "", "");
        s.labels_mut().remove(MANAGED_BY.0);
        assert!(view(&s).is_none());
    }
}
