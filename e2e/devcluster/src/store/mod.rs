//! The object store: every object of every resource, one global resourceVersion counter (like etcd's
//! revision), a bounded history of changes for watches, and optional write-ahead persistence.

mod wal;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

pub use wal::WalError;

/// Identifies a stored resource independent of the version it is served in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl ResKey {
    /// Builds a key.
    pub fn new(group: &str, resource: &str) -> Self {
        Self { group: group.to_string(), resource: resource.to_string() }
    }
}

/// The kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed (the event carries its last state).
    Deleted,
}

impl EventType {
    /// Wire name in a watch stream.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion the change committed at.
    pub rv: u64,
    /// Which resource changed.
    pub key: ResKey,
    /// Added / Modified / Deleted.
    pub kind: EventType,
    /// The object after the change (its last state, for Deleted), with `metadata.resourceVersion` set.
    pub object: Arc<Value>,
    /// The object before the change (None for Added); lets selector watches see objects leave.
    pub prev: Option<Arc<Value>>,
}

/// What a write closure decides.
pub enum Write {
    /// Store this object (create or replace).
    Put(Value),
    /// Remove the object.
    Delete,
    /// Change nothing.
    Keep,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

struct Inner {
    rv: u64,
    objects: HashMap<ResKey, Objects>,
    history: VecDeque<Event>,
    history_cap: usize,
    /// Watches from a version below this cannot be served (history was compacted or lost).
    oldest_servable: u64,
    wal: Option<wal::Wal>,
}

/// Shared, thread-safe object store.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    /// Bumped by [`Store::compact_history`]; open watches end with `410 Gone` when it changes.
    epoch: tokio::sync::watch::Sender<u64>,
}

/// Outcome of [`Store::write`].
pub struct Written {
    /// The object as stored (or as it was before deletion); `None` when nothing existed.
    pub object: Option<Arc<Value>>,
    /// Whether anything was committed.
    pub changed: bool,
}

impl Store {
    /// An empty in-memory store keeping `history_cap` events for watches.
    pub fn new(history_cap: usize) -> Self {
        let (events, _) = broadcast::channel(history_cap.max(1024));
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap,
                oldest_servable: 1,
                wal: None,
            }),
            events,
            epoch: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A store persisted in `dir`: replays what is there, then logs every change before acknowledging it.
    pub fn open(dir: &Path, history_cap: usize) -> Result<Self, WalError> {
        let store = Self::new(history_cap);
        let (rv, objects, wal) = wal::Wal::open(dir)?;
        {
            let mut inner = store.lock();
            inner.rv = rv.max(1);
            // Everything before a restart is history we no longer have: watchers must re-list.
            inner.oldest_servable = inner.rv + 1;
            for (key, ns, name, obj) in objects {
                inner.objects.entry(key).or_default().insert((ns, name), Arc::new(obj));
            }
            inner.wal = Some(wal);
        }
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is all-or-nothing).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, key: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner.objects.get(key)?.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// All objects of a resource (in one namespace if given), sorted by namespace then name, with the
    /// resourceVersion the list is consistent with.
    pub fn list(&self, key: &ResKey, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(key) {
            None => Vec::new(),
            Some(objs) => match ns {
                Some(ns) => objs
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
                None => objs.values().cloned().collect(),
            },
        };
        (items, inner.rv)
    }

    /// Names of the resources holding at least one object.
    pub fn keys(&self) -> Vec<ResKey> {
        self.lock().objects.iter().filter(|(_, o)| !o.is_empty()).map(|(k, _)| k.clone()).collect()
    }

    /// Atomically reads the current object and applies what `decide` returns. `decide` must not block.
    pub fn write<E>(
        &self,
        key: &ResKey,
        ns: &str,
        name: &str,
        decide: impl FnOnce(Option<&Value>) -> Result<Write, E>,
    ) -> Result<Written, E> {
        let mut inner = self.lock();
        let id = (ns.to_string(), name.to_string());
        let current = inner.objects.get(key).and_then(|o| o.get(&id)).cloned();
        match decide(current.as_deref())? {
            Write::Keep => Ok(Written { object: current, changed: false }),
            Write::Put(mut obj) => {
                let rv = inner.rv + 1;
                set_rv(&mut obj, rv);
                let obj = Arc::new(obj);
                let kind = if current.is_some() { EventType::Modified } else { EventType::Added };
                inner.commit(key, &id, Some(obj.clone()), rv);
                let ev = Event { rv, key: key.clone(), kind, object: obj.clone(), prev: current };
                inner.remember(ev.clone());
                // Sent under the lock so every receiver sees events in resourceVersion order.
                let _ = self.events.send(ev);
                Ok(Written { object: Some(obj), changed: true })
            }
            Write::Delete => {
                let Some(old) = current else {
                    return Ok(Written { object: None, changed: false });
                };
                let rv = inner.rv + 1;
                let mut last = (*old).clone();
                set_rv(&mut last, rv);
                let last = Arc::new(last);
                inner.commit(key, &id, None, rv);
                let ev =
                    Event { rv, key: key.clone(), kind: EventType::Deleted, object: last.clone(), prev: Some(old) };
                inner.remember(ev.clone());
                let _ = self.events.send(ev);
                Ok(Written { object: Some(last), changed: true })
            }
        }
    }

    /// Subscribes to live changes and returns, under the same lock, the retained events after `since`
    /// (or `Err(oldest)` when `since` is older than what is retained).
    pub fn watch_from(&self, since: u64) -> Result<(Vec<Event>, broadcast::Receiver<Event>), u64> {
        let inner = self.lock();
        if since < inner.oldest_servable.saturating_sub(1) {
            return Err(inner.oldest_servable);
        }
        let rx = self.events.subscribe();
        let past = inner.history.iter().filter(|e| e.rv > since).cloned().collect();
        Ok((past, rx))
    }

    /// Lists a resource and subscribes to changes after that list, atomically.
    pub fn list_and_subscribe(
        &self,
        key: &ResKey,
        ns: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Event>) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let items = match inner.objects.get(key) {
            None => Vec::new(),
            Some(objs) => {
                objs.iter().filter(|((n, _), _)| ns.is_none_or(|ns| ns == n)).map(|(_, v)| v.clone()).collect()
            }
        };
        (items, inner.rv, rx)
    }

    /// Forgets all watch history so that any watch resuming from an earlier version gets `410 Gone`.
    pub fn compact_history(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest_servable = inner.rv + 1;
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Notifies when history is compacted (open watches must then end with `410 Gone`).
    pub fn compactions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Subscribes to live changes only.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

impl Inner {
    fn commit(&mut self, key: &ResKey, id: &(String, String), obj: Option<Arc<Value>>, rv: u64) {
        if let Some(wal) = self.wal.as_mut() {
            // Persistence failure is fatal for a store that promised durability: losing writes
            // silently would be worse than stopping.
            if let Err(e) = wal.append(rv, key, &id.0, &id.1, obj.as_deref()) {
                tracing::error!(error = %e, "write-ahead log append failed; exiting");
                std::process::exit(70);
            }
        }
        self.rv = rv;
        let objs = self.objects.entry(key.clone()).or_default();
        match obj {
            Some(o) => {
                objs.insert(id.clone(), o);
            }
            None => {
                objs.remove(id);
            }
        }
    }

    fn remember(&mut self, ev: Event) {
        self.history.push_back(ev);
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.oldest_servable = old.rv + 1;
            }
        }
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, name: &str) -> u64 {
        let key = ResKey::new("", "configmaps");
        let w =
            store.write::<()>(&key, "default", name, |_| Ok(Write::Put(json!({"metadata": {"name": name}})))).unwrap();
        w.object.unwrap()["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
    }

    #[test]
    fn versions_increase_and_history_is_bounded() {
        let store = Store::new(2);
        let a = put(&store, "a");
        let b = put(&store, "b");
        let c = put(&store, "c");
        assert!(a < b && b < c);
        assert!(store.watch_from(a - 1).is_err(), "event a was dropped from history");
        assert_eq!(store.watch_from(a).unwrap().0.len(), 2, "everything after a is retained");
        let (past, _) = store.watch_from(b).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].rv, c);
    }

    #[test]
    fn persisted_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rv = {
            let store = Store::open(dir.path(), 10).unwrap();
            put(&store, "a");
            put(&store, "b")
        };
        let store = Store::open(dir.path(), 10).unwrap();
        let (items, current) = store.list(&ResKey::new("", "configmaps"), Some("default"));
        assert_eq!(items.len(), 2);
        assert_eq!(current, rv);
        assert!(put(&store, "c") > rv);
        assert!(store.watch_from(rv - 1).is_err(), "pre-restart history is gone");
        assert!(store.watch_from(rv).is_ok(), "watching from the current version works");
    }
}
