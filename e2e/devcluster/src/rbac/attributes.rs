//! What a request asks to do, in the terms RBAC rules are written in (kube-apiserver's
//! `RequestInfo`): a verb on a resource (with subresource, namespace and name), or on a path.

use http::Method;

use crate::auth::UserInfo;

/// Where a resource request applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A cluster-scoped resource, or a namespaced one across all namespaces.
    Cluster,
    /// One namespace.
    Namespace(String),
}

/// The attributes an authorizer decides on.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// The (possibly impersonated) requester.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`; for paths the lower-cased HTTP method.
    pub verb: String,
    /// The request addresses a resource (else `path` is what is asked for).
    pub resource_request: bool,
    /// API group ("" for core).
    pub api_group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`, `log`, `token`...), or "".
    pub subresource: String,
    /// Namespace or cluster scope.
    pub scope: Scope,
    /// Object name, or "".
    pub name: String,
    /// The URL path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// A request for a URL path that is not a resource (discovery, OpenAPI).
    pub fn non_resource(user: &UserInfo, method: &Method, path: &str) -> Self {
        Self {
            user: user.clone(),
            verb: method.as_str().to_ascii_lowercase(),
            resource_request: false,
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: Scope::Cluster,
            name: String::new(),
            path: path.to_string(),
        }
    }

    /// A resource request, with the verb derived from the method as kube-apiserver derives it.
    #[allow(clippy::too_many_arguments)] // the fields of one RequestInfo
    pub fn resource(
        user: &UserInfo,
        method: &Method,
        watch: bool,
        group: &str,
        resource: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        let collection = name.is_none();
        let verb = match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if collection => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if collection => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        // A Namespace object is in its own namespace, as kube-apiserver's RequestInfo has it.
        let namespace = match (namespace, group, resource, name) {
            (Some(ns), _, _, _) => Some(ns),
            (None, "", "namespaces", Some(n)) => Some(n),
            _ => None,
        };
        Self {
            user: user.clone(),
            verb: verb.to_string(),
            resource_request: true,
            api_group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.unwrap_or_default().to_string(),
            scope: namespace.map_or(Scope::Cluster, |n| Scope::Namespace(n.to_string())),
            name: name.unwrap_or_default().to_string(),
            path: String::new(),
        }
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The namespace, or "" at cluster scope.
    pub fn namespace(&self) -> &str {
        match &self.scope {
            Scope::Cluster => "",
            Scope::Namespace(n) => n,
        }
    }

    /// The message of the `403 Forbidden` a real apiserver answers with when this is denied.
    pub fn forbidden_message(&self) -> String {
        let who = format!("User {:?}", self.user.username);
        if !self.resource_request {
            return format!("forbidden: {who} cannot {} path {:?}", self.verb, self.path);
        }
        let qualified = if self.api_group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.api_group)
        };
        let subject = if self.name.is_empty() { qualified } else { format!("{qualified} {:?}", self.name) };
        let scope = match &self.scope {
            Scope::Cluster => "at the cluster scope".to_string(),
            Scope::Namespace(n) => format!("in the namespace {n:?}"),
        };
        format!(
            "{subject} is forbidden: {who} cannot {} resource {:?} in API group {:?} {scope}",
            self.verb,
            self.combined_resource(),
            self.api_group
        )
    }
}
