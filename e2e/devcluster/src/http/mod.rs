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

use crate::auth::{Auth, UserInfo};
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

async fn dispatch(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let span = tracing::debug_span!("request", %method, path = uri.path());
    async move {
        let resp = route(&app, &method, &uri, &headers, body).await.unwrap_or_else(IntoResponse::into_response);
        tracing::debug!(status = resp.status().as_u16(), "done");
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
) -> Result<Response, ApiError> {
    let parsed = request::parse(uri.path(), &app.registry())?;
    let query = request::parse_query(uri.query());
    if let request::Parsed::Route(request::Route::Health) = parsed {
        return Ok(respond::text(StatusCode::OK, "ok"));
    }
    if let request::Parsed::Route(request::Route::Version) = parsed {
        return Ok(respond::ok(&discovery::version()));
    }
    let user = authenticate(app, headers)?;
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
