//! Webhooks into Tasks (`POST /webhooks/{namespace}/{trigger}`): a delivery is authenticated the way
//! its source signs it ([`verify`], from the pure `ephemera-webhooks` crate), limited by its
//! trigger's rate, matched against the trigger's rules ([`rules`], the same crate) and made into one
//! Task per delivery id ([`task`]); what happened is kept in the trigger's status ([`log`]).

pub mod deliver;
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
}

impl Webhooks {
    /// Starts the trigger watch and the delivery log writer.
    pub fn start(client: kube::Client) -> Self {
        Self { triggers: triggers::Triggers::start(client.clone()), log: log::DeliveryLog::start(client) }
    }
}
