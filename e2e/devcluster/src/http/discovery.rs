//! Legacy (non-aggregated) discovery: `/api`, `/apis`, `/apis/{group}`, resource lists, `/version`.
//! Clients that ask for aggregated discovery fall back to these because the reply is plain JSON.

use serde_json::{json, Value};

use crate::resources::Registry;

use super::request::Route;
use super::status::ApiError;

/// `/version`: reports Kubernetes 1.36, the API level the server mimics.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "36",
        "gitVersion": "v1.36.0-ephemera-devcluster",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// Serves a discovery route.
pub fn serve(reg: &Registry, route: &Route) -> Result<Value, ApiError> {
    match route {
        Route::CoreVersions => Ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })),
        Route::Groups => {
            let groups: Vec<Value> = reg.groups().iter().map(|(g, vs)| group_json(g, vs)).collect();
            Ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        Route::Group(g) => {
            let groups = reg.groups();
            let (_, vs) = groups.iter().find(|(n, _)| n == g).ok_or_else(ApiError::path_not_found)?;
            let mut out = group_json(g, vs);
            out["kind"] = json!("APIGroup");
            out["apiVersion"] = json!("v1");
            Ok(out)
        }
        Route::ResourceList(g, v) => resource_list(reg, g, v),
        _ => Err(ApiError::path_not_found()),
    }
}

fn resource_list(reg: &Registry, group: &str, version: &str) -> Result<Value, ApiError> {
    let mut resources = Vec::new();
    for rt in reg.in_group_version(group, version) {
        let Some(ver) = rt.version(version) else { continue };
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        let sub = |name: &str, kind: &str, verbs: &[&str]| json!({"name": format!("{}/{name}", rt.plural), "singularName": "", "namespaced": rt.namespaced, "kind": kind, "verbs": verbs});
        if ver.status_subresource {
            resources.push(sub("status", &rt.kind, &["get", "patch", "update"]));
        }
        // `/scale` is not implemented, so it is not advertised (clients then say so plainly).
        for extra in &rt.extra_subresources {
            let (kind, verbs): (&str, &[&str]) = match *extra {
                "log" => ("Pod", &["get"]),
                "token" => ("TokenRequest", &["create"]),
                "binding" => ("Binding", &["create"]),
                "eviction" => ("Eviction", &["create"]),
                _ => ("", &["get"]),
            };
            resources.push(sub(extra, kind, verbs));
        }
    }
    if resources.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}
