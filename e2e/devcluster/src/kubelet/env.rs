//! A container's environment, resolved the way the kubelet does: `envFrom` first, then `env` (later
//! entries win), `$(VAR)` references to earlier variables, and values from Secrets, ConfigMaps and
//! the Pod itself. A missing required source is a `CreateContainerConfigError`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::store::{ResKey, Store};

fn source(store: &Store, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let resource = if kind == "Secret" { "secrets" } else { "configmaps" };
    store.get(&ResKey::new("", resource), ns, name).map(|v| (*v).clone())
}

/// All string data of a Secret (decoded) or ConfigMap.
fn data(obj: &Value, kind: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(m) = obj["data"].as_object() {
        for (k, v) in m {
            let s = v.as_str().unwrap_or_default();
            let value = if kind == "Secret" {
                String::from_utf8_lossy(&STANDARD.decode(s).unwrap_or_default()).into_owned()
            } else {
                s.to_string()
            };
            out.push((k.clone(), value));
        }
    }
    out
}

fn not_found(kind: &str, name: &str) -> String {
    format!("{} \"{name}\" not found", kind.to_lowercase())
}

fn key_ref(store: &Store, ns: &str, kind: &str, r: &Value) -> Result<Option<String>, String> {
    let name = r["name"].as_str().unwrap_or_default();
    let key = r["key"].as_str().unwrap_or_default();
    let optional = r["optional"].as_bool().unwrap_or(false);
    let Some(obj) = source(store, kind, ns, name) else {
        return if optional { Ok(None) } else { Err(not_found(kind, name)) };
    };
    match data(&obj, kind).into_iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(format!("couldn't find key {key} in {kind} {ns}/{name}")),
    }
}

/// The value of a downward-API `fieldRef` path, as the kubelet renders it.
pub fn field_ref(pod: &Value, path: &str) -> Result<String, String> {
    let meta = &pod["metadata"];
    let bracket = |prefix: &str, map: &Value| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")?;
        Some(map[key].as_str().unwrap_or_default().to_string())
    };
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok(match path {
        "metadata.name" => s(&meta["name"]),
        "metadata.namespace" => s(&meta["namespace"]),
        "metadata.uid" => s(&meta["uid"]),
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => "127.0.0.1".into(),
        "metadata.labels" | "metadata.annotations" => {
            let map = if path.ends_with("labels") { &meta["labels"] } else { &meta["annotations"] };
            let mut lines: Vec<String> = map
                .as_object()
                .map(|m| {
                    m.iter().map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default())).collect()
                })
                .unwrap_or_default();
            lines.sort();
            lines.join("\n")
        }
        _ => bracket("metadata.labels", &meta["labels"])
            .or_else(|| bracket("metadata.annotations", &meta["annotations"]))
            .ok_or_else(|| format!("unsupported fieldRef path {path:?}"))?,
    })
}

/// Expands `$(NAME)` from earlier variables; `$$(NAME)` escapes; unknown references stay as written.
pub fn expand(value: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn set(vars: &mut Vec<(String, String)>, k: String, v: String) {
    vars.retain(|(x, _)| *x != k);
    vars.push((k, v));
}

/// The environment the Pod spec asks for (without the kubelet's own variables).
pub fn container_env(store: &Store, pod: &Value, container: &Value) -> Result<Vec<(String, String)>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut vars: Vec<(String, String)> = Vec::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let (kind, r) = if from.get("secretRef").is_some() {
            ("Secret", &from["secretRef"])
        } else {
            ("ConfigMap", &from["configMapRef"])
        };
        let name = r["name"].as_str().unwrap_or_default();
        match source(store, kind, ns, name) {
            Some(obj) => {
                for (k, v) in data(&obj, kind) {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
            None if r["optional"].as_bool().unwrap_or(false) => {}
            None => return Err(not_found(kind, name)),
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let from = &e["valueFrom"];
        let value = if let Some(v) = e["value"].as_str() {
            Some(expand(v, &vars))
        } else if from.get("secretKeyRef").is_some() {
            key_ref(store, ns, "Secret", &from["secretKeyRef"])?
        } else if from.get("configMapKeyRef").is_some() {
            key_ref(store, ns, "ConfigMap", &from["configMapKeyRef"])?
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            Some(field_ref(pod, path)?)
        } else if let Some(res) = from["resourceFieldRef"]["resource"].as_str() {
            // No resource accounting here: report the declared value, "0" when none is declared.
            let (kind, name) = res.split_once('.').unwrap_or(("limits", res));
            let c = &container["resources"][kind][name];
            Some(c.as_str().map(String::from).unwrap_or_else(|| "0".into()))
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(&mut vars, name, v);
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_expand_and_escape() {
        let vars = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)", &vars), "x-$(B)-$(A)");
    }

    #[test]
    fn field_refs_read_the_pod() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"}}});
        assert_eq!(field_ref(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(field_ref(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_ref(&pod, "metadata.labels").unwrap(), "app=\"web\"");
    }
}
