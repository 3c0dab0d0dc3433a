//! The dashboard: a small single-page app (no framework, no build step) embedded in the binary and
//! served at `/` and `/dashboard/*`. It talks only to this API, with the caller's own token held in
//! the page's memory; the headers below keep it that way (no inline script, nothing from another
//! origin, never framed).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The app's files, by the name they are served under (`index.html` at `/`).
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../dashboard/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/dom.js"),
    },
    Asset {
        name: "live.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/live.js"),
    },
    Asset {
        name: "tasks.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/tasks.js"),
    },
    Asset {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/pages.js"),
    },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../dashboard/app.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_bytes!("../dashboard/icon.svg") },
];

/// The page may run only its own script and style, and talk only to its own origin (the API, its
/// WebSocket included: CSP's 'self' covers ws/wss of the same host).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Strong ETags (a hash of each file), so a browser revalidates cheaply and never runs a stale app.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

fn serve(index: usize, headers: &HeaderMap) -> Response {
    let (Some(asset), Some(etag)) = (ASSETS.get(index), ETAGS.get(index)) else {
        return ApiError::NotFound("no such file".into()).into_response();
    };
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    h.insert("content-security-policy", HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    resp
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name && a.name != "index.html") {
        Some(i) => serve(i, &headers),
        None => ApiError::NotFound(format!("no dashboard file {name:?}")).into_response(),
    }
}

/// `/` (the app) and `/dashboard/{file}` (its script, style and icon).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/dashboard/{file}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn fetch(path: &str, etag: Option<&str>) -> Response {
        let mut req = axum::http::Request::builder().uri(path);
        if let Some(e) = etag {
            req = req.header(IF_NONE_MATCH, e);
        }
        let app: Router = routes();
        app.oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn the_app_is_served_with_a_policy_that_allows_only_its_own_origin() {
        let resp = fetch("/", None).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        for f in ["app.js", "app.css", "icon.svg"] {
            assert_eq!(fetch(&format!("/dashboard/{f}"), None).await.status(), 200, "{f}");
        }
    }

    #[tokio::test]
    async fn a_browser_holding_the_current_etag_gets_304_and_unknown_files_404() {
        let resp = fetch("/dashboard/app.js", None).await;
        let etag = resp.headers()[ETAG].to_str().unwrap().to_string();
        assert_eq!(fetch("/dashboard/app.js", Some(&etag)).await.status(), 304);
        assert_eq!(fetch("/dashboard/app.js", Some("\"stale\"")).await.status(), 200);
        assert_eq!(fetch("/dashboard/index.html", None).await.status(), 404);
        assert_eq!(fetch("/dashboard/..%2Fmain.rs", None).await.status(), 404);
    }

    /// The page loads nothing from elsewhere and runs no inline script (the policy would block it,
    /// and the app would break silently).
    #[test]
    fn the_page_references_only_its_own_files() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("http://") && !html.contains("https://"), "no external URLs");
        assert!(!html.contains("<script>") && !html.contains(" style="), "no inline script or style");
        assert!(html.contains("src=\"/dashboard/app.js\""));
    }
}
