//! The watch on Tasks and the fan-out: one bounded broadcast channel per replica. A subscriber that
//! falls behind by more than its capacity is lagged out (and told to resume), so no subscriber can
//! grow the server's memory or slow the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ephemera_crds::Task;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::broadcast;

use crate::error::ApiError;

/// A change to one Task.
#[derive(Debug, Clone)]
pub enum Update {
    /// Created or changed.
    Changed(Arc<Task>),
    /// Gone.
    Deleted(Arc<Task>),
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
                        let _ = sender.send(Update::Changed(Arc::new(t)));
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
