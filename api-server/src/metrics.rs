//! The API server's Prometheus metrics (OpenMetrics text, by `prometheus-client`): requests by route,
//! method and status, their latency, and counters of what the server refused or cut off.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request's labels (the route template, never the concrete path: bounded cardinality).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

/// A webhook delivery's labels (triggers are admin-bounded, outcomes a fixed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    namespace: String,
    trigger: String,
    outcome: String,
}

/// Counters of the API server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    latency: Histogram,
    /// Tasks created through the API.
    pub tasks_created: Counter,
    /// Progress events taken from workers.
    pub progress_events: Counter,
    /// Live subscribers cut off for falling behind.
    pub slow_consumers: Counter,
    /// Connections closed at accept because the connection limit was reached.
    pub connections_refused: Counter,
    /// Log follows ended because their credentials were revoked or expired.
    pub streams_reauth_ended: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        r.register("ephemera_webhook_deliveries", "Webhook deliveries by trigger and outcome", deliveries.clone());
        let latency = Histogram::new(BUCKETS);
        r.register("ephemera_api_requests", "Requests by route, method and status", requests.clone());
        r.register_with_unit("ephemera_api_request_duration", "Request latency", Unit::Seconds, latency.clone());
        let m = Metrics {
            registry: Registry::default(),
            requests,
            deliveries,
            latency,
            tasks_created: Counter::default(),
            progress_events: Counter::default(),
            slow_consumers: Counter::default(),
            connections_refused: Counter::default(),
            streams_reauth_ended: Counter::default(),
        };
        for (name, help, c) in [
            ("ephemera_api_tasks_created", "Tasks created", &m.tasks_created),
            ("ephemera_api_progress_events", "Progress events taken from workers", &m.progress_events),
            ("ephemera_api_slow_consumers", "Live subscribers cut off for falling behind", &m.slow_consumers),
            (
                "ephemera_api_connections_refused",
                "Connections closed at accept: the connection limit was reached",
                &m.connections_refused,
            ),
            (
                "ephemera_api_streams_reauth_ended",
                "Log follows ended because their credentials were revoked or expired",
                &m.streams_reauth_ended,
            ),
        ] {
            r.register(name, help, c.clone());
        }
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = RequestLabels { route: route.to_string(), method: method.to_string(), status };
        self.requests.get_or_create(&labels).inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Counts one webhook delivery.
    pub fn observe_delivery(&self, namespace: &str, trigger: &str, outcome: &str) {
        let labels = DeliveryLabels { namespace: namespace.into(), trigger: trigger.into(), outcome: outcome.into() };
        self.deliveries.get_or_create(&labels).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_template_method_and_status() {
        let m = Metrics::default();
        m.observe("/api/v1/namespaces/{ns}/tasks", "POST", 201, Duration::from_millis(4));
        m.observe("/api/v1/namespaces/{ns}/tasks", "POST", 201, Duration::from_millis(40));
        m.connections_refused.inc();
        let text = m.render();
        for want in [
            "ephemera_api_requests_total{route=\"/api/v1/namespaces/{ns}/tasks\",method=\"POST\",status=\"201\"} 2",
            "ephemera_api_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "ephemera_api_request_duration_seconds_count 2",
            "ephemera_api_connections_refused_total 1",
            "ephemera_api_tasks_created_total 0",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }
}
