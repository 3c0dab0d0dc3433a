//! Webhooks into Tasks (`POST /webhooks/{namespace}/{trigger}`): a delivery is authenticated the way
//! its source signs it ([`verify`]), limited by its trigger's rate, matched against the trigger's
//! rules ([`rules`]) and made into one Task per delivery id ([`task`]); what happened is kept in the
//! trigger's status ([`log`]).

pub mod deliver;
pub mod log;
pub mod rules;
pub mod task;
pub mod triggers;
pub mod verify;

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
