//! The endpoints controllers: for each Service with a selector, the addresses of the Pods it
//! selects, ready ones apart from not-ready ones, as a `v1` Endpoints object (named after the
//! Service) and a `discovery.k8s.io/v1` EndpointSlice (what the service proxy reads).

use serde_json::{json, Value};

use super::objects::{controller_ref, pod_active, pod_ready, service_selects, terminating};
use crate::meta;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGER: &str = "endpointslice-controller.k8s.io";

/// A Service port's `targetPort` on one Pod: a number, or a container port's name (a Pod that
/// has no port of that name is not an endpoint for it).
pub fn target_port(service_port: &Value, pod: &Value) -> Option<i64> {
    match &service_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()?
            .iter()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"].as_str() == Some(name))?["containerPort"]
            .as_i64(),
        _ => service_port["port"].as_i64(),
    }
}

/// One selected Pod as an endpoint: its address, readiness and resolved ports.
struct Endpoint<'a> {
    pod: &'a Value,
    ip: String,
    ready: bool,
    ports: Vec<Value>,
}

fn endpoints_of<'a>(svc: &Value, pods: &[&'a Value]) -> Vec<Endpoint<'a>> {
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    pods.iter()
        .copied()
        .filter(|p| service_selects(&svc["spec"]["selector"], &p["metadata"]["labels"]))
        .filter(|p| pod_active(p) || terminating(p))
        .filter_map(|p| {
            let ip = p["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())?.to_string();
            let resolved: Vec<Value> = ports
                .iter()
                .filter_map(|sp| {
                    let port = target_port(sp, p)?;
                    let mut out = json!({"port": port, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
                    if let Some(name) = sp["name"].as_str() {
                        out["name"] = json!(name);
                    }
                    Some(out)
                })
                .collect();
            if resolved.is_empty() && !ports.is_empty() {
                return None;
            }
            let ready = pod_ready(p) && !terminating(p);
            Some(Endpoint { pod: p, ip, ready, ports: resolved })
        })
        .collect()
}

fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": meta::meta_str(pod, "namespace").unwrap_or_default(),
        "name": meta::meta_str(pod, "name").unwrap_or_default(),
        "uid": meta::meta_str(pod, "uid").unwrap_or_default(),
    })
}

/// The Endpoints object of a Service (subsets grouped by resolved port set, as upstream).
pub fn endpoints(svc: &Value, pods: &[&Value]) -> Value {
    let mut subsets: Vec<Value> = Vec::new();
    for e in endpoints_of(svc, pods) {
        let address = json!({"ip": e.ip, "nodeName": e.pod["spec"]["nodeName"], "targetRef": target_ref(e.pod)});
        let field = if e.ready { "addresses" } else { "notReadyAddresses" };
        let ports = json!(e.ports);
        match subsets.iter_mut().find(|s| s["ports"] == ports) {
            Some(s) => match s[field].as_array_mut() {
                Some(list) => list.push(address),
                None => s[field] = json!([address]),
            },
            None => subsets.push(json!({field: [address], "ports": ports})),
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": meta::meta_str(svc, "name").unwrap_or_default(),
            "namespace": meta::meta_str(svc, "namespace").unwrap_or_default(),
            "labels": svc["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
        },
        "subsets": subsets,
    })
}

/// The EndpointSlice of a Service (one slice: these clusters are small).
pub fn endpoint_slice(svc: &Value, pods: &[&Value]) -> Value {
    let list = endpoints_of(svc, pods);
    let ports = list.first().map(|e| json!(e.ports)).unwrap_or_else(|| json!([]));
    let endpoints: Vec<Value> = list
        .iter()
        .filter(|e| json!(e.ports) == ports)
        .map(|e| {
            json!({
                "addresses": [e.ip],
                "conditions": {"ready": e.ready, "serving": e.ready || (terminating(e.pod) && pod_ready(e.pod)), "terminating": terminating(e.pod)},
                "nodeName": e.pod["spec"]["nodeName"],
                "targetRef": target_ref(e.pod),
            })
        })
        .collect();
    let name = meta::meta_str(svc, "name").unwrap_or_default();
    let mut labels = svc["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name));
    labels.insert(MANAGED_BY.into(), json!(MANAGER));
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(svc),
            "namespace": meta::meta_str(svc, "namespace").unwrap_or_default(),
            "labels": labels,
            "ownerReferences": [controller_ref(svc, "v1", "Service")],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// The slice's name: the Service's plus a suffix from its uid (stable across syncs).
pub fn slice_name(svc: &Value) -> String {
    let uid = meta::meta_str(svc, "uid").unwrap_or_default();
    let suffix: String = uid.chars().filter(char::is_ascii_alphanumeric).take(5).collect();
    format!("{}-{suffix}", meta::meta_str(svc, "name").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, port_name: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "e", "uid": format!("u-{name}"), "labels": {"app": "api"}},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })
    }

    fn service() -> Value {
        json!({
            "metadata": {"name": "api", "namespace": "e", "uid": "abcdef-123", "labels": {"team": "x"}},
            "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
        })
    }

    #[test]
    fn selected_pods_become_ready_and_not_ready_addresses_with_named_ports_resolved() {
        let (a, b, c) = (pod("a", true, "http"), pod("b", false, "http"), pod("c", true, "other"));
        let ep = endpoints(&service(), &[&a, &b, &c]);
        assert_eq!(ep["subsets"].as_array().map(Vec::len), Some(1), "{ep}");
        let subset = &ep["subsets"][0];
        assert_eq!(subset["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(subset["notReadyAddresses"][0]["targetRef"]["name"], "b");
        assert_eq!(subset["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
        let slice = endpoint_slice(&service(), &[&a, &b]);
        assert_eq!(slice["metadata"]["name"], "api-abcde");
        assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "api");
        assert_eq!(slice["endpoints"][0]["conditions"], json!({"ready": true, "serving": true, "terminating": false}));
        assert_eq!(slice["endpoints"][1]["conditions"]["ready"], false);
    }

    #[test]
    fn a_terminating_pod_is_not_ready_and_a_service_without_selector_has_no_endpoints() {
        let mut going = pod("a", true, "http");
        going["metadata"]["deletionTimestamp"] = json!("t");
        let slice = endpoint_slice(&service(), &[&going]);
        assert_eq!(slice["endpoints"][0]["conditions"], json!({"ready": false, "serving": true, "terminating": true}));
        let mut manual = service();
        manual["spec"]["selector"] = json!({});
        assert_eq!(endpoints(&manual, &[&pod("a", true, "http")])["subsets"], json!([]));
    }
}
