//! Delivers progress events to the API server without ever slowing the task command: events go into a
//! bounded buffer (a full buffer drops and counts), a background task posts them in batches with the
//! attempt's reporting token, retrying with back-off while the API server is slow or down.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemera_crds::worker::{ProgressBatch, WorkerEvent};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

use crate::progress::Progress;

/// Events buffered before new ones are dropped.
const BUFFER: usize = 256;
/// Events per request at most.
const BATCH: usize = 100;

/// Where and as whom to report.
pub struct Target {
    /// API server base URL.
    pub url: String,
    /// The attempt's reporting token.
    pub token: SecretString,
    /// Task namespace.
    pub namespace: String,
    /// Task name.
    pub task: String,
    /// Attempt.
    pub attempt: i32,
}

/// The reporting side of an attempt.
pub struct Reporter {
    tx: Option<mpsc::Sender<WorkerEvent>>,
    dropped: Arc<AtomicU64>,
    wseq: AtomicI64,
    last: Mutex<Option<Progress>>,
    task: Option<tokio::task::JoinHandle<u64>>,
}

impl Reporter {
    /// Keeps only the last event (no API server configured).
    pub fn disabled() -> Reporter {
        Reporter {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
            wseq: AtomicI64::new(0),
            last: Mutex::new(None),
            task: None,
        }
    }

    /// Starts delivering to `target`.
    pub fn start(target: Target) -> Reporter {
        let (tx, rx) = mpsc::channel(BUFFER);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(deliver(target, rx, dropped.clone()));
        Reporter { tx: Some(tx), dropped, wseq: AtomicI64::new(0), last: Mutex::new(None), task: Some(task) }
    }

    /// Records a progress line; never waits.
    pub fn offer(&self, p: &Progress) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(p.clone());
        }
        let Some(tx) = &self.tx else { return };
        let event = WorkerEvent {
            wseq: self.wseq.fetch_add(1, Ordering::Relaxed) + 1,
            time: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            percent: p.pct,
            message: p.msg.clone(),
        };
        if tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The last progress line.
    pub fn last(&self) -> Option<Progress> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Stops accepting events and gives delivery `within` to finish; returns how many events were
    /// never delivered (dropped or still pending).
    pub async fn finish(mut self, within: Duration) -> u64 {
        drop(self.tx.take());
        let Some(task) = self.task.take() else { return 0 };
        let abort = task.abort_handle();
        match tokio::time::timeout(within, task).await {
            Ok(Ok(undelivered)) => undelivered,
            _ => {
                abort.abort();
                self.dropped.load(Ordering::Relaxed) + u64::try_from(self.wseq.load(Ordering::Relaxed)).unwrap_or(0)
            }
        }
    }
}

/// Posts batches until the channel closes; returns the undelivered count.
async fn deliver(target: Target, mut rx: mpsc::Receiver<WorkerEvent>, dropped: Arc<AtomicU64>) -> u64 {
    let http = match crate::trust::client_builder().timeout(Duration::from_secs(5)).build() {
        Ok(h) => h,
        Err(_) => return 0,
    };
    let url = format!(
        "{}/api/v1/namespaces/{}/tasks/{}/progress",
        target.url.trim_end_matches('/'),
        target.namespace,
        target.task
    );
    let mut undelivered = 0u64;
    let mut refused = false;
    while let Some(first) = rx.recv().await {
        let mut events = vec![first];
        while events.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        if refused {
            undelivered += events.len() as u64;
            continue;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let batch = ProgressBatch {
                attempt: target.attempt,
                events: events.clone(),
                dropped: dropped.load(Ordering::Relaxed),
            };
            let resp = http.post(&url).bearer_auth(target.token.expose_secret()).json(&batch).send().await;
            let retry_after = resp
                .as_ref()
                .ok()
                .and_then(|r| r.headers().get("retry-after"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match resp.map(|r| r.status().as_u16()) {
                Ok(s) if (200..300).contains(&s) => break,
                // The server coalesces status writes (about one a second per Task): wait as told,
                // then send what has piled up meanwhile in the same, bigger batch.
                Ok(429) => {
                    tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 10))).await;
                    while events.len() < BATCH {
                        match rx.try_recv() {
                            Ok(e) => events.push(e),
                            Err(_) => break,
                        }
                    }
                }
                // The attempt is over or the token is refused: reporting more cannot succeed.
                Ok(s @ (400 | 401 | 403 | 404 | 409 | 422)) => {
                    tracing::warn!(status = s, "the API server refused progress reports; no more will be sent");
                    undelivered += events.len() as u64;
                    refused = true;
                    break;
                }
                _ => {
                    // Slow or down: keep trying; the command is never blocked (the buffer drops).
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    undelivered + dropped.load(Ordering::Relaxed)
}
