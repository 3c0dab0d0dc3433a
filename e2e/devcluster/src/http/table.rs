//! `meta.k8s.io/v1 Table` output for `kubectl get`: CRD printer columns or a per-kind default.

use serde_json::{json, Value};

use crate::resources::{Column, ResourceType};

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

/// Kubernetes' human-readable duration (`5s`, `3m20s`, `4h`, `2d3h`...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        },
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        },
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => match h % 24 {
            0 => format!("{d}d"),
            r => format!("{d}d{r}h"),
        },
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => match d % 365 {
            0 => format!("{}y", d / 365),
            r => format!("{}y{r}d", d / 365),
        },
        _ => format!("{}y", d / 365),
    }
}

fn age(ts: &str) -> Value {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => json!(human_duration(jiff::Timestamp::now().as_second() - t.as_second())),
        Err(_) => json!("<unknown>"),
    }
}

/// Evaluates a simple JSONPath (`.a.b`, `.a[0].b`, `.a['x.y']`) against an object.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    let mut cur = obj;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let idx = &r[..end];
            let key = idx.trim_matches(|c| c == '\'' || c == '"');
            cur = match idx.parse::<usize>() {
                Ok(i) => cur.get(i)?,
                Err(_) => cur.get(key)?,
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

fn defs(rt: &ResourceType, cols: &[Column]) -> Vec<Value> {
    let name_def = |priority: i64| json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": priority});
    let mut out = if name_last(rt) { Vec::new() } else { vec![name_def(0)] };
    for c in cols {
        let description = if rt.custom && c.description.is_empty() {
            format!("Custom resource definition column (in JSONPath format): {}", c.json_path)
        } else {
            c.description.clone()
        };
        out.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": description, "priority": c.priority}));
    }
    if name_last(rt) {
        out.push(name_def(1));
    }
    out
}

/// Events list their name last, shown only with `-o wide` (like the upstream printer).
fn name_last(rt: &ResourceType) -> bool {
    !rt.custom && rt.kind == "Event"
}

fn col(name: &str, type_: &str, priority: i64, path: &str) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority,
        json_path: path.into(),
    }
}

/// Columns for a kind: the CRD's, or what the upstream printer shows for a built-in kind. Paths
/// starting with `#` are computed (see [`computed`]).
fn columns(rt: &ResourceType, version: &str) -> Vec<Column> {
    if rt.custom || rt.kind == "CustomResourceDefinition" {
        return rt.version(version).map(|v| v.columns.clone()).unwrap_or_default();
    }
    let age = col("Age", "date", 0, ".metadata.creationTimestamp");
    match rt.kind.as_str() {
        "Pod" => vec![
            col("Ready", "string", 0, "#pod.ready"),
            col("Status", "string", 0, "#pod.status"),
            col("Restarts", "string", 0, "#pod.restarts"),
            age,
            col("IP", "string", 1, ".status.podIP"),
            col("Node", "string", 1, ".spec.nodeName"),
        ],
        "Secret" => vec![col("Type", "string", 0, ".type"), col("Data", "string", 0, "#count.data"), age],
        "ConfigMap" => vec![col("Data", "string", 0, "#count.data"), age],
        "ServiceAccount" => vec![col("Secrets", "string", 0, "#count.secrets"), age],
        "Service" => vec![
            col("Type", "string", 0, ".spec.type"),
            col("Cluster-IP", "string", 0, ".spec.clusterIP"),
            col("Ports", "string", 0, "#service.ports"),
            age,
            col("Selector", "string", 1, "#service.selector"),
        ],
        "Deployment" => vec![
            col("Ready", "string", 0, "#workload.ready"),
            col("Up-to-date", "integer", 0, ".status.updatedReplicas"),
            col("Available", "integer", 0, ".status.availableReplicas"),
            age,
        ],
        "Event" if rt.group.is_empty() => vec![
            col("Last Seen", "string", 0, "#event.lastSeen"),
            col("Type", "string", 0, ".type"),
            col("Reason", "string", 0, ".reason"),
            col("Object", "string", 0, "#event.object"),
            col("Message", "string", 0, ".message"),
        ],
        _ => {
            let mut cols = rt.version(version).map(|v| v.columns.clone()).unwrap_or_default();
            cols.push(age);
            cols
        }
    }
}

fn pod_cells(pod: &Value) -> [Value; 3] {
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
    let total = pod.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    let restarts: i64 = statuses.iter().filter_map(|s| s["restartCount"].as_i64()).sum();
    let mut phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending").to_string();
    for s in &statuses {
        if let Some(r) = s.pointer("/state/waiting/reason").and_then(Value::as_str) {
            phase = r.to_string();
        } else if let Some(r) = s.pointer("/state/terminated/reason").and_then(Value::as_str) {
            phase = r.to_string();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        phase = "Terminating".into();
    }
    [json!(format!("{ready}/{total}")), json!(phase), json!(restarts.to_string())]
}

/// Computed cells of built-in printers.
fn computed(obj: &Value, key: &str) -> Value {
    let count = |field: &str| {
        obj.get(field).map_or(0, |v| v.as_object().map_or_else(|| v.as_array().map_or(0, Vec::len), |o| o.len()))
    };
    match key {
        "#pod.ready" => pod_cells(obj)[0].clone(),
        "#pod.status" => pod_cells(obj)[1].clone(),
        "#pod.restarts" => pod_cells(obj)[2].clone(),
        "#count.data" => json!(count("data") + count("binaryData")),
        "#count.secrets" => json!(count("secrets")),
        // `80/TCP,9090/TCP`, as kubectl's printer shows Service ports.
        "#service.ports" => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") })
        }
        "#service.selector" => {
            let pairs: Vec<String> = obj["spec"]["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            json!(if pairs.is_empty() { "<none>".to_string() } else { pairs.join(",") })
        }
        "#workload.ready" => json!(format!(
            "{}/{}",
            obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
            obj["spec"]["replicas"].as_i64().unwrap_or(0)
        )),
        "#event.object" => {
            let o = &obj["involvedObject"];
            json!(format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default().to_lowercase(),
                o["name"].as_str().unwrap_or_default()
            ))
        }
        "#event.lastSeen" => {
            let ts = ["lastTimestamp", "eventTime", "firstTimestamp"]
                .iter()
                .find_map(|f| obj[*f].as_str())
                .or_else(|| obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str));
            ts.map_or(json!("<unknown>"), age)
        }
        _ => Value::Null,
    }
}

/// One table row for an object.
fn row(rt: &ResourceType, cols: &[Column], obj: &Value) -> Value {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let mut cells = if name_last(rt) { Vec::new() } else { vec![name.clone()] };
    for c in cols {
        if c.json_path.starts_with('#') {
            cells.push(computed(obj, &c.json_path));
            continue;
        }
        let v = json_path(obj, &c.json_path).cloned();
        cells.push(match (c.type_.as_str(), v) {
            // Built-in printers only turn Age into a duration (`kubectl get crd` prints CREATED AT).
            ("date", Some(Value::String(ts))) if rt.custom || c.name == "Age" => age(&ts),
            (_, Some(v)) => v,
            (_, None) => Value::Null,
        });
    }
    if name_last(rt) {
        cells.push(name);
    }
    let mut meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
}

/// A Table of objects. `with_columns` is false for watch events after the first.
pub fn table(rt: &ResourceType, version: &str, objs: &[&Value], list_meta: Value, with_columns: bool) -> Value {
    let cols = columns(rt, version);
    let rows: Vec<Value> = objs.iter().map(|o| row(rt, &cols, o)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if with_columns { json!(defs(rt, &cols)) } else { Value::Null },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86400 * 3 + 3600), "3d1h");
    }

    #[test]
    fn services_and_deployments_print_as_kubectl_shows_them() {
        let svc = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "api"}}});
        assert_eq!(computed(&svc, "#service.ports"), json!("80/TCP,53/UDP"));
        assert_eq!(computed(&svc, "#service.selector"), json!("app=api"));
        assert_eq!(computed(&json!({"spec": {}}), "#service.ports"), json!("<none>"));
        let d = json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert_eq!(computed(&d, "#workload.ready"), json!("1/2"));
    }

    #[test]
    fn json_paths_walk_objects_and_lists() {
        let v = json!({"spec": {"items": [{"n": 1}], "a.b": 2}});
        assert_eq!(json_path(&v, ".spec.items[0].n"), Some(&json!(1)));
        assert_eq!(json_path(&v, ".spec['a.b']"), Some(&json!(2)));
        assert_eq!(json_path(&v, ".status.phase"), None);
    }
}
