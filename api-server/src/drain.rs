//! Reads what a handler left unread of a request body before its answer goes out.
//!
//! Refusals are decided before a body is read (an unknown trigger, a missing token, a body over a
//! route's limit), which is right for memory but leaves the rest of the body unread, and a
//! connection closed with unread bytes is reset. Behind the edge that reset races the answer: Caddy
//! then answers 502 instead of the refusal, counts it against the replica (passive health checks
//! take it out for `fail_duration`, so any sender could take the API out), or keeps the client's
//! connection and parses the rest of the body as its next request (431). Discarding the rest, up to
//! what the edge lets through, keeps the connection in step at the cost of bandwidth only: nothing
//! is buffered.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;

/// Drained at most on API routes: more than the edge passes to `/api` (1 MiB by default).
pub const API_DRAIN: u64 = 2 * 1024 * 1024;
/// Drained at most on webhook routes: more than the edge passes to `/webhooks` (26 MiB by default).
pub const WEBHOOK_DRAIN: u64 = 32 * 1024 * 1024;
/// Longest an answer waits for the rest of a body (a sender dribbling bytes gets a closed connection).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Middleware: runs the handler on a shared view of the body, then discards what it left, up to the
/// route's cap and [`DRAIN_TIMEOUT`], before the response is returned.
pub async fn drain_unread(req: Request, next: Next) -> Response {
    let cap = if req.uri().path().starts_with("/webhooks/") { WEBHOOK_DRAIN } else { API_DRAIN };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Nothing to keep in step, or more than would be read anyway: the connection closes as before.
    if req.body().is_end_stream() || declared.is_some_and(|n| n > cap) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let shared = Shared(Arc::new(Mutex::new(body)));
    let resp = next.run(Request::from_parts(parts, Body::new(shared.clone()))).await;
    let rest = std::mem::replace(&mut *shared.lock(), Body::empty());
    drain_rest(rest, cap, DRAIN_TIMEOUT).await;
    resp
}

/// Discards what is left of `rest`, for at most `timeout`.
async fn drain_rest(rest: Body, cap: u64, timeout: Duration) {
    if !rest.is_end_stream() {
        let _ = tokio::time::timeout(timeout, discard(rest, cap)).await;
    }
}

/// Reads and drops `body` until it ends, fails, or `cap` bytes were read; returns the bytes read.
pub async fn discard(mut body: Body, cap: u64) -> u64 {
    let mut read = 0u64;
    while read <= cap {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
            Some(Err(_)) | None => break,
        }
    }
    read
}

/// The request body, readable by the handler and afterwards by [`drain_unread`].
#[derive(Clone)]
struct Shared(Arc<Mutex<Body>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Body> {
        // A handler that panicked mid-read leaves a body that is still safe to read on.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut *self.lock()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.lock().is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.lock().size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt as _;

    /// A body of `chunks` chunks of 64 KiB that counts the bytes taken from it.
    fn counted(chunks: usize, taken: Arc<AtomicU64>) -> Body {
        let stream = futures::stream::iter((0..chunks).map(move |_| {
            taken.fetch_add(65536, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 65536]))
        }));
        Body::from_stream(stream)
    }

    fn app() -> Router {
        Router::new()
            .route("/webhooks/ns/unknown", post(|| async { (axum::http::StatusCode::NOT_FOUND, "no such trigger") }))
            .route(
                "/api/v1/small",
                post(|body: Body| async move {
                    // Reads up to its own limit, then refuses, as the JSON extractors do.
                    match axum::body::to_bytes(body, 64 * 1024).await {
                        Ok(_) => axum::http::StatusCode::OK,
                        Err(_) => axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    }
                }),
            )
            .layer(axum::middleware::from_fn(drain_unread))
    }

    async fn send(path: &str, body: Body) -> axum::http::StatusCode {
        let req = axum::http::Request::builder().method("POST").uri(path).body(body).unwrap();
        app().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_refusal_before_reading_still_reads_the_whole_body_first() {
        let taken = Arc::new(AtomicU64::new(0));
        assert_eq!(send("/webhooks/ns/unknown", counted(32, taken.clone())).await, 404);
        assert_eq!(taken.load(Ordering::SeqCst), 32 * 65536, "2 MiB read and dropped");
    }

    #[tokio::test]
    async fn a_body_over_the_handlers_limit_is_refused_and_read_to_its_end() {
        let taken = Arc::new(AtomicU64::new(0));
        assert_eq!(send("/api/v1/small", counted(8, taken.clone())).await, 413);
        assert_eq!(taken.load(Ordering::SeqCst), 8 * 65536);
        let taken = Arc::new(AtomicU64::new(0));
        assert_eq!(send("/api/v1/small", counted(1, taken.clone())).await, 200);
        assert_eq!(taken.load(Ordering::SeqCst), 65536);
    }

    #[tokio::test]
    async fn no_more_than_the_routes_cap_is_read() {
        let taken = Arc::new(AtomicU64::new(0));
        // 64 MiB to an API route: reading stops just past its 2 MiB cap.
        assert_eq!(send("/api/v1/small", counted(1024, taken.clone())).await, 413);
        let read = taken.load(Ordering::SeqCst);
        assert!(read > API_DRAIN && read <= API_DRAIN + 4 * 65536, "{read}");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_not_read_at_all() {
        let taken = Arc::new(AtomicU64::new(0));
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/webhooks/ns/unknown")
            .header(CONTENT_LENGTH, (WEBHOOK_DRAIN + 1).to_string())
            .body(counted(4, taken.clone()))
            .unwrap();
        assert_eq!(app().oneshot(req).await.unwrap().status(), 404);
        assert_eq!(taken.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_sender_that_never_finishes_holds_the_answer_for_the_timeout_only() {
        let endless = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let drained = drain_rest(Body::from_stream(endless), WEBHOOK_DRAIN, Duration::from_millis(200));
        assert!(tokio::time::timeout(Duration::from_secs(60), drained).await.is_ok(), "the drain gave up");
    }
}
