//! Webhooks into Tasks (`POST /webhooks/{namespace}/{trigger}`): a delivery is authenticated the way
//! its source signs it ([`verify`], from the pure `ephemera-webhooks` crate), limited by its
//! trigger's rate, matched against the trigger's rules ([`rules`], the same crate) and made into one
//! Task per delivery id ([`task`]); what happened is kept in the trigger's status ([`log`]).

pub mod deliver;
pub mod listing;
pub mod log;
pub mod task;
pub mod triggers;

pub use ephemera_webhooks::{rules, verify};

/// A TaskTrigger's rules as the pure rule engine takes them.
pub fn rule_sources(rules: &[ephemera_crds::TriggerRule]) -> Vec<rules::Rule> {
    rules
        .iter()
        .map(|r| rules::Rule {
            name: r.name.clone(),
            events: r.events.clone(),
            filter: r.filter.clone(),
            params: r.params.clone(),
            concurrency_key: r.concurrency.as_ref().map(|c| c.key.clone()),
        })
        .collect()
}

/// The limits the CRD states, for the rule engine.
pub const RULE_LIMITS: rules::Limits = rules::Limits {
    expression: ephemera_crds::trigger::MAX_EXPRESSION,
    value: ephemera_crds::task::limits::ENV_VALUE_MAX,
};

use std::sync::Arc;

/// What the webhook endpoint shares.
pub struct Webhooks {
    /// Every trigger, watched.
    pub triggers: Arc<triggers::Triggers>,
    /// The delivery log writer.
    pub log: log::DeliveryLog,
    /// Rule evaluations that may run at once (each on a blocking thread, off the async workers).
    evaluating: Arc<tokio::sync::Semaphore>,
}

/// Rule evaluations at once: about one per core, so rules can never starve the rest of the server.
const EVALUATIONS: usize = 2;
/// How long a delivery waits for its rules before it is refused (503, the provider redelivers).
const EVALUATION_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

impl Webhooks {
    /// Starts the trigger watch and the delivery log writer.
    pub fn start(client: kube::Client) -> Self {
        Self {
            triggers: triggers::Triggers::start(client.clone()),
            log: log::DeliveryLog::start(client),
            evaluating: Arc::new(tokio::sync::Semaphore::new(EVALUATIONS)),
        }
    }

    /// Evaluates a trigger's compiled rules on a blocking thread, at most [`EVALUATIONS`] at once;
    /// None when that did not finish within [`EVALUATION_BUDGET`] (the thread keeps its slot until
    /// it finishes, so a slow rule only ever costs its own slot).
    pub async fn evaluate(
        &self,
        rules: triggers::Rules,
        event: &str,
        payload: &serde_json::Value,
        headers: &std::collections::BTreeMap<String, String>,
    ) -> Option<rules::Outcome> {
        let run = async {
            let permit = self.evaluating.clone().acquire_owned().await.ok()?;
            let (event, payload, headers) = (event.to_string(), payload.clone(), headers.clone());
            let job = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                match rules.as_ref() {
                    Ok(r) => rules::evaluate(r, &event, &payload, &headers),
                    Err(_) => rules::Outcome::NoMatch,
                }
            });
            job.await.ok()
        };
        tokio::time::timeout(EVALUATION_BUDGET, run).await.ok().flatten()
    }
}
