//! The watch on Tasks and the fan-out: one bounded broadcast channel per replica. A subscriber that
//! falls behind by more than its capacity is lagged out (and told to resume), so no subscriber can
//! grow the server's memory or slow the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use ephemera_crds::Task;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::broadcast;

use super::messages::catch_up;

use crate::error::ApiError;

/// A change to one Task.
#[derive(Debug, Clone)]
pub enum Update {
    /// Created or changed.
    Changed(Arc<Changed>),
    /// Gone.
    Deleted(Arc<Task>),
}

/// A changed Task, with what WebSocket clients are sent for it rendered once per distinct cursor:
/// thousands of subscribers of one Task are mostly at the same `seq`, so they share one
/// serialisation instead of each cloning the status and writing the same JSON.
#[derive(Debug)]
pub struct Changed {
    /// The Task as it is now.
    pub task: Arc<Task>,
    rendered: Mutex<HashMap<Cursor, Arc<Frames>>>,
}

/// Where a client is for a Task: the last `seq` it has (None: nothing yet), and whether it was sent `end`.
type Cursor = (Option<i64>, bool);

/// The frames a client at one cursor is sent, and its cursor after them.
#[derive(Debug)]
pub struct Frames {
    /// The messages, as JSON text (cheap to clone: shared bytes).
    pub texts: Vec<Utf8Bytes>,
    /// The `seq` the client is at after them.
    pub since: i64,
    /// Whether `end` has been sent to it.
    pub ended: bool,
}

impl Changed {
    /// Wraps `task`.
    pub fn new(task: Arc<Task>) -> Changed {
        Changed { task, rendered: Mutex::new(HashMap::new()) }
    }

    /// What a client at `since` (with `end` sent or not) gets: [`catch_up`], serialised once.
    pub fn frames(&self, since: Option<i64>, ended: bool) -> Arc<Frames> {
        let render = || {
            let mut e = ended;
            let (msgs, seq) = catch_up(&self.task, since, &mut e);
            let texts = msgs.iter().filter_map(|m| serde_json::to_string(m).ok()).map(Utf8Bytes::from).collect();
            Arc::new(Frames { texts, since: seq, ended: e })
        };
        let Ok(mut cache) = self.rendered.lock() else { return render() };
        cache.entry((since, ended)).or_insert_with(render).clone()
    }
}

/// Limits of the live channels.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Updates a subscriber may fall behind before it is cut off.
    pub buffer: usize,
    /// Subscriptions per connection.
    pub subscriptions_per_connection: usize,
    /// Open connections per identity (per replica).
    pub connections_per_identity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { buffer: 1024, subscriptions_per_connection: 100, connections_per_identity: 20 }
    }
}

/// This replica's view of every Task, and its subscribers.
pub struct Hub {
    tx: broadcast::Sender<Update>,
    store: Store<Task>,
    /// Settings.
    pub limits: Limits,
    connections: Mutex<HashMap<String, usize>>,
}

/// Holds one connection slot of an identity; released on drop.
pub struct Slot {
    hub: Arc<Hub>,
    who: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.hub.connections.lock() {
            if let Some(n) = c.get_mut(&self.who) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.remove(&self.who);
                }
            }
        }
    }
}

impl Hub {
    /// Starts watching Tasks in every namespace.
    pub fn start(client: kube::Client, limits: Limits) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(limits.buffer.max(1));
        let (store, writer) = reflector::store();
        let api: Api<Task> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let sender = tx.clone();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) => {
                        let _ = sender.send(Update::Changed(Arc::new(Changed::new(Arc::new(t)))));
                    }
                    Ok(watcher::Event::Delete(t)) => {
                        let _ = sender.send(Update::Deleted(Arc::new(t)));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "watching Tasks for live status"),
                }
            }
        });
        Arc::new(Hub { tx, store, limits, connections: Mutex::new(HashMap::new()) })
    }

    /// Waits for the first full list.
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    /// A receiver of every later update (subscribe before reading the store: nothing is missed).
    pub fn receiver(&self) -> broadcast::Receiver<Update> {
        self.tx.subscribe()
    }

    /// A Task as this replica knows it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Task>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Every Task of a namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<Task>> {
        self.store.state().into_iter().filter(|t| t.metadata.namespace.as_deref() == Some(namespace)).collect()
    }

    /// Takes a connection slot for `who`, or refuses with 429.
    pub fn connect(self: &Arc<Self>, who: &str) -> Result<Slot, ApiError> {
        let mut c = self.connections.lock().map_err(|_| ApiError::Internal)?;
        let n = c.entry(who.to_string()).or_default();
        if *n >= self.limits.connections_per_identity {
            return Err(ApiError::RateLimited(5));
        }
        *n += 1;
        Ok(Slot { hub: self.clone(), who: who.to_string() })
    }

    /// Live streams (WebSocket, SSE, log follows) holding a connection slot now.
    pub fn open_streams(&self) -> usize {
        self.connections.lock().map(|c| c.values().sum()).unwrap_or(0)
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::{EventKind, ProgressEvent, TaskPhase, TaskStatus};

    fn running(events: std::ops::RangeInclusive<i64>) -> Arc<Task> {
        let mut t = Task::new("t", serde_json::from_value(serde_json::json!({"command": ["true"]})).unwrap());
        t.metadata.namespace = Some("ns".into());
        let progress: Vec<ProgressEvent> = events
            .map(|seq| ProgressEvent {
                seq,
                kind: EventKind::Progress,
                phase: None,
                attempt: 1,
                time: String::new(),
                percent: Some(50),
                message: format!("step {seq}"),
            })
            .collect();
        let last_seq = progress.last().map(|e| e.seq).unwrap_or(0);
        t.status = Some(TaskStatus { phase: TaskPhase::Running, last_seq, progress, ..Default::default() });
        Arc::new(t)
    }

    #[test]
    fn subscribers_at_the_same_cursor_share_one_rendering_and_others_get_their_own() {
        let changed = Changed::new(running(1..=5));
        let (a, b) = (changed.frames(Some(4), false), changed.frames(Some(4), false));
        assert!(Arc::ptr_eq(&a, &b), "rendered once for both");
        let v: serde_json::Value = serde_json::from_str(a.texts[0].as_str()).unwrap();
        assert_eq!(
            (a.texts.len(), &v["type"], &v["event"]["seq"], a.since),
            (1, &serde_json::json!("event"), &serde_json::json!(5), 5)
        );
        let behind = changed.frames(Some(2), false);
        assert_eq!(behind.texts.len(), 3, "seqs 3, 4 and 5");
        let fresh = changed.frames(None, false);
        let v: serde_json::Value = serde_json::from_str(fresh.texts[0].as_str()).unwrap();
        assert_eq!(v["type"], "snapshot");
        assert!(changed.frames(Some(5), false).texts.is_empty(), "nothing twice");
    }
}
