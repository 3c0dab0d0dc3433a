//! Errors as RFC 9457 problem details (`application/problem+json`), each with a stable `type`.
//! Nothing internal (Kubernetes messages about the API server itself, stack traces, secrets) ever
//! reaches a client: those are logged and answered with a generic `internal` problem.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Base of every problem `type`.
pub const TYPE_BASE: &str = "https://ephemera.dev/problems/";

/// One invalid field.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `command` or `env.HOME`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The problems every authenticated endpoint can answer with (declared once for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its OpenAPI description is used
pub enum Refusals {
    /// Not authenticated
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not allowed
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Rate limited (with `Retry-After`)
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// Unavailable (the cluster could not be reached)
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The problems of an endpoint that takes a JSON body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its OpenAPI description is used
pub enum BodyProblems {
    /// Malformed
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// Body too large
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Not JSON
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// Invalid
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// This occurrence.
    pub detail: String,
    /// Invalid fields, for `validation-failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every error the API returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (bad JSON, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// No or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it (already exists, not finished, ...).
    #[error("{detail}")]
    Conflict {
        /// Stable slug.
        kind: &'static str,
        /// Explanation.
        detail: String,
    },
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body too large.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not JSON.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// Well-formed but invalid.
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    /// An `Idempotency-Key` reused with a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    /// Rate limited.
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// The request took too long.
    #[error("the request took too long")]
    Timeout,
    /// Kubernetes or another dependency is unavailable.
    #[error("the cluster is unavailable; retry later")]
    Unavailable,
    /// A bug or misconfiguration (details logged, not returned).
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict { kind, .. } => (StatusCode::CONFLICT, kind, "Conflict"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", "Validation failed"),
            Self::IdempotencyMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused")
            }
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout", "Request timed out"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        Problem {
            type_: format!("{TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                Self::Validation(e) => e.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// Maps a Kubernetes API error for a Task call (`what` names the object).
    pub fn from_kube(e: kube::Error, what: &str) -> ApiError {
        match e {
            kube::Error::Api(s) if s.code == 404 => ApiError::NotFound(format!("{what} not found")),
            kube::Error::Api(s) if s.code == 409 => {
                ApiError::Conflict { kind: "conflict", detail: format!("{what} was changed or already exists") }
            }
            // The cluster's own validation (e.g. label syntax, CEL rules): its message is about the
            // caller's input, so it is passed on.
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                ApiError::Validation(vec![FieldError { field: String::new(), message: s.message }])
            }
            kube::Error::Api(s) if s.code == 429 => ApiError::RateLimited(1),
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
                tracing::error!(error = %s.message, "the API server's own Kubernetes access was refused");
                ApiError::Internal
            }
            other => {
                tracing::warn!(error = %other, "Kubernetes call failed");
                ApiError::Unavailable
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match &self {
            ApiError::Unauthorized(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"ephemera\""));
            }
            ApiError::RateLimited(s) => {
                if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            // The rest of the body is not read: the connection cannot carry another request, and
            // saying so keeps clients from reusing it (they would see a reset, not an answer).
            ApiError::TooLarge(_) => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}
