//! The API's request and response bodies (what `/openapi.json` describes).

use std::collections::BTreeMap;

use ephemera_crds::task::limits::{self as lim, dns_label};
use ephemera_crds::{FailureClass, Task};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::FieldError;

/// Retry policy of a new Task.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryRequest {
    /// Attempts in all (1-10).
    #[schema(minimum = 1, maximum = 10)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i32")]
    pub max_attempts: Option<i32>,
    /// First back-off (0-3600 s), doubling.
    #[schema(minimum = 0, maximum = 3600)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i64")]
    pub backoff_seconds: Option<i64>,
    /// Failure classes retried.
    pub retry_on: Option<Vec<FailureClass>>,
}

/// A Task to create.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTask {
    /// Name (DNS label); generated when absent.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 53)]
    pub name: Option<String>,
    /// Container image (default: the operator's worker image).
    #[schema(pattern = "^[!-~]+$", min_length = 1, max_length = 512)]
    pub image: Option<String>,
    /// The command (1-64 words; the first is the program); not with `template`.
    #[serde(default)]
    #[schema(schema_with = command_schema)]
    pub command: Vec<String>,
    /// The template to make the Task from (`GET /api/v1/templates` lists them), with `params` as
    /// its parameters: a name (a `ClusterTaskTemplate`) or `{kind, name}`. The template gives image, command, args, env,
    /// credentials, queue, timeout and retry, so those are not given with it.
    pub template: Option<TemplateChoice>,
    /// Arguments.
    #[serde(default)]
    #[schema(max_items = 128)]
    pub args: Vec<String>,
    /// Environment (not secrets: name credentials instead). Names match `[A-Za-z_][A-Za-z0-9_]*`;
    /// `HOME`, `EPHEMERA_*` and `LD_*` are reserved.
    #[serde(default)]
    #[schema(schema_with = env_schema)]
    pub env: BTreeMap<String, String>,
    /// Parameters (`EPHEMERA_PARAM_<NAME>`); with `template`, its typed parameters (strings,
    /// integers and booleans, checked against the template).
    #[serde(default, deserialize_with = "scalar_params")]
    #[schema(schema_with = params_schema)]
    pub params: BTreeMap<String, String>,
    /// Logical credential names (DNS labels).
    #[serde(default)]
    #[schema(schema_with = credentials_schema)]
    pub credentials: Vec<String>,
    /// Queue (default `default`).
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    pub queue: Option<String>,
    /// Priority (-1000..1000).
    #[schema(minimum = -1000, maximum = 1000)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i32")]
    pub priority: Option<i32>,
    /// Deadline for all attempts (1 s - 7 days).
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i64")]
    pub timeout_seconds: Option<i64>,
    /// Retries.
    pub retry: Option<RetryRequest>,
    /// Delete the finished Task after this long.
    #[schema(minimum = 0, maximum = 31536000)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i64")]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Labels for filtering (Kubernetes label syntax).
    #[serde(default)]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
}

/// Which template a Task is made from.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TemplateChoice {
    /// A name: the `ClusterTaskTemplate` of that name.
    Name(String),
    /// A kind and a name.
    Ref(TemplateRequest),
}

/// A template by kind and name.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// `TaskTemplate` (of the Task's namespace) or `ClusterTaskTemplate`.
    pub kind: ephemera_crds::TemplateKind,
    /// Its name (a Kubernetes object name).
    #[schema(schema_with = object_name_schema)]
    pub name: String,
}

// By hand: utoipa cannot put a pattern on the string of an untagged variant, and without one a
// client (or a fuzzer) reads any string as a template name.
impl utoipa::PartialSchema for TemplateChoice {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        OneOfBuilder::new()
            .item(object_name_schema())
            .item(utoipa::openapi::Ref::from_schema_name(TemplateRequest::name()))
            .description(Some("Which template a Task is made from."))
            .into()
    }
}

impl ToSchema for TemplateChoice {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((TemplateRequest::name().into(), <TemplateRequest as utoipa::PartialSchema>::schema()));
        <TemplateRequest as ToSchema>::schemas(schemas);
    }
}

impl TemplateChoice {
    /// The template's name.
    pub fn name(&self) -> &str {
        match self {
            TemplateChoice::Name(n) => n,
            TemplateChoice::Ref(r) => &r.name,
        }
    }
}

/// Params as strings: a template's integer and boolean params may be given as JSON numbers and
/// booleans (`{"wait": 33, "dryRun": true}`), and are kept as the Task's string params.
fn scalar_params<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: BTreeMap<String, serde_json::Value> = BTreeMap::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Ok((k, n.to_string())),
            _ => Err(serde::de::Error::custom(format!("param {k:?} must be a string, an integer or a boolean"))),
        })
        .collect()
}

fn params_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    let scalar = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(ephemera_crds::template::MAX_PARAM_VALUE)))
        .item(ObjectBuilder::new().schema_type(Type::Integer))
        .item(ObjectBuilder::new().schema_type(Type::Boolean));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(scalar.build())))))
        .description(Some("Parameters by name; a template's are typed (string, integer, boolean)."))
        .build()
}

/// A Kubernetes object name: a DNS subdomain, as [`ephemera_crds::task::limits::dns_subdomain`].
fn object_name_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))
        .max_length(Some(ephemera_crds::task::limits::DNS_SUBDOMAIN_MAX))
        .description(Some("A template's name (a Kubernetes object name)."))
        .build()
}
/// A DNS label.
const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/// A label key: optional DNS-subdomain prefix, then a name.
const LABEL_KEY: &str = "^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// A label value (may be empty).
const LABEL_VALUE: &str = "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";

fn credentials_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(DNS_LABEL)))
        .max_items(Some(lim::CREDENTIALS_MAX))
        .description(Some("Logical credential names an admin defined (never Vault paths)."))
        .build()
}

fn labels_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(LABEL_KEY))))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(LABEL_VALUE))))
        .description(Some("Labels (Kubernetes label syntax), for filtering with labelSelector."))
        .build()
}

static LABEL_KEY_RE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(LABEL_KEY).ok());
static LABEL_VALUE_RE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(LABEL_VALUE).ok());

fn label_ok(key: &str, value: &str) -> bool {
    let (Some(k), Some(v)) = (LABEL_KEY_RE.as_ref(), LABEL_VALUE_RE.as_ref()) else { return false };
    key.len() <= 316 && k.is_match(key) && v.is_match(value)
}

/// `command`: 1-64 words, the program not empty (none with a template).
fn command_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
        .max_items(Some(lim::COMMAND_MAX))
        .description(Some(
            "The command (1-64 non-empty words; the first is the program). Required unless `template` is given.",
        ))
        .build()
}

/// `env`: at most 64 variables with valid names and values of at most 4096 bytes.
fn env_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^[A-Za-z_][A-Za-z0-9_]{{0,{}}}$", lim::ENV_NAME_MAX - 1))),
        ))
        .additional_properties(Some(
            ObjectBuilder::new().schema_type(Type::String).max_length(Some(lim::ENV_VALUE_MAX)),
        ))
        .max_properties(Some(lim::ENV_MAX))
        .description(Some(
            "Environment variables (not secrets: name credentials instead); HOME, EPHEMERA_* and LD_* are reserved.",
        ))
        .build()
}

impl CreateTask {
    /// Checks what the CRD schema would refuse, with field paths, before anything reaches the cluster.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut bad =
            |field: &str, message: &str| errors.push(FieldError { field: field.into(), message: message.into() });
        if let Some(n) = &self.name {
            if !dns_label(n) || n.len() > 53 {
                bad("name", "must be a DNS label (lowercase letters, digits, '-') of at most 53 characters");
            }
        }
        if let Some(t) = &self.template {
            let name = t.name();
            if name.is_empty() || name.len() > 253 {
                bad("template", "must name a template (at most 253 characters)");
            }
            // The template gives these: a Task made from one cannot change them.
            let given = [
                ("command", !self.command.is_empty()),
                ("image", self.image.is_some()),
                ("args", !self.args.is_empty()),
                ("env", !self.env.is_empty()),
                ("credentials", !self.credentials.is_empty()),
                ("queue", self.queue.is_some()),
                ("timeoutSeconds", self.timeout_seconds.is_some()),
                ("retry", self.retry.is_some()),
            ];
            for (field, _) in given.iter().filter(|(_, set)| *set) {
                bad(field, "is given by the template: a Task made from a template cannot set it");
            }
        } else if self.command.is_empty() || self.command.len() > lim::COMMAND_MAX {
            bad("command", &format!("must have 1 to {} words (or give a template)", lim::COMMAND_MAX));
        }
        if self.command.iter().any(String::is_empty) {
            bad("command", "words must not be empty");
        }
        if self.args.len() > lim::ARGS_MAX {
            bad("args", &format!("at most {} arguments", lim::ARGS_MAX));
        }
        // Image references are printable ASCII without spaces; the schema says exactly this.
        if self
            .image
            .as_ref()
            .is_some_and(|i| i.is_empty() || i.len() > lim::IMAGE_MAX || !i.bytes().all(|b| b.is_ascii_graphic()))
        {
            let max = lim::IMAGE_MAX;
            bad(
                "image",
                &format!("must be an image reference (printable ASCII, no spaces) of at most {max} characters"),
            );
        }
        if self.env.len() > lim::ENV_MAX {
            bad("env", &format!("at most {} variables", lim::ENV_MAX));
        }
        for (k, v) in &self.env {
            let valid = !k.is_empty()
                && k.len() <= lim::ENV_NAME_MAX
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                bad(&format!("env.{k}"), "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)");
            } else if k == "HOME" || k.starts_with("EPHEMERA_") || k.starts_with("LD_") {
                bad(&format!("env.{k}"), "HOME, EPHEMERA_* and LD_* are reserved");
            }
            if v.len() > lim::ENV_VALUE_MAX {
                bad(&format!("env.{k}"), &format!("values are at most {} bytes", lim::ENV_VALUE_MAX));
            }
        }
        if self.credentials.len() > lim::CREDENTIALS_MAX {
            bad("credentials", &format!("at most {} credentials", lim::CREDENTIALS_MAX));
        }
        for (i, c) in self.credentials.iter().enumerate() {
            if !dns_label(c) {
                bad(
                    &format!("credentials[{i}]"),
                    "names are DNS labels (logical names an admin defined, never Vault paths)",
                );
            }
        }
        for (k, v) in &self.labels {
            if !label_ok(k, v) {
                bad(
                    &format!("labels.{k}"),
                    "keys are [prefix/]name and values at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric",
                );
            }
        }
        if self.queue.as_ref().is_some_and(|q| !dns_label(q)) {
            bad("queue", "must be a DNS label");
        }
        let mut range = |field: &str, value: Option<i64>, min: i64, max: i64| {
            if value.is_some_and(|v| !(min..=max).contains(&v)) {
                bad(field, &format!("must be between {min} and {max}"));
            }
        };
        let (pmin, pmax) = (i64::from(lim::PRIORITY_MIN), i64::from(lim::PRIORITY_MAX));
        range("priority", self.priority.map(i64::from), pmin, pmax);
        range("timeoutSeconds", self.timeout_seconds, lim::TIMEOUT_MIN, lim::TIMEOUT_MAX);
        range("ttlSecondsAfterFinished", self.ttl_seconds_after_finished, 0, lim::TTL_MAX);
        if let Some(r) = &self.retry {
            range("retry.maxAttempts", r.max_attempts.map(i64::from), 1, i64::from(lim::ATTEMPTS_MAX));
            range("retry.backoffSeconds", r.backoff_seconds, 0, lim::BACKOFF_MAX);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A Task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Unique id.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Queue (a templated Task's once rendered).
    pub queue: String,
    /// Priority (a templated Task's once rendered).
    pub priority: i32,
    /// The template it was made from (`ClusterTaskTemplate/NAME` or `TaskTemplate/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `Pending`, `Scheduled`, `Running`, `Succeeded`, `Failed`, `Cancelled`, `TimedOut`.
    pub phase: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Explanation.
    pub message: String,
    /// Current attempt.
    pub attempt: i32,
    /// Exit code, once finished.
    pub exit_code: Option<i32>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Started running.
    pub start_time: Option<String>,
    /// Finished.
    pub completion_time: Option<String>,
    /// Who asked for it.
    pub requested_by: String,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> Self {
        let st = t.status.clone().unwrap_or_default();
        TaskView {
            name: t.name_any(),
            namespace: t.namespace().unwrap_or_default(),
            uid: t.metadata.uid.clone().unwrap_or_default(),
            labels: t.labels().clone(),
            queue: t.queue().to_string(),
            priority: t.priority(),
            template: t.spec.template_ref.as_ref().map(|r| format!("{}/{}", r.kind.as_str(), r.name)),
            phase: st.phase.as_str().into(),
            reason: st.reason,
            message: st.message,
            attempt: st.attempt,
            exit_code: st.exit_code,
            created_at: t.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()).unwrap_or_default(),
            start_time: st.start_time,
            completion_time: st.completion_time,
            requested_by: t.spec.origin.as_ref().map(|o| o.requester.clone()).unwrap_or_default(),
            cancel_requested: t.spec.cancel,
        }
    }
}

/// A page of Tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    /// Newest first.
    pub items: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A finished Task's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Name.
    pub name: String,
    /// Final phase.
    pub phase: String,
    /// Reason.
    pub reason: String,
    /// Exit code of the last attempt.
    pub exit_code: Option<i32>,
    /// What the task wrote to `$EPHEMERA_RESULT_FILE` (bounded, secrets masked).
    pub result: String,
}

/// A queue's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// Name.
    pub name: String,
    /// Concurrency limit (0 = unlimited).
    pub concurrency: i32,
    /// Tasks holding a Pod.
    pub running: i32,
    /// Tasks waiting.
    pub pending: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The REST schema, the CRD schema and `validate()` state the same bounds: the ones in
    /// `ephemera_crds::task::limits` (utoipa's attributes take literals only, so they are checked here).
    #[test]
    fn the_api_and_crd_schemas_state_the_limits_validation_enforces() {
        use kube::CustomResourceExt as _;
        let api: serde_json::Value = serde_json::from_str(&crate::openapi::json()).unwrap();
        let crd = serde_json::to_value(Task::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        let create = &api["components"]["schemas"]["CreateTask"]["properties"];
        let retry = &api["components"]["schemas"]["RetryRequest"]["properties"];
        let n = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        #[rustfmt::skip]
        let rows: [(&str, &serde_json::Value, &serde_json::Value, f64); 14] = [
            ("priority min", &create["priority"]["minimum"], &spec["priority"]["minimum"], lim::PRIORITY_MIN.into()),
            ("priority max", &create["priority"]["maximum"], &spec["priority"]["maximum"], lim::PRIORITY_MAX.into()),
            ("timeout min", &create["timeoutSeconds"]["minimum"], &spec["timeoutSeconds"]["minimum"], lim::TIMEOUT_MIN as f64),
            ("timeout max", &create["timeoutSeconds"]["maximum"], &spec["timeoutSeconds"]["maximum"], lim::TIMEOUT_MAX as f64),
            ("ttl max", &create["ttlSecondsAfterFinished"]["maximum"], &spec["ttlSecondsAfterFinished"]["maximum"], lim::TTL_MAX as f64),
            ("attempts max", &retry["maxAttempts"]["maximum"], &spec["retry"]["properties"]["maxAttempts"]["maximum"], lim::ATTEMPTS_MAX.into()),
            ("backoff max", &retry["backoffSeconds"]["maximum"], &spec["retry"]["properties"]["backoffSeconds"]["maximum"], lim::BACKOFF_MAX as f64),
            ("image", &create["image"]["maxLength"], &spec["image"]["maxLength"], lim::IMAGE_MAX as f64),
            ("command", &create["command"]["maxItems"], &spec["command"]["maxItems"], lim::COMMAND_MAX as f64),
            ("args", &create["args"]["maxItems"], &spec["args"]["maxItems"], lim::ARGS_MAX as f64),
            ("env", &create["env"]["maxProperties"], &spec["env"]["maxItems"], lim::ENV_MAX as f64),
            ("env value", &create["env"]["additionalProperties"]["maxLength"], &spec["env"]["items"]["properties"]["value"]["maxLength"], lim::ENV_VALUE_MAX as f64),
            ("credentials", &create["credentials"]["maxItems"], &spec["credentials"]["maxItems"], lim::CREDENTIALS_MAX as f64),
            ("queue", &create["queue"]["maxLength"], &spec["queue"]["maxLength"], lim::DNS_LABEL_MAX as f64),
        ];
        for (what, api, crd, want) in rows {
            assert_eq!((n(api), n(crd)), (want, want), "{what}: REST schema, CRD schema, limits");
        }
    }

    #[test]
    fn validation_names_every_bad_field() {
        let t: CreateTask = serde_json::from_value(serde_json::json!({
            "name": "Bad_Name", "command": [], "env": {"HOME": "/x", "1x": "y"}, "priority": 5000,
            "credentials": ["secret/data/prod"]
        }))
        .unwrap();
        let fields: Vec<String> = t.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        for f in ["name", "command", "env.HOME", "env.1x", "priority", "credentials[0]"] {
            assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
        }
        let ok: CreateTask = serde_json::from_value(serde_json::json!({"command": ["true"]})).unwrap();
        assert!(ok.validate().is_ok());
        assert!(serde_json::from_value::<CreateTask>(serde_json::json!({"command": ["x"], "bogus": 1})).is_err());
    }
}
