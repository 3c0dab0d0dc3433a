//! Prometheus metrics in the text exposition format, kept in atomics (no registry dependency).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    overflow: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Tasks per phase, and (pending, running) per queue.
type Snapshot = (BTreeMap<String, u64>, BTreeMap<String, (u64, u64)>);

/// Every metric the operator exports.
#[derive(Default)]
pub struct Metrics {
    /// Reconcile durations.
    pub reconcile: Histogram,
    /// Task creation → Pod running.
    pub start_latency: Histogram,
    /// Task creation → Pod created.
    pub pod_created_latency: Histogram,
    /// Failed reconciles.
    pub reconcile_errors: AtomicU64,
    /// Per-attempt Vault tokens minted.
    pub tokens_minted: AtomicU64,
    /// Per-attempt Vault tokens revoked by the operator.
    pub tokens_revoked: AtomicU64,
    /// Failed Vault calls.
    pub vault_errors: AtomicU64,
    /// Wrapping tokens a worker could not unwrap (possible interception).
    pub unwrap_failures: AtomicU64,
    /// Wrapping tokens the hand-off released to their attempt's Pod.
    pub handoffs_released: AtomicU64,
    /// Hand-off requests refused (not the attempt's Pod, already released, bad identity).
    pub handoffs_refused: AtomicU64,
    /// Connections to the hand-off closed at accept (its connection limit was reached).
    pub listener_connections_refused: AtomicU64,
    leader: AtomicBool,
    /// Tasks by phase and queue depth, refreshed from the controller's cache on each reconcile.
    snapshot: Mutex<Snapshot>,
}

impl Metrics {
    /// Marks leadership.
    pub fn set_leader(&self, v: bool) {
        self.leader.store(v, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Replaces the per-phase and per-queue gauges.
    pub fn set_snapshot(&self, phases: BTreeMap<String, u64>, queues: BTreeMap<String, (u64, u64)>) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = (phases, queues);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (phases, queues) = self.snapshot.lock().map(|s| s.clone()).unwrap_or_default();
        let _ = writeln!(out, "# HELP ephemera_tasks Tasks by phase.\n# TYPE ephemera_tasks gauge");
        for (phase, n) in &phases {
            let _ = writeln!(out, "ephemera_tasks{{phase=\"{phase}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP ephemera_queue_pending Tasks waiting in each queue.\n# TYPE ephemera_queue_pending gauge"
        );
        for (q, (pending, _)) in &queues {
            let _ = writeln!(out, "ephemera_queue_pending{{queue=\"{q}\"}} {pending}");
        }
        let _ = writeln!(
            out,
            "# HELP ephemera_queue_running Tasks holding a Pod in each queue.\n# TYPE ephemera_queue_running gauge"
        );
        for (q, (_, running)) in &queues {
            let _ = writeln!(out, "ephemera_queue_running{{queue=\"{q}\"}} {running}");
        }
        let _ = writeln!(out, "# HELP ephemera_operator_leader Whether this replica holds the Lease.\n# TYPE ephemera_operator_leader gauge");
        let _ = writeln!(out, "ephemera_operator_leader {}", u8::from(self.is_leader()));
        let _ = writeln!(
            out,
            "# HELP ephemera_reconcile_errors_total Failed reconciles.\n# TYPE ephemera_reconcile_errors_total counter"
        );
        let _ = writeln!(out, "ephemera_reconcile_errors_total {}", self.reconcile_errors.load(Ordering::Relaxed));
        for (name, help, v) in [
            ("ephemera_vault_tokens_minted_total", "Per-attempt Vault tokens minted.", &self.tokens_minted),
            (
                "ephemera_vault_tokens_revoked_total",
                "Per-attempt Vault tokens revoked by the operator.",
                &self.tokens_revoked,
            ),
            ("ephemera_vault_errors_total", "Failed Vault calls.", &self.vault_errors),
            (
                "ephemera_credential_unwrap_failures_total",
                "Wrapping tokens a worker could not unwrap (possible interception).",
                &self.unwrap_failures,
            ),
            (
                "ephemera_credential_handoffs_total",
                "Wrapping tokens released to their attempt's Pod.",
                &self.handoffs_released,
            ),
            (
                "ephemera_credential_handoffs_refused_total",
                "Credential hand-off requests refused (wrong Pod, already released, bad identity).",
                &self.handoffs_refused,
            ),
            (
                "ephemera_handoff_connections_refused_total",
                "Connections to the credential hand-off closed at accept: its connection limit was reached.",
                &self.listener_connections_refused,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        self.reconcile.render("ephemera_reconcile_duration_seconds", "Time spent in one reconcile.", &mut out);
        self.pod_created_latency.render(
            "ephemera_task_pod_created_seconds",
            "Task creation to Pod creation.",
            &mut out,
        );
        self.start_latency.render("ephemera_task_start_seconds", "Task creation to its Pod running.", &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let m = Metrics::default();
        m.reconcile.observe(Duration::from_millis(3));
        m.reconcile.observe(Duration::from_secs(60));
        let text = m.render();
        assert!(text.contains("ephemera_reconcile_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("ephemera_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("ephemera_operator_leader 0"));
    }
}
