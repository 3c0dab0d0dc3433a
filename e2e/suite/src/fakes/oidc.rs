//! A local OIDC issuer (discovery document + JWKS over HTTPS, with a CA of its own), as GitHub
//! Actions' token service serves them.

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
    /// Its CA certificate (PEM), which the API server is configured to trust for this issuer.
    pub ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeIssuer {
    /// Serves discovery and a JWKS with one fresh key.
    pub async fn start() -> FakeIssuer {
        crate::tls();
        let key = jwt::generate_key();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let tls = ephemera_devcluster::tls::Tls::generate().expect("certificates");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &tls.ca_pem).expect("ca file");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config().expect("tls config"));
        let jwks = json!({"keys": [jwt::jwk(&key, "k1")]});
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/.well-known/jwks"), "id_token_signing_alg_values_supported": ["RS256"]});
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { Json(discovery) }))
            .route("/.well-known/jwks", get(move || async move { Json(jwks) }));
        tokio::spawn(ephemera_devcluster::serve_tls(listener, acceptor, app));
        FakeIssuer { url, key, ca_file, _dir: dir }
    }

    /// The API server's OIDC settings trusting this issuer, for audience `ephemera`, with one rule.
    pub fn config(&self, rule: Rule) -> OidcConfig {
        OidcConfig {
            issuers: vec![Issuer {
                issuer: self.url.clone(),
                audience: "ephemera".into(),
                jwks_url: None,
                rules: vec![rule],
                ca_file: Some(self.ca_file.clone()),
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
