//! Response helpers shared by every handler.

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

/// A JSON response with the given status.
pub fn json(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// 200 OK with a JSON body.
pub fn ok(body: &Value) -> Response {
    json(StatusCode::OK, body)
}

/// 201 Created with a JSON body.
pub fn created(body: &Value) -> Response {
    json(StatusCode::CREATED, body)
}

/// A plain-text response.
pub fn text(code: StatusCode, body: impl Into<String>) -> Response {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
