//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON
//! for the built-in kinds that kubectl's typed clients send that way (`kubectl create namespace`,
//! `create configmap`, `create secret`, `create serviceaccount`, `create token`, `create role`,
//! `create rolebinding` and their cluster-wide forms). Field numbers are
//! those of the upstream `generated.proto` files.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// How a field is encoded.
enum Kind {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    RepStr,
    RepMsg(&'static [Field]),
    MapStr,
    MapBytes,
}

struct Field(u32, &'static str, Kind);

const TYPE_META: &[Field] = &[Field(1, "apiVersion", Kind::Str), Field(2, "kind", Kind::Str)];
const OWNER_REF: &[Field] = &[
    Field(1, "kind", Kind::Str),
    Field(3, "name", Kind::Str),
    Field(4, "uid", Kind::Str),
    Field(5, "apiVersion", Kind::Str),
    Field(6, "controller", Kind::Bool),
    Field(7, "blockOwnerDeletion", Kind::Bool),
];
const OBJECT_META: &[Field] = &[
    Field(1, "name", Kind::Str),
    Field(2, "generateName", Kind::Str),
    Field(3, "namespace", Kind::Str),
    Field(5, "uid", Kind::Str),
    Field(6, "resourceVersion", Kind::Str),
    Field(7, "generation", Kind::Int),
    Field(8, "creationTimestamp", Kind::Time),
    Field(9, "deletionTimestamp", Kind::Time),
    Field(10, "deletionGracePeriodSeconds", Kind::Int),
    Field(11, "labels", Kind::MapStr),
    Field(12, "annotations", Kind::MapStr),
    Field(13, "ownerReferences", Kind::RepMsg(OWNER_REF)),
    Field(14, "finalizers", Kind::RepStr),
];
const NAMESPACE: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "spec", Kind::Msg(&[Field(1, "finalizers", Kind::RepStr)])),
    Field(3, "status", Kind::Msg(&[Field(1, "phase", Kind::Str)])),
];
const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "data", Kind::MapStr),
    Field(3, "binaryData", Kind::MapBytes),
    Field(4, "immutable", Kind::Bool),
];
const SECRET: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "data", Kind::MapBytes),
    Field(3, "type", Kind::Str),
    Field(4, "stringData", Kind::MapStr),
    Field(5, "immutable", Kind::Bool),
];
const OBJECT_REF: &[Field] = &[
    Field(1, "kind", Kind::Str),
    Field(2, "namespace", Kind::Str),
    Field(3, "name", Kind::Str),
    Field(4, "uid", Kind::Str),
    Field(5, "apiVersion", Kind::Str),
];
const SERVICE_ACCOUNT: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "secrets", Kind::RepMsg(OBJECT_REF)),
    Field(3, "imagePullSecrets", Kind::RepMsg(&[Field(1, "name", Kind::Str)])),
    Field(4, "automountServiceAccountToken", Kind::Bool),
];
const TOKEN_REQUEST: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(
        2,
        "spec",
        Kind::Msg(&[
            Field(1, "audiences", Kind::RepStr),
            Field(
                3,
                "boundObjectRef",
                Kind::Msg(&[
                    Field(1, "kind", Kind::Str),
                    Field(2, "apiVersion", Kind::Str),
                    Field(3, "name", Kind::Str),
                    Field(4, "uid", Kind::Str),
                ]),
            ),
            Field(4, "expirationSeconds", Kind::Int),
        ]),
    ),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    Field(1, "namespace", Kind::Str),
    Field(2, "verb", Kind::Str),
    Field(3, "group", Kind::Str),
    Field(4, "version", Kind::Str),
    Field(5, "resource", Kind::Str),
    Field(6, "subresource", Kind::Str),
    Field(7, "name", Kind::Str),
];
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(
        2,
        "spec",
        Kind::Msg(&[
            Field(1, "resourceAttributes", Kind::Msg(RESOURCE_ATTRIBUTES)),
            Field(2, "nonResourceAttributes", Kind::Msg(&[Field(1, "path", Kind::Str), Field(2, "verb", Kind::Str)])),
        ]),
    ),
];
const SELF_SUBJECT_RULES_REVIEW: &[Field] =
    &[Field(1, "metadata", Kind::Msg(OBJECT_META)), Field(2, "spec", Kind::Msg(&[Field(1, "namespace", Kind::Str)]))];
const POLICY_RULE: &[Field] = &[
    Field(1, "verbs", Kind::RepStr),
    Field(2, "apiGroups", Kind::RepStr),
    Field(3, "resources", Kind::RepStr),
    Field(4, "resourceNames", Kind::RepStr),
    Field(5, "nonResourceURLs", Kind::RepStr),
];
const LABEL_SELECTOR: &[Field] = &[
    Field(1, "matchLabels", Kind::MapStr),
    Field(
        2,
        "matchExpressions",
        Kind::RepMsg(&[Field(1, "key", Kind::Str), Field(2, "operator", Kind::Str), Field(3, "values", Kind::RepStr)]),
    ),
];
const ROLE: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "rules", Kind::RepMsg(POLICY_RULE)),
    Field(3, "aggregationRule", Kind::Msg(&[Field(1, "clusterRoleSelectors", Kind::RepMsg(LABEL_SELECTOR))])),
];
const ROLE_BINDING: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(
        2,
        "subjects",
        Kind::RepMsg(&[
            Field(1, "kind", Kind::Str),
            Field(2, "apiGroup", Kind::Str),
            Field(3, "name", Kind::Str),
            Field(4, "namespace", Kind::Str),
        ]),
    ),
    Field(
        3,
        "roleRef",
        Kind::Msg(&[Field(1, "apiGroup", Kind::Str), Field(2, "kind", Kind::Str), Field(3, "name", Kind::Str)]),
    ),
];
const DELETE_OPTIONS: &[Field] = &[
    Field(1, "gracePeriodSeconds", Kind::Int),
    Field(2, "preconditions", Kind::Msg(&[Field(1, "uid", Kind::Str), Field(2, "resourceVersion", Kind::Str)])),
    Field(3, "orphanDependents", Kind::Bool),
    Field(4, "propagationPolicy", Kind::Str),
    Field(5, "dryRun", Kind::RepStr),
    Field(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Kind::Bool),
];
const METADATA_ONLY: &[Field] = &[Field(1, "metadata", Kind::Msg(OBJECT_META))];

fn schema_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "TokenRequest" => TOKEN_REQUEST,
        "SelfSubjectReview" => METADATA_ONLY,
        "SelfSubjectAccessReview" => SELF_SUBJECT_ACCESS_REVIEW,
        "SelfSubjectRulesReview" => SELF_SUBJECT_RULES_REVIEW,
        // Role has no aggregationRule upstream; its field 3 never appears in a Role's encoding.
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        // Helm's typed client deletes its release Secrets with protobuf options.
        "DeleteOptions" => DELETE_OPTIONS,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        if n > self.buf.len() {
            return Err("truncated field".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Skips a field of the given wire type.
    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4),
            _ => Err(format!("unsupported wire type {wire}")),
        }
    }

    fn take(&mut self, n: usize) -> Result<(), String> {
        if n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string field".to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b };
    let (mut k, mut v) = (String::new(), json!(""));
    while !r.buf.is_empty() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) if bytes_value => v = json!(STANDARD.encode(r.bytes()?)),
            (2, 2) => v = json!(utf8(r.bytes()?)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b };
    let mut secs = 0i64;
    while !r.buf.is_empty() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (_, wire) => r.skip(wire)?,
        }
    }
    let ts = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn message(b: &[u8], fields: &[Field]) -> Result<Value, String> {
    let mut r = Reader { buf: b };
    let mut out = Map::new();
    while !r.buf.is_empty() {
        let key = r.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let Some(Field(_, name, kind)) = fields.iter().find(|f| u64::from(f.0) == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = (*name).to_string();
        match (kind, wire) {
            (Kind::Str, 2) => {
                // Empty optional strings mean "unset" (Go's omitempty on the way back to JSON).
                let v = utf8(r.bytes()?)?;
                if !v.is_empty() {
                    out.insert(name, json!(v));
                }
            }
            (Kind::Int, 0) => {
                out.insert(name, json!(r.varint()? as i64));
            }
            (Kind::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (Kind::Time, 2) => {
                out.insert(name, time(r.bytes()?)?);
            }
            (Kind::Msg(sub), 2) => {
                out.insert(name, message(r.bytes()?, sub)?);
            }
            (Kind::RepStr, 2) => {
                let s = json!(utf8(r.bytes()?)?);
                push(&mut out, name, s);
            }
            (Kind::RepMsg(sub), 2) => {
                let m = message(r.bytes()?, sub)?;
                push(&mut out, name, m);
            }
            (Kind::MapStr | Kind::MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, Kind::MapBytes))?;
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, v);
                }
            }
            (_, wire) => return Err(format!("field {num} has unexpected wire type {wire}")),
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: String, v: Value) {
    if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
        a.push(v);
    }
}

/// Decodes a `k8s\0`-prefixed protobuf envelope into the JSON object it carries.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let payload = body.strip_prefix(b"k8s\0").ok_or("missing the k8s protobuf envelope prefix")?;
    let mut r = Reader { buf: payload };
    let (mut type_meta, mut raw) = (json!({}), &[][..]);
    while !r.buf.is_empty() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => type_meta = message(r.bytes()?, TYPE_META)?,
            (2, 2) => raw = r.bytes()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or_default().to_string();
    let schema =
        schema_for(&kind).ok_or_else(|| format!("protobuf bodies for kind {kind:?} are not supported; send JSON"))?;
    let mut obj = message(raw, schema)?;
    obj["apiVersion"] = type_meta["apiVersion"].clone();
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [field(1, b"cfg"), field(11, &[field(1, b"app"), field(2, b"web")].concat())].concat();
        let raw = [field(1, &meta), field(2, &[field(1, b"a"), field(2, b"1")].concat())].concat();
        let tm = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &tm), field(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_kinds() {
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
        let tm = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &tm)].concat();
        assert!(decode(&body).unwrap_err().contains("Pod"));
    }
}
