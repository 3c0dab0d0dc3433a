//! Parsing a request path into what it addresses, and its query parameters.

use std::collections::HashMap;
use std::sync::Arc;

use crate::resources::{Registry, ResourceType};

use super::status::ApiError;

/// What a resource URL addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource type.
    pub rt: Arc<ResourceType>,
    /// The version in the URL.
    pub version: String,
    /// Namespace from the URL (None for cluster-scoped or all-namespaces).
    pub namespace: Option<String>,
    /// Object name, if addressed.
    pub name: Option<String>,
    /// Subresource (`status`, `log`, `token`...).
    pub sub: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub legacy_watch: bool,
}

/// Non-resource endpoints.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    ResourceList(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Root,
    /// `/openapi/v3/{api/v1 | apis/g/v}`.
    OpenApiV3(String, String),
    /// `/healthz`, `/readyz`, `/livez` and their sub-checks.
    Health,
}

/// Either a fixed endpoint or a resource URL.
pub enum Parsed {
    /// A fixed endpoint.
    Route(Route),
    /// A resource URL.
    Resource(Target),
}

/// Splits a path into a route or a resource target, using the registry to resolve resources.
pub fn parse(path: &str, registry: &Registry) -> Result<Parsed, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let route = |r| Ok(Parsed::Route(r));
    match segs.as_slice() {
        ["version"] => return route(Route::Version),
        ["healthz", ..] | ["readyz", ..] | ["livez", ..] => return route(Route::Health),
        ["api"] => return route(Route::CoreVersions),
        ["apis"] => return route(Route::Groups),
        ["apis", g] => return route(Route::Group(g.to_string())),
        ["api", v] => return route(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return route(Route::ResourceList(g.to_string(), v.to_string())),
        ["openapi", "v2"] => return route(Route::OpenApiV2),
        ["openapi", "v3"] => return route(Route::OpenApiV3Root),
        ["openapi", "v3", "api", v] => return route(Route::OpenApiV3(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => return route(Route::OpenApiV3(g.to_string(), v.to_string())),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let find = |plural: &str| registry.find(group, version, plural).ok_or_else(ApiError::path_not_found);
    let target = |rt, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Parsed::Resource(Target {
            rt,
            version: version.to_string(),
            namespace: namespace.map(String::from),
            name: name.map(String::from),
            sub: sub.map(String::from),
            legacy_watch,
        })
    };
    // `namespaces/{ns}/{resource}...` addresses namespaced resources, except the namespace's own
    // subresources (`namespaces/{name}/status|finalize`).
    match rest {
        ["namespaces", ns, res, tail @ ..]
            if group.is_empty() && (*res == "status" || *res == "finalize") && tail.is_empty() =>
        {
            Ok(target(find("namespaces")?, None, Some(ns), Some(res)))
        }
        ["namespaces", ns, res, tail @ ..] => {
            let rt = find(res)?;
            if !rt.namespaced {
                return Err(ApiError::path_not_found());
            }
            match tail {
                [] => Ok(target(rt, Some(ns), None, None)),
                [name] => Ok(target(rt, Some(ns), Some(name), None)),
                [name, sub] => Ok(target(rt, Some(ns), Some(name), Some(sub))),
                _ => Err(ApiError::path_not_found()),
            }
        }
        [res, tail @ ..] => {
            let rt = find(res)?;
            match tail {
                [] => Ok(target(rt, None, None, None)),
                [name] if !rt.namespaced => Ok(target(rt, None, Some(name), None)),
                [name, sub] if !rt.namespaced => Ok(target(rt, None, Some(name), Some(sub))),
                _ => Err(ApiError::path_not_found()),
            }
        }
        [] => Err(ApiError::path_not_found()),
    }
}

/// Query parameters as a map (last value wins).
pub type Query = HashMap<String, String>;

/// Parses a raw query string.
pub fn parse_query(raw: Option<&str>) -> Query {
    raw.map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default().into_iter().collect())
        .unwrap_or_default()
}

/// A boolean query flag (`true`/`1`).
pub fn flag(q: &Query, name: &str) -> bool {
    matches!(q.get(name).map(String::as_str), Some("true") | Some("1"))
}
