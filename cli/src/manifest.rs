//! `ephemera run -f FILE`: a Task manifest (what `kubectl apply -f` takes) or a REST create body,
//! in YAML or JSON, made into the body of `POST .../tasks`. Only what the REST API can set passes;
//! anything else is refused by name rather than dropped, so a file never runs differently than it
//! reads.

use serde_json::{Map, Value};

/// Why a file cannot be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Neither YAML nor JSON.
    #[error("not YAML or JSON: {0}")]
    Syntax(String),
    /// A document of another kind.
    #[error("the file holds a {0}, not a Task (apiVersion ephemera.dev/v1alpha1, kind Task)")]
    Kind(String),
    /// A field the REST API cannot set.
    #[error("{field}: {why}")]
    Unsupported {
        /// Its path.
        field: String,
        /// Why, and what to do instead.
        why: &'static str,
    },
}

/// A Task to create: its namespace when the manifest names one, and the REST body.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The `POST .../tasks` body.
    pub body: Value,
}

/// Reads `text` (YAML or JSON; JSON is YAML).
pub fn parse(text: &str) -> Result<Parsed, ManifestError> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
    from_value(doc)
}

fn unsupported(field: &str, why: &'static str) -> ManifestError {
    ManifestError::Unsupported { field: field.into(), why }
}

/// The same, from a parsed document.
pub fn from_value(doc: Value) -> Result<Parsed, ManifestError> {
    let Value::Object(mut doc) = doc else { return Err(ManifestError::Syntax("the file is not a mapping".into())) };
    let (kind, api_version) = (doc.remove("kind"), doc.remove("apiVersion"));
    if kind.is_none() && api_version.is_none() {
        // Already a REST body: the API checks it field by field.
        return Ok(Parsed { namespace: None, body: Value::Object(doc) });
    }
    let kind = kind.as_ref().and_then(Value::as_str).unwrap_or_default().to_string();
    let group_ok = api_version.as_ref().and_then(Value::as_str).is_some_and(|v| v.starts_with("ephemera.dev/"));
    if kind != "Task" || !group_ok {
        let api = api_version.as_ref().and_then(Value::as_str).unwrap_or("?");
        return Err(ManifestError::Kind(format!("{api} {kind}")));
    }
    let mut body = Map::new();
    let mut namespace = None;
    if let Some(Value::Object(meta)) = doc.remove("metadata") {
        for (k, v) in meta {
            match k.as_str() {
                "name" | "labels" => {
                    body.insert(k, v);
                }
                "namespace" => namespace = v.as_str().map(String::from),
                "generateName" => {
                    return Err(unsupported(
                        "metadata.generateName",
                        "leave out the name instead: the API generates one",
                    ))
                }
                // Kept by the server, or by kubectl: they say nothing about what to run.
                "annotations" | "uid" | "resourceVersion" | "creationTimestamp" | "generation" | "managedFields" => {}
                _ => return Err(unsupported(&format!("metadata.{k}"), "cannot be set over the REST API")),
            }
        }
    }
    let Some(Value::Object(spec)) = doc.remove("spec") else {
        return Err(unsupported("spec", "a Task needs a spec"));
    };
    let templated = spec.contains_key("templateRef");
    for (k, v) in spec {
        match k.as_str() {
            "image" | "command" | "args" | "params" | "credentials" | "priority" | "ttlSecondsAfterFinished" => {
                body.insert(k, v);
            }
            // With a template, the CRD's defaults (what `kubectl get -o yaml` shows) are not choices.
            "queue" if templated && v == "default" => {}
            "timeoutSeconds" if templated && v == 3600 => {}
            "retry" if templated => {}
            "queue" | "timeoutSeconds" => {
                body.insert(k, v);
            }
            "env" => {
                body.insert(k, env_map(v)?);
            }
            "retry" => {
                body.insert(k, retry(v)?);
            }
            "templateRef" => {
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("ClusterTaskTemplate");
                let name = v.get("name").cloned().unwrap_or(Value::Null);
                body.insert("template".into(), serde_json::json!({"kind": kind, "name": name}));
            }
            "cancel" if v == false => {}
            "cancel" => return Err(unsupported("spec.cancel", "create the Task, then `ephemera cancel` it")),
            "origin" => {
                return Err(unsupported("spec.origin", "is set by the API server (who asked), never by a client"))
            }
            "resources" => {
                return Err(unsupported(
                    "spec.resources",
                    "cannot be set over the REST API: apply the Task with kubectl, or use a template that sets them",
                ))
            }
            _ => return Err(unsupported(&format!("spec.{k}"), "is not a Task field")),
        }
    }
    Ok(Parsed { namespace, body: Value::Object(body) })
}

/// The CRD's `env` list as the REST map.
fn env_map(v: Value) -> Result<Value, ManifestError> {
    let Value::Array(items) = v else { return Err(unsupported("spec.env", "must be a list of {name, value}")) };
    let mut out = Map::new();
    for (i, item) in items.into_iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str).map(String::from);
        let Some(name) = name else { return Err(unsupported(&format!("spec.env[{i}].name"), "is required")) };
        if item.get("valueFrom").is_some() {
            return Err(unsupported(&format!("spec.env[{i}].valueFrom"), "Tasks take secrets only as credentials"));
        }
        let value = item.get("value").cloned().unwrap_or(Value::String(String::new()));
        if out.insert(name.clone(), value).is_some() {
            return Err(unsupported(&format!("spec.env[{i}]"), "names a variable twice"));
        }
    }
    Ok(Value::Object(out))
}

/// The CRD's retry policy as the REST one (`maxBackoffSeconds` only at its default).
fn retry(v: Value) -> Result<Value, ManifestError> {
    let Value::Object(mut r) = v else { return Err(unsupported("spec.retry", "must be a mapping")) };
    match r.remove("maxBackoffSeconds") {
        None => {}
        Some(v) if v == 300 => {}
        Some(_) => return Err(unsupported("spec.retry.maxBackoffSeconds", "cannot be set over the REST API (300 s)")),
    }
    Ok(Value::Object(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kubectl_manifest_becomes_the_rest_body_it_reads_as() {
        let p = parse(
            "apiVersion: ephemera.dev/v1alpha1\nkind: Task\nmetadata:\n  name: hello\n  namespace: team-a\n  labels: {app: web}\n\
             spec:\n  image: busybox\n  command: [sh, -c, 'echo hi']\n  env: [{name: STAGE, value: uat}]\n  queue: default\n  priority: 10\n\
             \n  timeoutSeconds: 120\n  retry: {maxAttempts: 2, maxBackoffSeconds: 300}\n",
        )
        .unwrap();
        assert_eq!(p.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            p.body,
            json!({"name": "hello", "labels": {"app": "web"}, "image": "busybox", "command": ["sh", "-c", "echo hi"],
                   "env": {"STAGE": "uat"}, "queue": "default", "priority": 10, "timeoutSeconds": 120, "retry": {"maxAttempts": 2}})
        );
    }

    #[test]
    fn a_templated_manifest_names_its_template_and_drops_only_the_crd_defaults() {
        let p = parse(
            "apiVersion: ephemera.dev/v1alpha1\nkind: Task\nmetadata: {name: g}\nspec:\n  templateRef: {name: greet}\n  params: {who: x}\n\
             \n  queue: default\n  timeoutSeconds: 3600\n  retry: {maxAttempts: 1}\n",
        )
        .unwrap();
        assert_eq!(
            p.body,
            json!({"name": "g", "template": {"kind": "ClusterTaskTemplate", "name": "greet"}, "params": {"who": "x"}})
        );
        // A queue the template did not choose is passed on, for the API to refuse by name.
        let q = parse("apiVersion: ephemera.dev/v1alpha1\nkind: Task\nspec: {templateRef: {name: g}, queue: fast}\n")
            .unwrap();
        assert_eq!(q.body["queue"], "fast");
    }

    #[test]
    fn what_the_rest_api_cannot_set_is_refused_by_name_never_dropped() {
        let base = "apiVersion: ephemera.dev/v1alpha1\nkind: Task\nspec:\n  command: [x]\n";
        #[rustfmt::skip]
        let rows = [
            ("  resources: {limits: {cpu: '1'}}\n", "spec.resources"),
            ("  origin: {source: api, requester: me}\n", "spec.origin"),
            ("  cancel: true\n", "spec.cancel"),
            ("  env: [{name: T, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n", "spec.env[0].valueFrom"),
            ("  retry: {maxBackoffSeconds: 60}\n", "spec.retry.maxBackoffSeconds"),
            ("  bogus: 1\n", "spec.bogus"),
        ];
        for (extra, field) in rows {
            match parse(&format!("{base}{extra}")) {
                Err(ManifestError::Unsupported { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(parse("apiVersion: v1\nkind: Pod\nspec: {}\n"), Err(ManifestError::Kind(_))));
        assert!(matches!(parse("[1, 2"), Err(ManifestError::Syntax(_))));
        assert!(matches!(parse("- 1\n"), Err(ManifestError::Syntax(_))));
        // cancel: false is what kubectl shows for a fresh Task: harmless.
        assert!(parse(&format!("{base}  cancel: false\n")).is_ok());
    }

    #[test]
    fn a_rest_body_file_passes_as_it_is() {
        let p = parse(r#"{"image": "busybox", "command": ["true"], "queue": "fast"}"#).unwrap();
        assert_eq!(p.body, json!({"image": "busybox", "command": ["true"], "queue": "fast"}));
        assert_eq!(p.namespace, None);
    }
}
