//! A local OIDC issuer (discovery document + JWKS), as GitHub Actions' token service serves them.

use axum::routing::get;
use axum::{Json, Router};
use ephemera_api::auth::oidc::{Issuer, OidcConfig, Rule};
use serde_json::{json, Value};

use super::jwt;

/// The running issuer.
pub struct FakeIssuer {
    /// Issuer URL (`iss`).
    pub url: String,
    key: String,
}

impl FakeIssuer {
    /// Serves discovery and a JWKS with one fresh key.
    pub async fn start() -> FakeIssuer {
        let key = jwt::generate_key();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let jwks = json!({"keys": [jwt::jwk(&key, "k1")]});
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/.well-known/jwks"), "id_token_signing_alg_values_supported": ["RS256"]});
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { Json(discovery) }))
            .route("/.well-known/jwks", get(move || async move { Json(jwks) }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeIssuer { url, key }
    }

    /// The API server's OIDC settings trusting this issuer, for audience `ephemera`, with one rule.
    pub fn config(&self, rule: Rule) -> OidcConfig {
        OidcConfig {
            issuers: vec![Issuer {
                issuer: self.url.clone(),
                audience: "ephemera".into(),
                jwks_url: None,
                rules: vec![rule],
            }],
        }
    }

    /// An ID token with these claims (`iss` filled in unless given).
    pub fn token(&self, mut claims: Value) -> String {
        if claims.get("iss").is_none() {
            claims["iss"] = json!(self.url);
        }
        jwt::sign(&self.key, "k1", &claims)
    }
}
