//! The delivery log in each trigger's status: the last deliveries (newest first), the newest one for
//! `kubectl get etrig`, and counters by outcome. Deliveries are recorded in the background and
//! written at most every half second per trigger, so a burst costs a handful of status writes, not
//! one per delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use ephemera_crds::trigger::{DeliveryRecord, TaskTrigger, TaskTriggerStatus, DELIVERY_LOG};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::mpsc;

/// How often recorded deliveries are written.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Deliveries waiting to be written, at most (beyond: counted, not logged).
const QUEUE: usize = 10_000;

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A Task was created.
    Created,
    /// The delivery was seen before; its Task exists.
    Redelivered,
    /// No rule matched.
    Ignored,
    /// Not authenticated or malformed.
    Refused,
    /// Past the trigger's rate limit.
    RateLimited,
    /// The trigger could not take it (its rules, its Secret, a rule failing on it, the cluster).
    Failed,
}

impl DeliveryOutcome {
    /// As written in the log and the counters.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Created => "Created",
            DeliveryOutcome::Redelivered => "Redelivered",
            DeliveryOutcome::Ignored => "Ignored",
            DeliveryOutcome::Refused => "Refused",
            DeliveryOutcome::RateLimited => "RateLimited",
            DeliveryOutcome::Failed => "Failed",
        }
    }
}

/// One delivery to record on trigger `namespace/name`.
pub struct Entry {
    /// The trigger's namespace.
    pub namespace: String,
    /// The trigger.
    pub name: String,
    /// The record.
    pub record: DeliveryRecord,
}

/// Records deliveries (cheap to clone).
#[derive(Clone)]
pub struct DeliveryLog {
    tx: mpsc::Sender<Entry>,
}

impl DeliveryLog {
    /// Starts the writer.
    pub fn start(client: Client) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(client, rx));
        Self { tx }
    }

    /// Records a delivery (dropped when the writer is far behind: the answer never waits for it).
    pub fn record(&self, entry: Entry) {
        if self.tx.try_send(entry).is_err() {
            tracing::debug!("delivery log queue full; a delivery is not logged");
        }
    }
}

/// The status with `records` added: newest first by arrival time (replicas flush independently, so
/// a batch may hold older deliveries than the log), at most [`DELIVERY_LOG`] kept.
pub fn merged(mut status: TaskTriggerStatus, records: &[DeliveryRecord]) -> TaskTriggerStatus {
    let refused = DeliveryOutcome::Refused.as_str();
    for r in records {
        *status.counters.entry(r.outcome.clone()).or_default() += 1;
        if r.outcome == refused {
            if status.last_refused.as_ref().is_none_or(|l| l.time <= r.time) {
                status.last_refused = Some(r.clone());
            }
            continue;
        }
        status.deliveries.insert(0, r.clone());
    }
    // RFC 3339 times of one format sort as text; the sort is stable, so of equal times the later
    // arrival (inserted in front) stays first.
    status.deliveries.sort_by(|a, b| b.time.cmp(&a.time));
    status.deliveries.truncate(DELIVERY_LOG);
    status.last_delivery = status.deliveries.first().cloned();
    status
}

async fn write_loop(client: Client, mut rx: mpsc::Receiver<Entry>) {
    let mut pending: BTreeMap<(String, String), Vec<DeliveryRecord>> = BTreeMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            entry = rx.recv() => match entry {
                Some(e) => pending.entry((e.namespace, e.name)).or_default().push(e.record),
                None => break,
            },
            _ = tick.tick() => {
                for ((ns, name), records) in std::mem::take(&mut pending) {
                    write(&client, &ns, &name, &records).await;
                }
            }
        }
    }
}

/// Writes records into one trigger's status, retrying once when another replica wrote meanwhile.
async fn write(client: &Client, ns: &str, name: &str, records: &[DeliveryRecord]) {
    let api: Api<TaskTrigger> = Api::namespaced(client.clone(), ns);
    for _ in 0..3 {
        let Ok(Some(mut t)) = api.get_opt(name).await else { return };
        t.status = Some(merged(t.status.clone().unwrap_or_default(), records));
        match api.replace_status(name, &PostParams::default(), &t).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => {
                tracing::debug!(error = %e, trigger = name, "writing the delivery log");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, outcome: DeliveryOutcome) -> DeliveryRecord {
        let time = format!(
            "2026-12-01T10:00:{:02}.000Z",
            id[1..].parse::<u32>().unwrap_or(0) + if id.starts_with('b') { 30 } else { 0 }
        );
        DeliveryRecord { id: id.into(), outcome: outcome.as_str().into(), time, ..Default::default() }
    }

    #[test]
    fn the_log_is_newest_first_bounded_and_counts_every_outcome() {
        let first: Vec<DeliveryRecord> = (0..15).map(|i| rec(&format!("a{i}"), DeliveryOutcome::Created)).collect();
        let s = merged(TaskTriggerStatus::default(), &first);
        let more = [rec("b0", DeliveryOutcome::Refused), rec("b1", DeliveryOutcome::Ignored)];
        let repeated: Vec<DeliveryRecord> = (0..5).flat_map(|_| more.clone()).collect();
        let s = merged(s, &repeated);
        assert_eq!(s.deliveries.len(), 20);
        assert_eq!(s.deliveries[0].id, "b1", "newest first");
        assert_eq!(s.last_delivery.as_ref().map(|d| d.id.as_str()), Some("b1"));
        assert!(s.deliveries.iter().all(|d| d.outcome != "Refused"), "refusals never push deliveries out");
        assert_eq!(s.last_refused.as_ref().map(|d| d.id.as_str()), Some("b0"));
        assert_eq!((s.counters["Created"], s.counters["Refused"], s.counters["Ignored"]), (15, 5, 5));
        // A late batch from another replica lands in time order.
        let late = merged(s, &[rec("a14", DeliveryOutcome::Redelivered)]);
        assert_eq!(late.deliveries[0].id, "b1");
        assert_eq!(late.last_delivery.as_ref().map(|d| d.id.as_str()), Some("b1"));
    }
}
