//! Service names for Pods. There is no cluster DNS server here: the kubelet writes every Service's
//! names into the Pod's `/etc/hosts` when the Pod starts (`name`, `name.ns`, `name.ns.svc`,
//! `name.ns.svc.cluster.local`), as a DNS server with the Pod's search path would answer them.
//! A Service created after the Pod started is not known to it.

use std::sync::Arc;

use serde_json::Value;

use crate::meta;

/// The cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The hosts-file lines naming these Services for a Pod in `pod_namespace`. A ClusterIP Service
/// resolves to its ClusterIP; a headless one with endpoints to the Pods' address (every Pod here
/// has the host's, 127.0.0.1).
pub fn service_lines(services: &[Arc<Value>], pod_namespace: &str, has_endpoints: impl Fn(&Value) -> bool) -> String {
    let mut out = String::new();
    for svc in services {
        let (ns, name) =
            (meta::meta_str(svc, "namespace").unwrap_or_default(), meta::meta_str(svc, "name").unwrap_or_default());
        let ip = match svc["spec"]["clusterIP"].as_str() {
            Some("None") if has_endpoints(svc) => "127.0.0.1",
            Some(ip) if !ip.is_empty() && ip != "None" => ip,
            _ => continue,
        };
        let mut names = format!("{name}.{ns}.svc.{CLUSTER_DOMAIN} {name}.{ns}.svc {name}.{ns}");
        if ns == pod_namespace {
            names.push(' ');
            names.push_str(name);
        }
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_are_named_as_the_pods_search_path_would_resolve_them() {
        let services: Vec<Arc<Value>> = [
            json!({"metadata": {"name": "api", "namespace": "eph"}, "spec": {"clusterIP": "127.96.0.4"}}),
            json!({"metadata": {"name": "db", "namespace": "other"}, "spec": {"clusterIP": "127.96.0.5"}}),
            json!({"metadata": {"name": "replicas", "namespace": "eph"}, "spec": {"clusterIP": "None"}}),
            json!({"metadata": {"name": "empty", "namespace": "eph"}, "spec": {"clusterIP": "None"}}),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let lines = service_lines(&services, "eph", |s| s["metadata"]["name"] == "replicas");
        assert_eq!(
            lines,
            "127.96.0.4\tapi.eph.svc.cluster.local api.eph.svc api.eph api\n\
             127.96.0.5\tdb.other.svc.cluster.local db.other.svc db.other\n\
             127.0.0.1\treplicas.eph.svc.cluster.local replicas.eph.svc replicas.eph replicas\n"
        );
    }
}
