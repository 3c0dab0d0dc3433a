//! The `TaskTrigger` custom resource: how deliveries of one webhook (GitHub, GitLab, Bitbucket,
//! Azure DevOps, Standard Webhooks, Salesforce) become Tasks in the trigger's namespace. Namespaced,
//! so a team owns its triggers with kubectl and RBAC; the secret stays in a Secret it names.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::{limits, RetryPolicy, TaskEnv, TaskResources};

/// Most rules a trigger has.
pub const MAX_RULES: usize = 32;
/// Longest CEL expression (filters, params, concurrency keys).
pub const MAX_EXPRESSION: usize = 4096;
/// Deliveries kept in `status.deliveries`.
pub const DELIVERY_LOG: usize = 20;

/// Which webhooks a trigger receives, and what they become.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "TaskTrigger",
    namespaced,
    status = "TaskTriggerStatus",
    shortname = "etrig",
    category = "ephemera",
    doc = "Webhook deliveries of one source turned into Ephemera Tasks by rules (first match wins).",
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.source"),
    printcolumn(name = "Rules", type_ = "integer", json_path = ".status.rules"),
    printcolumn(name = "Last delivery", type_ = "date", json_path = ".status.lastDelivery.time"),
    printcolumn(name = "Outcome", type_ = "string", json_path = ".status.lastDelivery.outcome"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.secretRef)").message("secretRef is required (for salesforce: the token the endpoint URL carries)"),
    validation = Rule::new("self.source != 'salesforce' || (has(self.allowedOrgIds) && size(self.allowedOrgIds) > 0)").message("a salesforce trigger names the org ids it accepts (allowedOrgIds)"),
    validation = Rule::new("self.source != 'azure-devops' || has(self.azure)").message("an azure-devops trigger says how the secret is presented (azure.basicUsername or azure.header)")
)]
#[serde(rename_all = "camelCase")]
pub struct TaskTriggerSpec {
    /// Who sends the deliveries, which decides how they are authenticated.
    pub source: TriggerSource,
    /// The Secret key (in the trigger's namespace) holding the webhook secret: the signing secret,
    /// GitLab's token, Azure DevOps' password or header value, or the `?token=` of Salesforce's
    /// endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// During a secret rotation: the previous secret, accepted as well until it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_ref: Option<SecretKeyRef>,
    /// Deliveries accepted per second (more get 429 with `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<TriggerRateLimit>,
    /// Signed timestamps older or newer than this are refused (Standard Webhooks, GitLab signing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub replay_window_seconds: Option<i64>,
    /// Azure DevOps: how the subscription presents the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureAuth>,
    /// Salesforce Outbound Messaging: the 15- or 18-character org ids whose messages are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(regex(pattern = r"^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")))]
    pub allowed_org_ids: Vec<String>,
    /// Rules in order; the first that matches makes the Task. A delivery no rule matches is
    /// acknowledged and ignored.
    #[schemars(length(min = 1, max = MAX_RULES))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(o, o.name == r.name))").message("rule names are unique"))]
    pub rules: Vec<TriggerRule>,
}

/// The source of a trigger's deliveries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    /// `X-Hub-Signature-256`.
    Github,
    /// `X-Gitlab-Token`, or Standard Webhooks signing.
    Gitlab,
    /// Bitbucket Cloud, `X-Hub-Signature`.
    Bitbucket,
    /// Azure DevOps service hooks (basic authentication or a secret header; no signature).
    AzureDevops,
    /// standardwebhooks.com (also Salesforce Flow/Apex callouts and any CI system).
    StandardWebhooks,
    /// Salesforce Outbound Messaging (SOAP; unsigned: require the edge's client certificate).
    Salesforce,
}

impl TriggerSource {
    /// The source as written in `spec.source` and in a Task's origin.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Github => "github",
            TriggerSource::Gitlab => "gitlab",
            TriggerSource::Bitbucket => "bitbucket",
            TriggerSource::AzureDevops => "azure-devops",
            TriggerSource::StandardWebhooks => "standard-webhooks",
            TriggerSource::Salesforce => "salesforce",
        }
    }
}

/// A key of a Secret in the trigger's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(max = 253))]
    pub name: String,
    /// Its key.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(max = 253))]
    pub key: String,
}

/// A token bucket per trigger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerRateLimit {
    /// Sustained deliveries per second.
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: i32,
    /// Deliveries accepted at once.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 100000))]
    pub burst: i32,
}

fn default_burst() -> i32 {
    20
}

/// How an Azure DevOps subscription presents the trigger's secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.basicUsername) != has(self.header)").message("set exactly one of basicUsername and header"))]
pub struct AzureAuth {
    /// Basic authentication: this username, the secret as password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub basic_username: Option<String>,
    /// A custom header (name) whose value is the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9-]+$"), length(max = 128))]
    pub header: Option<String>,
}

/// One rule: which deliveries it takes and the Task it makes of them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.task) != has(self.template)").message("a rule makes its Task from exactly one of task and template"),
    validation = Rule::new("!has(self.template) || !has(self.queue)").message("a rule with a template takes the queue from it")
)]
pub struct TriggerRule {
    /// Its name (in the delivery log and the Task's labels).
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    /// The provider's event names it takes (GitHub: `X-GitHub-Event`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub events: Vec<String>,
    /// A CEL expression over `body`, `headers` (lowercase names) and `event` that must be true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_EXPRESSION))]
    pub filter: Option<String>,
    /// The Task's queue (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = limits::DNS_LABEL_MAX))]
    pub queue: Option<String>,
    /// The Task's priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::PRIORITY_MIN, max = limits::PRIORITY_MAX))]
    pub priority: Option<i32>,
    /// Task params, each a CEL expression whose (scalar) value becomes the param (with `template`,
    /// one of its parameters, checked when the Task is rendered).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    pub params: BTreeMap<String, String>,
    /// The Task to create (or give `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<RuleTask>,
    /// The template to make the Task from, with `params` as its parameters (or give `task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<crate::template::TemplateRef>,
    /// At most one running Task per key: a newer delivery with the same key cancels the older Task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Delete the finished Task after this long (with `template` too; beats `task`'s own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = limits::TTL_MAX))]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// The Task a rule creates (queue and priority are the rule's).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuleTask {
    /// Container image (default: the operator's default Task image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::IMAGE_MAX))]
    pub image: Option<String>,
    /// The command.
    #[schemars(length(min = 1, max = limits::COMMAND_MAX))]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ARGS_MAX))]
    pub args: Vec<String>,
    /// Environment (not secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ENV_MAX))]
    pub env: Vec<TaskEnv>,
    /// Logical credential names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::CREDENTIALS_MAX), inner(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = limits::DNS_LABEL_MAX)))]
    pub credentials: Vec<String>,
    /// Deadline for all attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::TIMEOUT_MIN, max = limits::TIMEOUT_MAX))]
    pub timeout_seconds: Option<i64>,
    /// Retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Resources of the task container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TaskResources>,
    /// Delete the finished Task after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = limits::TTL_MAX))]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// One running Task per key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Concurrency {
    /// A CEL expression (like params) naming the key, e.g. the pull request number.
    #[schemars(length(min = 1, max = MAX_EXPRESSION))]
    pub key: String,
    /// What happens to the Task already running for the key.
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
}

/// What a newer delivery does to the older Task of its key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ConcurrencyPolicy {
    /// The older Task is cancelled.
    #[default]
    CancelPrevious,
}

/// What a trigger has received.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskTriggerStatus {
    /// `Ready` (rules compile, secret found) with a reason and message when not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<crate::Condition>,
    /// Number of rules (printer column).
    #[serde(default)]
    pub rules: i32,
    /// The newest delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<DeliveryRecord>,
    /// The last deliveries, newest first (refused ones are not kept here: anyone can send those).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = DELIVERY_LOG))]
    pub deliveries: Vec<DeliveryRecord>,
    /// The newest refused delivery (not authenticated or malformed) and why: enough to find a
    /// misconfigured secret, without letting unauthenticated senders push real deliveries out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refused: Option<DeliveryRecord>,
    /// Deliveries by outcome since the trigger was created.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, i64>,
    /// Spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One delivery in the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// The provider's delivery id.
    #[schemars(length(max = 256))]
    pub id: String,
    /// The provider's event name.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub event: String,
    /// When it arrived (RFC 3339).
    pub time: String,
    /// `Created`, `Redelivered`, `Ignored`, `Refused`, `RateLimited`, `Failed`.
    pub outcome: String,
    /// The rule that matched.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// The Task it made (or had made).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
    /// Why it was ignored, refused or failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub reason: String,
}
