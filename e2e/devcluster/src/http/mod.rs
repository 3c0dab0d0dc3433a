//! The HTTP front: authentication, routing by Kubernetes URL shape, and the handlers.

mod discovery;
mod objects;
mod openapi;
mod protobuf;
mod request;
pub mod respond;
mod reviews;
pub mod selectors;
pub mod status;
mod table;
mod watch;
mod write;

use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{HeaderMap, Method, StatusCode, Uri};
use tracing::Instrument;

use crate::audit::{AuditEntry, AuditLog};
use crate::auth::{Auth, UserInfo};
use crate::rbac::{self, Attributes, ImpersonationError, Policy};
use crate::resources::Registry;
use crate::store::{ResKey, Store};

pub use request::{flag as request_flag, Query, Target};
pub use status::ApiError;

/// Streams a Pod's container logs (provided by the kubelet when it runs).
pub trait PodLogs: Send + Sync {
    /// Log bytes for one container; `follow` keeps the stream open while the container runs.
    fn logs(&self, namespace: &str, pod: &str, query: &Query) -> Result<axum::body::Body, ApiError>;
}

/// Everything a handler needs.
pub struct App {
    /// The object store.
    pub store: Store,
    /// Served resources (rebuilt when CRDs change).
    pub registry: RwLock<Arc<Registry>>,
    /// Token authentication.
    pub auth: Auth,
    /// Optional log source for `pods/log`.
    pub logs: RwLock<Option<Arc<dyn PodLogs>>>,
    /// The node a kubelet runs (Pods bound to it are deleted gracefully).
    pub kubelet_node: RwLock<Option<String>>,
    /// Where each request is recorded, if anywhere.
    pub audit: std::sync::OnceLock<AuditLog>,
}

impl App {
    /// A new app over a store.
    pub fn new(store: Store, auth: Auth) -> Arc<Self> {
        let app = Arc::new(Self {
            store,
            registry: RwLock::new(Arc::new(Registry::default())),
            auth,
            logs: RwLock::new(None),
            kubelet_node: RwLock::new(None),
            audit: std::sync::OnceLock::new(),
        });
        app.refresh_registry();
        app
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Rebuilds the registry from the stored CRDs.
    pub fn refresh_registry(&self) {
        let (crds, _) = self.store.list(&ResKey::new("apiextensions.k8s.io", "customresourcedefinitions"), None);
        let reg = Arc::new(Registry::build(&crds));
        if let Ok(mut r) = self.registry.write() {
            *r = reg;
        }
    }
}

/// The axum router serving the whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

async fn dispatch(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = tracing::debug_span!("request", %method, path = uri.path());
    async move {
        let mut audit = AuditEntry { received: crate::meta::now_micro(), ..AuditEntry::default() };
        let resp =
            route(&app, &method, &uri, &headers, body, &mut audit).await.unwrap_or_else(IntoResponse::into_response);
        tracing::debug!(status = resp.status().as_u16(), "done");
        if let Some(log) = app.audit.get() {
            let agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let request_uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
            log.record(&audit, request_uri, resp.status().as_u16(), peer.map(|p| p.0 .0.ip()), agent);
        }
        resp
    }
    .instrument(span)
    .await
}

async fn route(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    audit: &mut AuditEntry,
) -> Result<Response, ApiError> {
    let parsed = request::parse(uri.path(), &app.registry())?;
    let query = request::parse_query(uri.query());
    if let request::Parsed::Route(request::Route::Health) = parsed {
        return Ok(respond::text(StatusCode::OK, "ok"));
    }
    if let request::Parsed::Route(request::Route::Version) = parsed {
        return Ok(respond::ok(&discovery::version()));
    }
    let requester = authenticate(app, headers)?;
    audit.user = Some(requester.clone());
    let decide = |attrs: &Attributes| rbac::authorize(attrs, &Policy::for_request(&app.store, attrs));
    let user = match rbac::impersonate(&requester, headers, decide) {
        Ok(Some(as_user)) => {
            audit.impersonated = Some(as_user.clone());
            as_user
        }
        Ok(None) => requester,
        Err(ImpersonationError::Forbidden(m)) => {
            audit.decision = Some(rbac::Decision::Deny(m.clone()));
            return Err(ApiError::forbidden(m));
        }
        Err(ImpersonationError::Invalid(m)) => return Err(ApiError::bad_request(m)),
    };
    let attrs = match &parsed {
        request::Parsed::Route(_) => Attributes::non_resource(&user, method, uri.path()),
        request::Parsed::Resource(t) => {
            audit.api_version = t.rt.api_version(&t.version);
            // As kube-apiserver's RequestInfo: `?watch` turns a collection GET into a watch (a
            // named GET stays a get; the legacy /watch/ prefix watches either), and a list or
            // watch selecting one name by field is about that name (resourceNames rules apply).
            let watch = t.legacy_watch || (t.name.is_none() && request::flag(&query, "watch"));
            let by_field = query
                .get("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name="))
                .filter(|n| !n.is_empty() && !n.contains([',', '/', '=', '!']));
            let mut attrs = Attributes::resource(
                &user,
                method,
                watch,
                &t.rt.group,
                &t.rt.plural,
                t.sub.as_deref(),
                t.namespace.as_deref(),
                t.name.as_deref(),
            );
            if let (Some(n), "list" | "watch") = (by_field, attrs.verb.as_str()) {
                attrs.name = n.to_string();
            }
            attrs
        }
    };
    let mut decision = decide(&attrs);
    // An apply that would create the object needs `create` as well (upstream's patch handler
    // asks the authorizer again before creating).
    if let (true, request::Parsed::Resource(t)) = (decision.allowed() && is_apply(method, headers), &parsed) {
        let missing = t
            .name
            .as_deref()
            .is_some_and(|n| app.store.get(&t.rt.key(), t.namespace.as_deref().unwrap_or(""), n).is_none());
        if missing && t.sub.is_none() {
            let create = Attributes { verb: "create".into(), ..attrs.clone() };
            let allowed = decide(&create);
            if !allowed.allowed() {
                audit.attributes = Some(create.clone());
                audit.decision = Some(allowed);
                return Err(forbidden(&create));
            }
            decision = allowed;
        }
    }
    audit.attributes = Some(attrs.clone());
    audit.decision = Some(decision.clone());
    if !decision.allowed() {
        return Err(forbidden(&attrs));
    }
    match parsed {
        request::Parsed::Route(r) => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed());
            }
            let reg = app.registry();
            match r {
                request::Route::OpenApiV2 => Ok(respond::ok(&openapi::v2(&reg))),
                request::Route::OpenApiV3Root => Ok(respond::ok(&openapi::v3_root(&reg))),
                request::Route::OpenApiV3(g, v) => openapi::v3_group_version(&reg, &g, &v).map(|d| respond::ok(&d)),
                other => discovery::serve(&reg, &other).map(|d| respond::ok(&d)),
            }
        }
        request::Parsed::Resource(t) => objects::handle(app, method, t, query, headers, body, &user).await,
    }
}

fn is_apply(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::PATCH
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/apply-patch"))
}

/// The `403` a denied request gets, with the details a real apiserver puts in it.
fn forbidden(attrs: &Attributes) -> ApiError {
    let mut e = ApiError::forbidden(attrs.forbidden_message());
    if attrs.resource_request {
        let mut details = serde_json::json!({"kind": attrs.resource});
        if !attrs.name.is_empty() {
            details["name"] = serde_json::json!(attrs.name);
        }
        if !attrs.api_group.is_empty() {
            details["group"] = serde_json::json!(attrs.api_group);
        }
        e.details = Some(details);
    }
    e
}

/// A request made by the control plane's own controllers (the kube-controller-manager's part): it
/// goes through the same write pipeline as any client's (defaults, validation, watch events) and
/// returns the object the server answered with.
pub async fn call(
    app: &Arc<App>,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    let uri: Uri = path.parse().map_err(|_| ApiError::bad_request(format!("bad controller path {path:?}")))?;
    let request::Parsed::Resource(t) = request::parse(uri.path(), &app.registry())? else {
        return Err(ApiError::bad_request(format!("{path:?} is not a resource")));
    };
    let query = request::parse_query(uri.query());
    let mut headers = HeaderMap::new();
    let content_type = if method == Method::PATCH { "application/merge-patch+json" } else { "application/json" };
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("kube-controller-manager/v1.36.0 (linux/amd64)"),
    );
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let controller = UserInfo {
        username: "system:kube-controller-manager".into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
        extra: serde_json::json!({}),
    };
    let resp = objects::handle(app, &method, t, query, &headers, body, &controller).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .map_err(|e| ApiError::internal(format!("reading a controller response: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        let message = value["message"].as_str().unwrap_or("controller request failed").to_string();
        return Err(ApiError::new(status.as_u16(), "InternalError", message));
    }
    Ok(value)
}

fn authenticate(app: &App, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(ApiError::unauthorized)?;
    // Tokens must be meant for this API server (its issuer is the default API audience).
    let api_audience = [crate::auth::ISSUER.to_string()];
    reviews::authenticate_token(app, token.trim(), Some(&api_audience)).map_err(|_| ApiError::unauthorized())
}
