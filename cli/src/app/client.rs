//! The REST client: one reqwest client (the system's trust store plus `--ca-file`) for every call,
//! log streams and the WebSocket upgrade too; every failure becomes a [`RequestError`] carrying
//! the server's problem detail.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ephemera_cli::ci::OidcSource;
use ephemera_cli::config::{Settings, TokenFrom};
use ephemera_cli::problem::{from_answer, RequestError};
use reqwest::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// `s` as one URL path segment or query value.
pub use ephemera_cli::url::component as enc;

/// A WebSocket over the client's own connection (same TLS, same proxy settings).
pub type Socket = WebSocketStream<reqwest::Upgraded>;

/// The API, as one user.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    server: String,
    token: Arc<RwLock<Option<(SecretString, TokenFrom)>>>,
    /// Where a CI job's ID token comes from, to fetch a fresh one when the server says it expired.
    oidc: Option<(OidcSource, String)>,
}

/// The longest a JSON call may take (streams have no limit; TCP keepalive finds dead peers).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What an answer was, for the calls that care (replays).
pub struct Answer {
    /// `Idempotent-Replayed: true`.
    pub replayed: bool,
    /// The body.
    pub body: Value,
}

impl Api {
    /// A client for `settings`; a CI job's OIDC token is fetched now when `oidc` is given.
    pub async fn new(settings: &Settings, oidc: Option<(OidcSource, &str)>) -> Result<Api, RequestError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ephemera-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30));
        if let Some(path) = &settings.ca_file {
            let local = |why: String| super::commands::usage("bad --ca-file", why);
            let pem = std::fs::read(path).map_err(|e| local(format!("--ca-file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| local(format!("--ca-file {}: {e}", path.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| RequestError::Unreachable { server: settings.server.clone(), why: e.to_string() })?;
        let api = Api {
            http,
            server: settings.server.clone(),
            token: Arc::new(RwLock::new(settings.token.clone())),
            oidc: oidc.map(|(s, a)| (s, a.to_string())),
        };
        api.refresh().await?;
        Ok(api)
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Fetches the CI job's ID token (again); whether there is a source to fetch from.
    async fn refresh(&self) -> Result<bool, RequestError> {
        let Some((source, audience)) = &self.oidc else { return Ok(false) };
        let fresh = self.ci_token(source.clone(), audience).await?;
        if let Ok(mut t) = self.token.write() {
            *t = Some((fresh, TokenFrom::CiOidc));
        }
        Ok(true)
    }

    /// Sends `build`'s request; a 401 with a CI job's ID token (expired: GitHub's last minutes)
    /// fetches a fresh one and tries once more.
    async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder) -> Result<reqwest::Response, RequestError> {
        let resp = build().send().await.map_err(|e| self.unreachable(e))?;
        if resp.status() == StatusCode::UNAUTHORIZED && matches!(self.oidc, Some((OidcSource::GithubRequest { .. }, _)))
        {
            self.refresh().await?;
            return build().send().await.map_err(|e| self.unreachable(e));
        }
        Ok(resp)
    }

    /// The job's OIDC ID token (GitHub asks its token service; others hand it over in a variable).
    async fn ci_token(&self, source: OidcSource, audience: &str) -> Result<SecretString, RequestError> {
        match source {
            OidcSource::Variable(t) => Ok(t.into()),
            OidcSource::GithubRequest { url, bearer } => {
                let url = OidcSource::github_url(&url, audience);
                let unreachable =
                    |why: String| RequestError::Unreachable { server: "GitHub's OIDC token service".into(), why };
                let resp =
                    self.http.get(&url).bearer_auth(bearer).send().await.map_err(|e| unreachable(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(unreachable(format!(
                        "it answered {} (does the job have `permissions: id-token: write`?)",
                        resp.status()
                    )));
                }
                let v: Value = resp.json().await.map_err(|e| unreachable(e.to_string()))?;
                v["value"]
                    .as_str()
                    .map(|s| s.to_string().into())
                    .ok_or_else(|| unreachable("no `value` in its answer".into()))
            }
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.server));
        match self.token.read().ok().as_deref() {
            Some(Some((t, _))) => r.bearer_auth(t.expose_secret()),
            _ => r,
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> RequestError {
        // reqwest's errors carry the URL, never headers: no token in them.
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        RequestError::Unreachable { server: self.server.clone(), why }
    }

    async fn refusal(&self, resp: reqwest::Response) -> RequestError {
        let status = resp.status().as_u16();
        let problem = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        let body = resp.bytes().await.unwrap_or_default();
        let mut err = from_answer(status, problem, &body);
        if let (RequestError::Answered(p), 401 | 403) = (&mut err, status) {
            let from = match self.token.read().ok().and_then(|t| t.as_ref().map(|(_, f)| *f)) {
                Some(TokenFrom::Flag) => "--token",
                Some(TokenFrom::Environment) => "EPHEMERA_TOKEN",
                Some(TokenFrom::CiOidc) => "the CI job's OIDC token",
                Some(TokenFrom::File) => "the token `ephemera login` stored",
                None => "no token (run `ephemera login`, or pass --token)",
            };
            p.detail = format!("{} (credential: {from})", p.detail).trim_start().to_string();
        }
        err
    }

    /// A JSON call.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: HeaderMap,
    ) -> Result<Answer, RequestError> {
        let resp = self
            .send(|| {
                let r = self.request(method.clone(), path).headers(headers.clone()).timeout(CALL_TIMEOUT);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp).await);
        }
        let replayed = resp.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(Answer { replayed, body })
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> Result<Value, RequestError> {
        Ok(self.call(Method::GET, path, None, HeaderMap::new()).await?.body)
    }

    /// GET a streamed body (logs): the response, to read chunk by chunk.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, RequestError> {
        // A followed log may be quiet for long: no timeout; TCP keepalive notices a dead peer.
        let resp = self.send(|| self.request(Method::GET, path)).await?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp).await);
        }
        Ok(resp)
    }

    /// The next chunk of a streamed body.
    pub async fn chunk(&self, resp: &mut reqwest::Response) -> Result<Option<bytes::Bytes>, RequestError> {
        resp.chunk().await.map_err(|e| self.unreachable(e))
    }

    /// Opens the live stream (`GET /api/v1/stream`, upgraded to a WebSocket on this connection).
    pub async fn websocket(&self) -> Result<Socket, RequestError> {
        let key = generate_key();
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
        if let Ok(v) = HeaderValue::from_str(&key) {
            headers.insert("sec-websocket-key", v);
        }
        let resp = self.send(|| self.request(Method::GET, "/api/v1/stream").headers(headers.clone())).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(self.refusal(resp).await);
        }
        let accepted = resp.headers().get("sec-websocket-accept").and_then(|v| v.to_str().ok()).map(str::to_string);
        if accepted.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
            return Err(RequestError::Unreachable {
                server: self.server.clone(),
                why: "the WebSocket handshake was not answered correctly (a proxy in the way?)".into(),
            });
        }
        let upgraded = resp.upgrade().await.map_err(|e| self.unreachable(e))?;
        // Small frames of one Task's events: tungstenite's default 128 KiB read buffer is zeroed on
        // every read.
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await)
    }
}
