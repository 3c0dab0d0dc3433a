//! A local stand-in for the GitHub App endpoints: installation access tokens (checks the app JWT's
//! RS256 signature, `iss`, `iat`/`exp` and the 10-minute limit, and that the requested repositories
//! and permissions are within the installation's), `DELETE /installation/token`, and
//! `GET /installation/repositories` so a task can prove its token works. Records every token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::jwt;

/// A GitHub App installation.
#[derive(Clone)]
pub struct Installation {
    /// Installation id.
    pub id: u64,
    /// The App's id (`iss`).
    pub app_id: String,
    /// The App's PKCS#1 DER public key.
    pub public_key: Vec<u8>,
    /// Repositories the installation can access.
    pub repositories: Vec<String>,
    /// Permissions granted to the installation (`read` < `write` < `admin`).
    pub permissions: BTreeMap<String, String>,
}

/// One issued installation token.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The token.
    pub token: String,
    /// Repositories it is limited to.
    pub repositories: Vec<String>,
    /// Permissions it carries.
    pub permissions: BTreeMap<String, String>,
    /// Revoked since.
    pub revoked: bool,
    /// Successful uses.
    pub used: u32,
}

#[derive(Default)]
struct Inner {
    installations: Vec<Installation>,
    issued: Vec<Issued>,
    rejections: Vec<String>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeGithub {
    /// API base URL.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGithub {
    /// Serves on a free local port.
    pub async fn start(installations: Vec<Installation>) -> FakeGithub {
        let inner = Arc::new(Mutex::new(Inner { installations, ..Default::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/app/installations/{id}/access_tokens", post(create_token))
            .route("/installation/token", delete(revoke))
            .route("/installation/repositories", get(repositories))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub { url, inner }
    }

    /// Every token issued so far.
    pub fn issued(&self) -> Vec<Issued> {
        self.inner.lock().map(|i| i.issued.clone()).unwrap_or_default()
    }

    /// Why requests were refused, in order.
    pub fn rejections(&self) -> Vec<String> {
        self.inner.lock().map(|i| i.rejections.clone()).unwrap_or_default()
    }
}

fn error(inner: &Mutex<Inner>, status: StatusCode, message: &str) -> Response {
    if let Ok(mut i) = inner.lock() {
        i.rejections.push(message.to_string());
    }
    (status, Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}))).into_response()
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .unwrap_or_default()
        .to_string()
}

fn level(p: &str) -> u8 {
    match p {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => u8::MAX,
    }
}

async fn create_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let jwt_text = bearer(&headers);
    let Ok(claims) = jwt::claims(&jwt_text) else {
        return error(&inner, StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded");
    };
    let installation = inner.lock().ok().and_then(|i| i.installations.iter().find(|x| x.id == id).cloned());
    let Some(inst) = installation else { return error(&inner, StatusCode::NOT_FOUND, "Not Found") };
    let iss = match &claims["iss"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if iss != inst.app_id {
        return error(&inner, StatusCode::UNAUTHORIZED, "'Issuer' claim ('iss') must be an Integer or a Client ID");
    }
    if jwt::verify(&jwt_text, &inst.public_key).is_err() {
        return error(&inner, StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded");
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return error(&inner, StatusCode::UNAUTHORIZED, "Missing 'issued at' or 'expiration time' claim");
    };
    let now = jwt::now();
    if iat > now + 60 {
        return error(
            &inner,
            StatusCode::UNAUTHORIZED,
            "'Issued at' claim ('iat') must be an Integer representing a time in the past",
        );
    }
    if exp <= now {
        return error(&inner, StatusCode::UNAUTHORIZED, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires");
    }
    if exp - iat > 600 {
        return error(&inner, StatusCode::UNAUTHORIZED, "'Expiration time' claim ('exp') is too far in the future");
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let repositories: Vec<String> = match body.get("repositories") {
        Some(Value::Array(a)) => a.iter().filter_map(|r| r.as_str().map(String::from)).collect(),
        _ => inst.repositories.clone(),
    };
    if repositories.iter().any(|r| !inst.repositories.contains(r)) {
        return error(
            &inner,
            StatusCode::UNPROCESSABLE_ENTITY,
            "There is at least one repository that does not exist or is not accessible to the parent installation.",
        );
    }
    let permissions: BTreeMap<String, String> = match body.get("permissions") {
        Some(Value::Object(m)) => {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
        }
        _ => inst.permissions.clone(),
    };
    let within = permissions.iter().all(|(k, v)| inst.permissions.get(k).is_some_and(|have| level(v) <= level(have)));
    if !within {
        return error(
            &inner,
            StatusCode::UNPROCESSABLE_ENTITY,
            "The permissions requested are not granted to this installation.",
        );
    }
    let token = jwt::random_token("ghs_");
    if let Ok(mut i) = inner.lock() {
        i.issued.push(Issued {
            token: token.clone(),
            repositories: repositories.clone(),
            permissions: permissions.clone(),
            revoked: false,
            used: 0,
        });
    }
    let expires = jiff::Timestamp::from_second(now + 3600).map(|t| t.to_string()).unwrap_or_default();
    let repos: Vec<Value> = repositories.iter().map(|r| json!({"name": r, "full_name": format!("acme/{r}")})).collect();
    (StatusCode::CREATED, Json(json!({"token": token, "expires_at": expires, "permissions": permissions, "repository_selection": "selected", "repositories": repos}))).into_response()
}

async fn revoke(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let found = inner
        .lock()
        .ok()
        .and_then(|mut i| i.issued.iter_mut().find(|t| t.token == token && !t.revoked).map(|t| t.revoked = true));
    match found {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => error(&inner, StatusCode::UNAUTHORIZED, "Bad credentials"),
    }
}

async fn repositories(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let repos = inner.lock().ok().and_then(|mut i| {
        i.issued.iter_mut().find(|t| t.token == token && !t.revoked).map(|t| {
            t.used += 1;
            t.repositories.clone()
        })
    });
    match repos {
        Some(r) => {
            let list: Vec<Value> = r.iter().map(|n| json!({"name": n, "full_name": format!("acme/{n}")})).collect();
            Json(json!({"total_count": list.len(), "repositories": list})).into_response()
        }
        None => error(&inner, StatusCode::UNAUTHORIZED, "Bad credentials"),
    }
}
