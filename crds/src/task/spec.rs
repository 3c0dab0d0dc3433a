//! What a Task asks for.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::limits;
use super::status::TaskStatus;

/// What a Task runs, and the rules it runs under.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema, Default)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "Task",
    namespaced,
    status = "TaskStatus",
    shortname = "etask",
    category = "ephemera",
    doc = "A unit of work that Ephemera runs in its own short-lived worker Pod, with just-in-time credentials.",
    // On the Task, not on TaskSpec: a TaskSchedule embeds TaskSpec, and its Tasks' spec may change.
    validation = Rule::new("self.spec.queue == oldSelf.spec.queue").message("queue is immutable"),
    validation = Rule::new("has(self.spec.templateRef) == has(oldSelf.spec.templateRef) && (!has(self.spec.templateRef) || self.spec.templateRef == oldSelf.spec.templateRef)").message("templateRef is immutable"),
    // What the operator rendered a templated Task into is what it runs, for good: no status
    // writer (the API server's progress intake included) may change or remove it.
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.template) || (has(self.status) && has(self.status.template) && self.status.template == oldSelf.status.template)").message("status.template is written once"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Queue", type_ = "string", json_path = ".spec.queue"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Attempt", type_ = "integer", json_path = ".status.attempt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.reason", priority = "1"),
    printcolumn(name = "Pod", type_ = "string", json_path = ".status.podName", priority = "1"),
    // A templated Task's Queue column says `default`: the queue it runs in is the rendered one.
    printcolumn(name = "Template", type_ = "string", json_path = ".spec.templateRef.name", priority = "1"),
    printcolumn(name = "Rendered-Queue", type_ = "string", json_path = ".status.template.task.queue", priority = "1")
)]
#[x_kube(
    validation = Rule::new("has(self.templateRef) != (has(self.command) && size(self.command) > 0)").message("set exactly one of command and templateRef"),
    validation = Rule::new("!has(self.templateRef) || !(has(self.image) || has(self.args) || has(self.env) || has(self.credentials) || has(self.resources))").message("a Task with templateRef takes image, args, env, credentials and resources from its template"),
    validation = Rule::new("!has(self.templateRef) || (self.queue == 'default' && self.timeoutSeconds == 3600 && self.retry.maxAttempts == 1 && self.retry.backoffSeconds == 10 && self.retry.maxBackoffSeconds == 300 && self.retry.retryOn == ['Infrastructure'])").message("a Task with templateRef takes queue, timeoutSeconds and retry from its template")
)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Container image the command runs in; unset means the operator's default Task image
    /// (`--default-task-image`, else its worker image, which has no shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::IMAGE_MAX))]
    pub image: Option<String>,
    /// Command run by the worker (the task itself), e.g. `["sf", "project", "deploy", "start"]`;
    /// required unless `templateRef` names a template that gives it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::COMMAND_MAX))]
    pub command: Vec<String>,
    /// The template (`TaskTemplate` of this namespace or `ClusterTaskTemplate`) the Task is made
    /// from, with `params` as its parameters. The template gives image, command, args, env,
    /// credentials, queue, timeout, retry and resources; the Task may set priority and its TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<crate::template::TemplateRef>,
    /// Arguments appended to `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ARGS_MAX))]
    pub args: Vec<String>,
    /// Non-secret environment for the command. Secrets come only through `credentials`. `HOME` and
    /// `EPHEMERA_*` are reserved (set by the operator), and so is `LD_*` (it would load code into the
    /// worker, which holds private keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ENV_MAX))]
    #[x_kube(validation = Rule::new("self.all(e, e.name != 'HOME' && !e.name.startsWith('EPHEMERA_') && !e.name.startsWith('LD_'))").message("HOME, EPHEMERA_* and LD_* are reserved"))]
    pub env: Vec<TaskEnv>,
    /// Parameters, given to the command as `EPHEMERA_PARAM_<NAME>` variables: free-form, or the
    /// template's typed parameters (checked against it) when `templateRef` is set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Logical credential names (admin-defined, e.g. `prod-org`); never Vault paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::CREDENTIALS_MAX), inner(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = limits::DNS_LABEL_MAX)))]
    pub credentials: Vec<String>,
    /// Queue (a `TaskQueue` name) deciding concurrency; defaults to `default`. Immutable: moving a
    /// running Task to another queue would escape the first queue's limit.
    #[serde(default = "default_queue")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = limits::DNS_LABEL_MAX))]
    pub queue: String,
    /// Higher runs first within a queue; ties run oldest first.
    #[serde(default)]
    #[schemars(range(min = limits::PRIORITY_MIN, max = limits::PRIORITY_MAX))]
    pub priority: i32,
    /// Deadline for the whole Task (all attempts), in seconds from creation.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = limits::TIMEOUT_MIN, max = limits::TIMEOUT_MAX))]
    pub timeout_seconds: i64,
    /// What happens when an attempt fails.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Delete the Task this long after it finished (absent: keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = limits::TTL_MAX))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Set to true to cancel: the Pod is stopped gracefully and the Task ends `Cancelled`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// Compute resources of the worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TaskResources>,
    /// Who or what asked for this Task (set by the API server and webhooks).
    // Boxed, as `status.template`: every cached Task would carry its size inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Box<Origin>>,
}

fn default_queue() -> String {
    "default".into()
}

fn default_timeout() -> i64 {
    limits::TIMEOUT_DEFAULT
}

/// One non-secret environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TaskEnv {
    /// Variable name.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"), length(max = limits::ENV_NAME_MAX))]
    pub name: String,
    /// Value.
    #[serde(default)]
    #[schemars(length(max = limits::ENV_VALUE_MAX))]
    pub value: String,
}

/// Which failures are retried, how often and how fast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in total, including the first.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = limits::ATTEMPTS_MAX))]
    pub max_attempts: i32,
    /// Delay before the second attempt; doubles for each further one.
    #[serde(default = "default_backoff")]
    #[schemars(range(min = 0, max = limits::BACKOFF_MAX))]
    pub backoff_seconds: i64,
    /// Upper bound of the delay between attempts.
    #[serde(default = "default_max_backoff")]
    #[schemars(range(min = 0, max = limits::MAX_BACKOFF_MAX))]
    pub max_backoff_seconds: i64,
    /// Failure classes that are retried.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<FailureClass>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            backoff_seconds: default_backoff(),
            max_backoff_seconds: default_max_backoff(),
            retry_on: default_retry_on(),
        }
    }
}

fn default_attempts() -> i32 {
    1
}

fn default_backoff() -> i64 {
    10
}

fn default_max_backoff() -> i64 {
    300
}

fn default_retry_on() -> Vec<FailureClass> {
    vec![FailureClass::Infrastructure]
}

/// Why an attempt failed, for deciding whether to retry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FailureClass {
    /// The task command exited non-zero.
    ExitCode,
    /// The Pod could not run the command (image pull, configuration, eviction, lost node, stuck
    /// before start).
    Infrastructure,
    /// The attempt ran into the Task's deadline (never retried once the deadline has passed).
    Timeout,
}

/// Worker container resources (quantities as Kubernetes writes them, e.g. `500m`, `1Gi`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct TaskResources {
    /// Requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// Who asked for a Task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct Origin {
    /// `api` or `webhook`.
    #[schemars(length(max = 128))]
    pub source: String,
    /// The authenticated identity (API token id, OIDC subject, `trigger:<namespace>/<name>`).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub requester: String,
    /// Webhook Tasks: the TaskTrigger that made it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub trigger: String,
    /// Webhook Tasks: the provider's event name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 128))]
    pub event: String,
    /// Webhook Tasks: the provider's delivery id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 256))]
    pub delivery: String,
}
