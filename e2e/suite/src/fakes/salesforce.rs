//! A local stand-in for Salesforce's OAuth 2.0 endpoints: the JWT bearer token endpoint (checks the
//! RS256 signature against the connected app's certificate key, `iss`, `sub`, `aud`, `exp`), token
//! revocation, and `userinfo` so a task can prove its token works. Records every token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::jwt;

/// A connected app allowed to use the JWT bearer flow for one user.
#[derive(Clone)]
pub struct ConnectedApp {
    /// Consumer key (`iss`).
    pub client_id: String,
    /// Pre-authorised user (`sub`).
    pub username: String,
    /// PKCS#1 DER public key of the certificate uploaded to the app.
    pub public_key: Vec<u8>,
}

/// One issued access token.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The token.
    pub token: String,
    /// For whom.
    pub username: String,
    /// Revoked since.
    pub revoked: bool,
    /// Times it was used successfully on `userinfo`.
    pub used: u32,
}

#[derive(Default)]
struct Inner {
    apps: Vec<ConnectedApp>,
    issued: Vec<Issued>,
    rejections: Vec<String>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeSalesforce {
    /// Base URL (login URL and instance URL at once).
    pub url: String,
    /// `aud` it accepts: `https://login.salesforce.com` or `https://test.salesforce.com`.
    pub audience: String,
    inner: Arc<Mutex<Inner>>,
}

type Shared = (Arc<Mutex<Inner>>, String, String);

impl FakeSalesforce {
    /// Serves on a free local port; accepts assertions for `audience`.
    pub async fn start(audience: &str, apps: Vec<ConnectedApp>) -> FakeSalesforce {
        let inner = Arc::new(Mutex::new(Inner { apps, ..Default::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Shared = (inner.clone(), url.clone(), audience.to_string());
        let app = Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/oauth2/revoke", post(revoke))
            .route("/services/oauth2/userinfo", get(userinfo))
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSalesforce { url, audience: audience.into(), inner }
    }

    /// Every token issued so far.
    pub fn issued(&self) -> Vec<Issued> {
        self.inner.lock().map(|i| i.issued.clone()).unwrap_or_default()
    }

    /// Why requests were refused (error descriptions), in order.
    pub fn rejections(&self) -> Vec<String> {
        self.inner.lock().map(|i| i.rejections.clone()).unwrap_or_default()
    }
}

fn oauth_error(inner: &Mutex<Inner>, status: StatusCode, error: &str, description: &str) -> Response {
    if let Ok(mut i) = inner.lock() {
        i.rejections.push(description.to_string());
    }
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn token(State((inner, url, audience)): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant type not supported");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_request", "assertion is missing");
    };
    let Ok(claims) = jwt::claims(assertion) else {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_grant", "invalid assertion");
    };
    let app = inner.lock().ok().and_then(|i| i.apps.iter().find(|a| claims["iss"] == a.client_id.as_str()).cloned());
    let Some(app) = app else {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_client_id", "client identifier invalid");
    };
    if jwt::verify(assertion, &app.public_key).is_err() {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_grant", "invalid assertion signature");
    }
    if claims["aud"] != audience.as_str() {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_grant", "audience is invalid");
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > jwt::now() && exp <= jwt::now() + 300 => {}
        Some(exp) if exp <= jwt::now() => {
            return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_grant", "expired assertion")
        }
        _ => return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_grant", "invalid assertion expiration"),
    }
    if claims["sub"] != app.username.as_str() {
        return oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_grant", "user hasn't approved this consumer");
    }
    let token = jwt::random_token("00DFAKE!AQ");
    if let Ok(mut i) = inner.lock() {
        i.issued.push(Issued { token: token.clone(), username: app.username.clone(), revoked: false, used: 0 });
    }
    Json(json!({
        "access_token": token,
        "scope": "api",
        "instance_url": url,
        "id": format!("{url}/id/00DFAKE/005FAKE"),
        "token_type": "Bearer",
        "issued_at": (jwt::now() * 1000).to_string(),
    }))
    .into_response()
}

async fn revoke(State((inner, _, _)): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let token = form.get("token").cloned().unwrap_or_default();
    let found = inner.lock().ok().and_then(|mut i| {
        i.issued.iter_mut().find(|t| t.token == token && !t.revoked).map(|t| {
            t.revoked = true;
        })
    });
    match found {
        Some(()) => StatusCode::OK.into_response(),
        None => oauth_error(&inner, StatusCode::BAD_REQUEST, "invalid_token", "invalid token"),
    }
}

async fn userinfo(State((inner, _, _)): State<Shared>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let user = inner.lock().ok().and_then(|mut i| {
        i.issued.iter_mut().find(|t| t.token == bearer && !t.revoked).map(|t| {
            t.used += 1;
            t.username.clone()
        })
    });
    match user {
        Some(u) => Json(json!({"preferred_username": u, "organization_id": "00DFAKE"})).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])),
        )
            .into_response(),
    }
}
