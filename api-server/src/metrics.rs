//! Request metrics (Prometheus text): requests by route, method and status, and their latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters of the API server.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<([u64; BUCKETS.len() + 1], f64, u64)>,
    /// Tasks created through the API.
    pub tasks_created: AtomicU64,
    /// Progress events taken from workers.
    pub progress_events: AtomicU64,
    /// Live subscribers cut off for falling behind.
    pub slow_consumers: AtomicU64,
    /// Connections closed at accept because the connection limit was reached.
    pub connections_refused: AtomicU64,
    /// Log follows ended because their credentials were revoked or expired.
    pub streams_reauth_ended: AtomicU64,
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let s = took.as_secs_f64();
            let i = BUCKETS.iter().position(|b| s <= *b).unwrap_or(BUCKETS.len());
            l.0[i] += 1;
            l.1 += s;
            l.2 += 1;
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP ephemera_api_requests_total Requests by route, method and status.\n# TYPE ephemera_api_requests_total counter");
        for ((route, method, status), n) in self.requests.lock().map(|r| r.clone()).unwrap_or_default() {
            let _ = writeln!(
                out,
                "ephemera_api_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let (buckets, sum, count) = self.latency.lock().map(|l| *l).unwrap_or(([0; BUCKETS.len() + 1], 0.0, 0));
        let _ = writeln!(out, "# HELP ephemera_api_request_duration_seconds Request latency.\n# TYPE ephemera_api_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += buckets[i];
            let _ = writeln!(out, "ephemera_api_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "ephemera_api_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "ephemera_api_request_duration_seconds_sum {sum}\nephemera_api_request_duration_seconds_count {count}"
        );
        let _ = writeln!(
            out,
            "# HELP ephemera_api_tasks_created_total Tasks created.\n# TYPE ephemera_api_tasks_created_total counter"
        );
        let _ = writeln!(out, "ephemera_api_tasks_created_total {}", self.tasks_created.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP ephemera_api_progress_events_total Progress events taken from workers.\n# TYPE ephemera_api_progress_events_total counter");
        let _ = writeln!(out, "ephemera_api_progress_events_total {}", self.progress_events.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP ephemera_api_slow_consumers_total Live subscribers cut off for falling behind.\n# TYPE ephemera_api_slow_consumers_total counter");
        let _ = writeln!(out, "ephemera_api_slow_consumers_total {}", self.slow_consumers.load(Ordering::Relaxed));
        for (name, help, v) in [
            (
                "ephemera_api_connections_refused_total",
                "Connections closed at accept: the connection limit was reached.",
                &self.connections_refused,
            ),
            (
                "ephemera_api_streams_reauth_ended_total",
                "Log follows ended because their credentials were revoked or expired.",
                &self.streams_reauth_ended,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}
