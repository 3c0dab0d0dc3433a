//! The operator's Prometheus metrics (OpenMetrics text, by `prometheus-client`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram in seconds.
#[derive(Clone)]
pub struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new(BUCKETS))
    }
}

impl Latency {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// The `phase` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

/// The `queue` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconcile durations.
    pub reconcile: Latency,
    /// Task creation → Pod running.
    pub start_latency: Latency,
    /// Task creation → Pod created.
    pub pod_created_latency: Latency,
    /// Failed reconciles (other than lost write races).
    pub reconcile_errors: Counter,
    /// Reconciles whose status write lost a race (409) and were retried at once.
    pub reconcile_conflicts: Counter,
    /// Per-attempt Vault tokens minted.
    pub tokens_minted: Counter,
    /// Per-attempt Vault tokens revoked by the operator.
    pub tokens_revoked: Counter,
    /// Failed Vault calls.
    pub vault_errors: Counter,
    /// Wrapping tokens a worker could not unwrap (possible interception).
    pub unwrap_failures: Counter,
    /// Wrapping tokens the hand-off released to their attempt's Pod.
    pub handoffs_released: Counter,
    /// Hand-off requests refused (not the attempt's Pod, already released, bad identity).
    pub handoffs_refused: Counter,
    /// Connections to the hand-off closed at accept (its connection limit was reached).
    pub listener_connections_refused: Counter,
    /// Tasks made by TaskSchedules.
    pub schedule_runs: Counter,
    /// Scheduled runs skipped (missed past their starting deadline, or forbidden by concurrency).
    pub schedule_skipped: Counter,
    /// TaskSchedule reconcile durations.
    pub schedule_reconcile: Latency,
    leader: Gauge<i64, std::sync::atomic::AtomicI64>,
    tasks: Family<PhaseLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    queue_pending: Family<QueueLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    queue_running: Family<QueueLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let m = Metrics {
            reconcile: Latency::default(),
            start_latency: Latency::default(),
            pod_created_latency: Latency::default(),
            reconcile_errors: Counter::default(),
            reconcile_conflicts: Counter::default(),
            tokens_minted: Counter::default(),
            tokens_revoked: Counter::default(),
            vault_errors: Counter::default(),
            unwrap_failures: Counter::default(),
            handoffs_released: Counter::default(),
            handoffs_refused: Counter::default(),
            listener_connections_refused: Counter::default(),
            schedule_runs: Counter::default(),
            schedule_skipped: Counter::default(),
            schedule_reconcile: Latency::default(),
            leader: Gauge::default(),
            tasks: Family::default(),
            queue_pending: Family::default(),
            queue_running: Family::default(),
            registry: Registry::default(),
        };
        r.register("ephemera_tasks", "Tasks by phase", m.tasks.clone());
        r.register("ephemera_queue_pending", "Tasks waiting in each queue", m.queue_pending.clone());
        r.register("ephemera_queue_running", "Tasks holding a Pod in each queue", m.queue_running.clone());
        r.register("ephemera_operator_leader", "Whether this replica holds the Lease", m.leader.clone());
        r.register(
            "ephemera_reconcile_errors",
            "Failed reconciles (other than lost write races)",
            m.reconcile_errors.clone(),
        );
        r.register(
            "ephemera_reconcile_conflicts",
            "Status writes that lost a race with another writer (409) and were retried at once",
            m.reconcile_conflicts.clone(),
        );
        let counters: [(&str, &str, &Counter<u64, AtomicU64>); 9] = [
            ("ephemera_schedule_runs", "Tasks made by TaskSchedules", &m.schedule_runs),
            (
                "ephemera_schedule_runs_skipped",
                "Scheduled runs skipped: missed past their starting deadline, or forbidden by concurrency",
                &m.schedule_skipped,
            ),
            ("ephemera_vault_tokens_minted", "Per-attempt Vault tokens minted", &m.tokens_minted),
            ("ephemera_vault_tokens_revoked", "Per-attempt Vault tokens revoked by the operator", &m.tokens_revoked),
            ("ephemera_vault_errors", "Failed Vault calls", &m.vault_errors),
            (
                "ephemera_credential_unwrap_failures",
                "Wrapping tokens a worker could not unwrap (possible interception)",
                &m.unwrap_failures,
            ),
            ("ephemera_credential_handoffs", "Wrapping tokens released to their attempt's Pod", &m.handoffs_released),
            (
                "ephemera_credential_handoffs_refused",
                "Credential hand-off requests refused (wrong Pod, already released, bad identity)",
                &m.handoffs_refused,
            ),
            (
                "ephemera_handoff_connections_refused",
                "Connections to the credential hand-off closed at accept: its connection limit was reached",
                &m.listener_connections_refused,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        for (name, help, h) in [
            ("ephemera_reconcile_duration", "Time spent in one reconcile", &m.reconcile),
            ("ephemera_task_pod_created", "Task creation to Pod creation", &m.pod_created_latency),
            ("ephemera_task_start", "Task creation to its Pod running", &m.start_latency),
            ("ephemera_schedule_reconcile_duration", "Time spent in one TaskSchedule reconcile", &m.schedule_reconcile),
        ] {
            r.register_with_unit(name, help, Unit::Seconds, h.0.clone());
        }
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    /// Marks leadership.
    pub fn set_leader(&self, v: bool) {
        self.leader.set(i64::from(v));
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// Replaces the per-phase and per-queue gauges (series of phases and queues that are gone go too).
    pub fn set_snapshot(&self, phases: BTreeMap<String, u64>, queues: BTreeMap<String, (u64, u64)>) {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.tasks.clear();
        for (phase, count) in phases {
            self.tasks.get_or_create(&PhaseLabel { phase }).set(n(count));
        }
        self.queue_pending.clear();
        self.queue_running.clear();
        for (queue, (pending, running)) in queues {
            let label = QueueLabel { queue };
            self.queue_pending.get_or_create(&label).set(n(pending));
            self.queue_running.get_or_create(&label).set(n(running));
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_cumulative_buckets_labelled_gauges_and_counters() {
        let m = Metrics::default();
        m.reconcile.observe(Duration::from_millis(3));
        m.reconcile.observe(Duration::from_secs(60));
        m.tokens_minted.inc();
        m.set_snapshot(BTreeMap::from([("Running".into(), 2)]), BTreeMap::from([("default".into(), (3, 1))]));
        let text = m.render();
        for want in [
            "ephemera_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
            "ephemera_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2",
            "ephemera_reconcile_duration_seconds_count 2",
            "ephemera_operator_leader 0",
            "ephemera_vault_tokens_minted_total 1",
            "ephemera_tasks{phase=\"Running\"} 2",
            "ephemera_queue_pending{queue=\"default\"} 3",
            "ephemera_queue_running{queue=\"default\"} 1",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        m.set_snapshot(BTreeMap::new(), BTreeMap::new());
        assert!(!m.render().contains("phase=\"Running\""), "a phase no Task is in is not reported");
    }
}
