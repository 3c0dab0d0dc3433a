//! A registry in front of the test registry whose first answer for each repository is late: a
//! node pulling through it sees a slow first pull of an image and fast pulls after (the layers are
//! then on the node), as on a real node behind a slow link.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

struct Proxy {
    upstream: String,
    delay: Duration,
    seen: Mutex<BTreeSet<String>>,
    http: reqwest::Client,
}

/// Starts one forwarding to `upstream` (`host:port`, plain HTTP); answers its `host:port`.
pub async fn start(upstream: &str, delay: Duration) -> String {
    crate::tls();
    let proxy = Arc::new(Proxy {
        upstream: upstream.to_string(),
        delay,
        seen: Mutex::new(BTreeSet::new()),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    // `/v2/<repository>/manifests/<reference>`: the first manifest asked for a repository waits.
    let path = uri.path().to_string();
    if let Some(repo) = path.strip_prefix("/v2/").and_then(|r| r.split_once("/manifests/")).map(|(r, _)| r.to_string())
    {
        let first = p.seen.lock().map(|mut s| s.insert(repo)).unwrap_or(false);
        if first {
            tokio::time::sleep(p.delay).await;
        }
    }
    let url = format!("http://{}{}", p.upstream, uri.path_and_query().map(|q| q.as_str()).unwrap_or("/"));
    let mut req = p.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            for (k, v) in &headers {
                if k != "content-length" && k != "transfer-encoding" {
                    resp.headers_mut().insert(k, v.clone());
                }
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
