//! Services as the apiserver admits them: defaults on create, a ClusterIP allocated from the
//! service range, allocated values kept on update, and a ClusterIP that never changes once set.
//!
//! Every Pod here shares the host's network (see the README), so the service range is a loopback
//! block: a ClusterIP is reachable from Pods and from the host alike, and the node's service proxy
//! (`crate::proxy`) listens on it.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::schema::FieldError;

/// The first address of the service range (`kubernetes.default` gets it, as upstream's first IP).
pub const RANGE_START: Ipv4Addr = Ipv4Addr::new(127, 96, 0, 1);
/// How many addresses the range holds (127.96.0.1 – 127.96.255.254).
pub const RANGE_SIZE: u32 = 65_534;

/// The address is one this cluster allocates.
pub fn in_range(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>().is_ok_and(|a| {
        let (n, start) = (u32::from(a), u32::from(RANGE_START));
        n >= start && n < start + RANGE_SIZE
    })
}

/// The lowest free address of the range, given the ClusterIPs in use (`first` skips the
/// `kubernetes` Service's address unless it asks for it).
pub fn next_free(used: &[String], first: bool) -> Option<String> {
    let used: std::collections::HashSet<&str> = used.iter().map(String::as_str).collect();
    let start = u32::from(RANGE_START) + u32::from(!first);
    (start..u32::from(RANGE_START) + RANGE_SIZE)
        .map(|n| Ipv4Addr::from(n).to_string())
        .find(|ip| !used.contains(ip.as_str()))
}

fn default(obj: &mut Value, field: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(field.to_string()).or_insert(v);
    }
}

/// The ClusterIP a create asks for: `None` (headless), an address, or "" (allocate one).
pub fn requested_ip(svc: &Value) -> &str {
    svc["spec"]["clusterIP"].as_str().unwrap_or_default()
}

/// Defaults a Service on every write; a new one gets `allocated` as its ClusterIP when it asked
/// for none (an update keeps its own: `keep_allocated`).
pub fn defaults(svc: &mut Value, allocated: Option<&str>) {
    let Some(spec) = svc.get_mut("spec").filter(|s| s.is_object()) else { return };
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    for p in spec["ports"].as_array_mut().into_iter().flatten() {
        default(p, "protocol", json!("TCP"));
        let port = p["port"].clone();
        default(p, "targetPort", port);
    }
    let ip = match spec["clusterIP"].as_str() {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => allocated.unwrap_or_default().to_string(),
    };
    if !ip.is_empty() {
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    default(svc, "status", json!({"loadBalancer": {}}));
}

/// An update that leaves allocated fields out keeps them (upstream's `patchAllocatedValues`).
pub fn keep_allocated(old: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").filter(|s| s.is_object()) else { return };
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        let unset = spec.get(field).is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
        if unset && !old["spec"][field].is_null() {
            spec[field] = old["spec"][field].clone();
        }
    }
}

/// Field errors of a Service write: an address outside the range or already taken on create, a
/// changed ClusterIP on update.
pub fn validate(old: Option<&Value>, new: &Value, taken: impl Fn(&str) -> bool) -> Vec<FieldError> {
    let ip = requested_ip(new);
    let shown = format!("[]string{{{ip:?}}}");
    match old {
        Some(old) if requested_ip(old) != ip => vec![FieldError {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs[0]".into(),
            message: format!("Invalid value: {shown}: may not change once set"),
        }],
        Some(_) => Vec::new(),
        None if ip.is_empty() || ip == "None" => Vec::new(),
        None if !in_range(ip) => vec![FieldError {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs".into(),
            message: format!(
                "Invalid value: {shown}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {RANGE_START}/16"
            ),
        }],
        None if taken(ip) => vec![FieldError {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs".into(),
            message: format!("Invalid value: {shown}: failed to allocate IP {ip}: provided IP is already allocated"),
        }],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_services_get_the_lowest_free_address_and_upstream_defaults() {
        let used = vec!["127.96.0.1".to_string(), "127.96.0.2".to_string()];
        assert_eq!(next_free(&used, false).as_deref(), Some("127.96.0.3"));
        assert_eq!(next_free(&[], true).as_deref(), Some("127.96.0.1"));
        assert_eq!(next_free(&[], false).as_deref(), Some("127.96.0.2"));
        let mut svc = json!({"spec": {"selector": {"app": "a"}, "ports": [{"name": "http", "port": 80}]}});
        defaults(&mut svc, Some("127.96.0.3"));
        assert_eq!(
            svc["spec"],
            json!({
                "selector": {"app": "a"}, "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}],
                "clusterIP": "127.96.0.3", "clusterIPs": ["127.96.0.3"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            })
        );
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        defaults(&mut headless, Some("127.96.0.3"));
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn a_cluster_ip_is_kept_when_left_out_and_refused_when_changed() {
        let old = json!({"spec": {"clusterIP": "127.96.0.7", "clusterIPs": ["127.96.0.7"]}});
        let mut new = json!({"spec": {"ports": []}});
        keep_allocated(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "127.96.0.7");
        assert!(validate(Some(&old), &new, |_| false).is_empty());
        let moved = json!({"spec": {"clusterIP": "127.96.0.8"}});
        let errs = validate(Some(&old), &moved, |_| false);
        assert_eq!(errs[0].message, "Invalid value: []string{\"127.96.0.8\"}: may not change once set");
        assert_eq!(validate(None, &json!({"spec": {"clusterIP": "10.0.0.1"}}), |_| false).len(), 1);
        assert_eq!(validate(None, &json!({"spec": {"clusterIP": "127.96.0.7"}}), |ip| ip == "127.96.0.7").len(), 1);
        assert!(validate(None, &json!({"spec": {"clusterIP": "127.96.0.7"}}), |_| false).is_empty());
    }
}
