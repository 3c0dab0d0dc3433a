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
/// How often every trigger's readiness is checked again (its Secret may have appeared or gone).
const RECHECK: Duration = Duration::from_secs(30);

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
        let this = Arc::new(Self {
            client,
            store,
            compiled: Mutex::default(),
            limiters: Mutex::default(),
            secrets: Mutex::default(),
        });
        let watching = this.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) => {
                        let w = watching.clone();
                        tokio::spawn(async move { w.check(&t).await });
                    }
                    Ok(watcher::Event::Delete(t)) => watching.forget(&t.uid().unwrap_or_default()),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "TaskTrigger watch error (retrying)"),
                }
            }
        });
        // A Secret created (or deleted) later changes readiness without touching the trigger.
        let rechecking = this.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECHECK);
            loop {
                tick.tick().await;
                for t in rechecking.store.state() {
                    rechecking.check(&t).await;
                }
            }
        });
        this
    }

    /// Drops what was kept for a deleted trigger.
    fn forget(&self, uid: &str) {
        if let Ok(mut c) = self.compiled.lock() {
            c.retain(|(u, _), _| u != uid);
        }
        if let Ok(mut l) = self.limiters.lock() {
            l.remove(uid);
        }
    }

    /// Compiles the trigger's rules and looks for its Secret, and says so in its `Ready` condition
    /// (every replica may; a write is made only when the condition changes).
    async fn check(&self, t: &TaskTrigger) {
        let rules = self.rules(t);
        let secrets = self.secrets(t).await.map(|s| s.len());
        let r = readiness(&rules, &secrets);
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let Some(status) = with_readiness(t, &r, &now) else { return };
        let mut next = t.clone();
        next.status = Some(status);
        let api: Api<TaskTrigger> = Api::namespaced(self.client.clone(), &t.namespace().unwrap_or_default());
        // A 409 means another replica or the delivery log wrote first: the watch brings it back.
        if let Err(e) = api.replace_status(&t.name_any(), &Default::default(), &next).await {
            tracing::debug!(error = %e, trigger = %t.name_any(), "writing the trigger's Ready condition");
        }
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
        if let Some(r) = self.compiled.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return r;
        }
        // Compiled outside the lock: a large trigger never stalls the deliveries of the others.
        let r = Arc::new(rules::compile(&super::rule_sources(&t.spec.rules), super::RULE_LIMITS));
        if let Ok(mut cache) = self.compiled.lock() {
            // Old generations of this trigger go.
            cache.retain(|(uid, _), _| *uid != key.0);
            cache.insert(key, r.clone());
        }
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

/// Whether a trigger can take deliveries, as its `Ready` condition says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `True` or `False`.
    pub ready: bool,
    /// `Ready`, `RuleInvalid`, `SecretMissing` or `SecretUnavailable`.
    pub reason: &'static str,
    /// What is wrong (names the rule and field, or the Secret and key; never a secret value).
    pub message: String,
}

/// What a trigger's rules and secrets come to.
pub fn readiness(rules: &Result<Vec<Compiled>, CompileError>, secrets: &Result<usize, SecretProblem>) -> Readiness {
    let not = |reason, message: String| Readiness { ready: false, reason, message };
    match (rules, secrets) {
        (Err(e), _) => not("RuleInvalid", e.to_string()),
        (_, Err(e @ SecretProblem::Missing { .. })) => not("SecretMissing", e.to_string()),
        (_, Err(e)) => not("SecretUnavailable", e.to_string()),
        (Ok(_), Ok(_)) => Readiness { ready: true, reason: "Ready", message: String::new() },
    }
}

/// The trigger's status with `r` as its `Ready` condition, or None when that is already what it says.
pub fn with_readiness(t: &TaskTrigger, r: &Readiness, now: &str) -> Option<ephemera_crds::TaskTriggerStatus> {
    let mut status = t.status.clone().unwrap_or_default();
    let value = if r.ready { "True" } else { "False" };
    let generation = t.metadata.generation;
    let rules = i32::try_from(t.spec.rules.len()).unwrap_or(i32::MAX);
    let current = status.conditions.iter().find(|c| c.type_ == "Ready");
    let same = current.is_some_and(|c| {
        c.status == value && c.reason == r.reason && c.message == r.message && c.observed_generation == generation
    });
    if same && status.rules == rules && status.observed_generation == generation {
        return None;
    }
    let transition = match current {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(now.to_string()),
    };
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.push(ephemera_crds::Condition {
        type_: "Ready".into(),
        status: value.into(),
        reason: r.reason.into(),
        message: r.message.clone(),
        last_transition_time: transition,
        observed_generation: generation,
    });
    status.rules = rules;
    status.observed_generation = generation;
    Some(status)
}

/// The secrets as byte slices, for the verifiers.
pub fn exposed(secrets: &[Arc<SecretSlice<u8>>]) -> Vec<&[u8]> {
    secrets.iter().map(|s| s.expose_secret()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger(status: serde_json::Value) -> TaskTrigger {
        serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskTrigger",
            "metadata": {"name": "gh", "namespace": "team", "generation": 2},
            "spec": {"source": "github", "secretRef": {"name": "s", "key": "k"},
                "rules": [{"name": "r", "filter": "body.ref.(", "task": {"command": ["true"]}}]},
            "status": status}))
        .unwrap()
    }

    #[test]
    fn readiness_names_the_first_problem_and_writes_only_changes() {
        let t = trigger(json!({}));
        let bad = rules::compile(&crate::webhooks::rule_sources(&t.spec.rules), crate::webhooks::RULE_LIMITS);
        let r = readiness(&bad, &Ok(1));
        assert_eq!((r.ready, r.reason), (false, "RuleInvalid"));
        assert!(r.message.contains("rule \"r\": filter"), "{}", r.message);
        let missing = Err(SecretProblem::Missing { name: "s".into(), key: "k".into() });
        assert_eq!(readiness(&Ok(vec![]), &missing).reason, "SecretMissing");
        let ok = readiness(&Ok(vec![]), &Ok(1));
        assert!(ok.ready);
        let status = with_readiness(&t, &r, "2026-12-01T10:00:00Z").unwrap();
        let c = &status.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.observed_generation), ("False", "RuleInvalid", Some(2)));
        assert_eq!(status.rules, 1);
        let written = trigger(serde_json::to_value(&status).unwrap());
        assert_eq!(with_readiness(&written, &r, "2026-12-01T10:05:00Z"), None, "unchanged: no write");
        let fixed = with_readiness(&written, &ok, "2026-12-01T10:06:00Z").unwrap();
        assert_eq!(fixed.conditions[0].last_transition_time.as_deref(), Some("2026-12-01T10:06:00Z"));
    }
}
