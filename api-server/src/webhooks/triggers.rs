//! What the webhook endpoint knows about triggers: every TaskTrigger from a watch (no API call per
//! delivery to find one), its rules compiled once per generation, its rate limiter, and its secrets
//! (read from their Secrets and kept for a few seconds, so a rotation takes effect quickly).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ephemera_crds::trigger::{SecretKeyRef, TaskTrigger};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use secrecy::{ExposeSecret, SecretSlice};

use super::rules::{self, CompileError, Compiled};
use crate::limits::RateLimiter;

/// How long a secret read from its Secret is used before it is read again.
const SECRET_TTL: Duration = Duration::from_secs(5);

/// A trigger's rules as compiled for one generation.
pub type Rules = Arc<Result<Vec<Compiled>, CompileError>>;

/// Secrets by (namespace, Secret, key): when read, and the value (None: the key does not exist).
type SecretCache = HashMap<(String, String, String), (Instant, Option<Arc<SecretSlice<u8>>>)>;

/// Why a trigger's secrets cannot be had (the delivery is refused; the sender learns nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    /// The Secret or its key does not exist.
    #[error("Secret {name:?} has no key {key:?}")]
    Missing {
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
    /// The cluster could not be asked.
    #[error("the Secret could not be read")]
    Unavailable,
}

/// The triggers of every namespace.
pub struct Triggers {
    client: Client,
    store: Store<TaskTrigger>,
    compiled: Mutex<HashMap<(String, i64), Rules>>,
    limiters: Mutex<HashMap<String, (i64, Arc<RateLimiter>)>>,
    secrets: Mutex<SecretCache>,
}

impl Triggers {
    /// Starts watching TaskTriggers.
    pub fn start(client: Client) -> Arc<Self> {
        let (store, writer) = reflector::store();
        let api: Api<TaskTrigger> = Api::all(client.clone());
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "TaskTrigger watch error (retrying)");
                }
            }
        });
        Arc::new(Self {
            client,
            store,
            compiled: Mutex::default(),
            limiters: Mutex::default(),
            secrets: Mutex::default(),
        })
    }

    /// Waits until the first list arrived (deliveries before that would 404).
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    /// The trigger `name` in `namespace`, if it exists.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<TaskTrigger>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Its rules, compiled for its current generation.
    pub fn rules(&self, t: &TaskTrigger) -> Rules {
        let key = (t.uid().unwrap_or_default(), t.metadata.generation.unwrap_or_default());
        let Ok(mut cache) = self.compiled.lock() else { return Arc::new(rules::compile(&t.spec.rules)) };
        if let Some(r) = cache.get(&key) {
            return r.clone();
        }
        // Old generations of this trigger go.
        cache.retain(|(uid, _), _| *uid != key.0);
        let r = Arc::new(rules::compile(&t.spec.rules));
        cache.insert(key, r.clone());
        r
    }

    /// Its rate limiter (None: no limit), rebuilt when its spec changes.
    pub fn limiter(&self, t: &TaskTrigger) -> Option<Arc<RateLimiter>> {
        let limit = t.spec.rate_limit.as_ref()?;
        let (uid, generation) = (t.uid().unwrap_or_default(), t.metadata.generation.unwrap_or_default());
        let mut map = self.limiters.lock().ok()?;
        match map.get(&uid) {
            Some((g, l)) if *g == generation => Some(l.clone()),
            _ => {
                let burst = u32::try_from(limit.burst).unwrap_or(1);
                let l = Arc::new(RateLimiter::new(burst, f64::from(limit.requests_per_second)));
                map.insert(uid, (generation, l.clone()));
                Some(l)
            }
        }
    }

    /// Its secrets: the current one, then the previous one during a rotation.
    pub async fn secrets(&self, t: &TaskTrigger) -> Result<Vec<Arc<SecretSlice<u8>>>, SecretProblem> {
        let ns = t.namespace().unwrap_or_default();
        let mut out = Vec::new();
        for r in [&t.spec.secret_ref, &t.spec.previous_secret_ref].into_iter().flatten() {
            match self.secret(&ns, r).await? {
                Some(s) => out.push(s),
                // A missing previous secret is the end of a rotation, not a problem.
                None if Some(r) == t.spec.previous_secret_ref.as_ref() => {}
                None => return Err(SecretProblem::Missing { name: r.name.clone(), key: r.key.clone() }),
            }
        }
        Ok(out)
    }

    async fn secret(&self, ns: &str, r: &SecretKeyRef) -> Result<Option<Arc<SecretSlice<u8>>>, SecretProblem> {
        let key = (ns.to_string(), r.name.clone(), r.key.clone());
        if let Ok(cache) = self.secrets.lock() {
            if let Some((_, v)) = cache.get(&key).filter(|(at, _)| at.elapsed() < SECRET_TTL) {
                return Ok(v.clone());
            }
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let found = match api.get_opt(&r.name).await {
            Ok(s) => s.and_then(|s| s.data).and_then(|mut d| d.remove(&r.key)),
            Err(e) => {
                tracing::warn!(error = %e, namespace = ns, "reading a trigger's Secret");
                return Err(SecretProblem::Unavailable);
            }
        };
        let value = found.filter(|b| !b.0.is_empty()).map(|b| Arc::new(SecretSlice::from(b.0)));
        if let Ok(mut cache) = self.secrets.lock() {
            if cache.len() > 10_000 {
                cache.retain(|_, (at, _)| at.elapsed() < SECRET_TTL);
            }
            cache.insert(key, (Instant::now(), value.clone()));
        }
        Ok(value)
    }
}

/// The secrets as byte slices, for the verifiers.
pub fn exposed(secrets: &[Arc<SecretSlice<u8>>]) -> Vec<&[u8]> {
    secrets.iter().map(|s| s.expose_secret()).collect()
}
