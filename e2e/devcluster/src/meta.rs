//! Object metadata helpers: timestamps, uids, generated names and name validation.

use serde_json::Value;

/// Now as a Kubernetes `Time` (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now as a Kubernetes `MicroTime`.
pub fn now_micro() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable; fall back to time-derived bytes rather than panic.
    if getrandom::fill(&mut b).is_err() {
        let t = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % t.len()] ^ (i as u8);
        }
    }
    b
}

/// A random version-4 UUID.
pub fn uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The 5-character suffix `generateName` appends (same alphabet as Kubernetes: no vowels, no
/// confusable digits).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>().iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// RFC 1123 subdomain check (`metadata.name` of most kinds); returns the message a real server gives.
pub fn dns_subdomain_error(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    (!ok).then(|| MSG.to_string())
}

/// RFC 1123 label check (namespace names).
pub fn dns_label_error(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !name.is_empty()
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| MSG.to_string())
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.resourceVersion` parsed.
pub fn rv_of(obj: &Value) -> Option<u64> {
    meta_str(obj, "resourceVersion")?.parse().ok()
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuids() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uid());
    }

    #[test]
    fn names_are_checked_like_kubernetes() {
        assert!(dns_subdomain_error("my-task.v1").is_none());
        assert!(dns_subdomain_error("My_Task").is_some());
        assert!(dns_label_error("a.b").is_some());
        assert_eq!(name_suffix().len(), 5);
    }
}

const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn qualified_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Problems with a label or annotation key (`[prefix/]name`), as upstream words them.
fn key_problems(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_string());
        } else if let Some(msg) = dns_subdomain_error(p) {
            out.push(format!("prefix part {msg}"));
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".into());
    } else if !qualified_part_ok(name) {
        out.push(NAME_PART_MSG.into());
    }
    out
}

/// Validates `metadata.labels` and `metadata.annotations` like `ValidateObjectMeta`:
/// (field, reason, message) triples.
pub fn label_and_annotation_errors(obj: &Value) -> Vec<(String, &'static str, String)> {
    let mut errs = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for p in key_problems(k) {
                errs.push(("metadata.labels".to_string(), "FieldValueInvalid", format!("Invalid value: {k:?}: {p}")));
            }
            let v = v.as_str().unwrap_or_default();
            if v.len() > 63 {
                errs.push((
                    "metadata.labels".into(),
                    "FieldValueInvalid",
                    format!("Invalid value: {v:?}: must be no more than 63 characters"),
                ));
            } else if !v.is_empty() && !qualified_part_ok(v) {
                errs.push((
                    "metadata.labels".into(),
                    "FieldValueInvalid",
                    format!("Invalid value: {v:?}: {LABEL_VALUE_MSG}"),
                ));
            }
        }
    }
    if let Some(ann) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0usize;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            for p in key_problems(&k.to_lowercase()) {
                errs.push((
                    "metadata.annotations".to_string(),
                    "FieldValueInvalid",
                    format!("Invalid value: {k:?}: {p}"),
                ));
            }
        }
        if total > 262_144 {
            errs.push((
                "metadata.annotations".into(),
                "FieldValueTooLong",
                "Too long: may not be more than 262144 bytes".into(),
            ));
        }
    }
    errs
}

/// The fields `ObjectMeta` has; anything else in `metadata` is an unknown field.
pub const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

#[cfg(test)]
mod meta_validation_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_annotations_are_checked_like_upstream() {
        let ok = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web", "empty": ""}, "annotations": {"Example.com/Note": "x"}}});
        assert!(label_and_annotation_errors(&ok).is_empty());
        let bad = json!({"metadata": {"labels": {"bad key!": "v", "ok": "bad value!"}}});
        let errs = label_and_annotation_errors(&bad);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].2.starts_with("Invalid value: \"bad key!\": name part must consist"));
        let big = json!({"metadata": {"annotations": {"a": "x".repeat(300_000)}}});
        assert_eq!(label_and_annotation_errors(&big)[0].2, "Too long: may not be more than 262144 bytes");
    }
}
