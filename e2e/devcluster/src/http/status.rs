//! Kubernetes `Status` failure objects: every error the server returns is one of these.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

/// An API error rendered as a `meta/v1 Status` with the HTTP code and reason a real apiserver uses.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// Machine-readable `Status.reason` (e.g. `NotFound`, `Conflict`, `Invalid`).
    pub reason: &'static str,
    /// Human-readable `Status.message`.
    pub message: String,
    /// Optional `Status.details` (name, group, kind, causes, retryAfterSeconds).
    pub details: Option<Value>,
}

/// Names an object for error messages: `resource[.group] "name"`.
pub struct Subject<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({ "name": self.name, "kind": self.resource });
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

impl ApiError {
    /// A plain error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 for an unknown path (no resource matched): plain text, as a real apiserver answers.
    pub fn path_not_found() -> Self {
        Self::new(404, "", "404 page not found")
    }

    /// 404 for a missing object.
    pub fn not_found(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(404, "NotFound", format!("{} \"{}\" not found", s.qualified(), s.name))
        }
    }

    /// 409 AlreadyExists on create.
    pub fn already_exists(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(409, "AlreadyExists", format!("{} \"{}\" already exists", s.qualified(), s.name))
        }
    }

    /// 409 Conflict for a stale resourceVersion or failed precondition.
    pub fn conflict(s: Subject<'_>, why: &str) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{}\": {why}", s.qualified(), s.name),
            )
        }
    }

    /// The standard stale-resourceVersion conflict.
    pub fn stale(s: Subject<'_>) -> Self {
        Self::conflict(s, "the object has been modified; please apply your changes to the latest version and try again")
    }

    /// 422 Invalid with field causes (`[{reason, message, field}]`).
    pub fn invalid(group: &str, kind: &str, name: &str, message: String, causes: Value) -> Self {
        let mut details = json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self { details: Some(details), ..Self::new(422, "Invalid", message) }
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type:?}"),
        )
    }

    /// 410 Expired for a watch or continue token older than retained history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.reason.is_empty() {
            return super::respond::text(code, format!("{}\n", self.message));
        }
        super::respond::json(code, &self.to_status())
    }
}
