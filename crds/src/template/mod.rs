//! Task templates ("task types"): `TaskTemplate` (a team's, namespaced) and `ClusterTaskTemplate`
//! (the admins' cluster-wide catalogue). A template declares typed parameters and the Task they
//! produce; a Task names it with `templateRef` and gives `params`. The operator renders it once, when
//! the Task is first admitted, and keeps the result and the template's generation in the Task's
//! status, so a later edit of the template never changes a Task that already exists.
//!
//! Parameters are substituted only where the template writes `$(params.NAME)`: in `image`, `command`,
//! `args`, `env` values (a whole element, or inside a larger string only for a parameter declared
//! `embed: true`) and `credentials` (whole elements only). Every parameter is also given to the
//! command as `EPHEMERA_PARAM_<NAME>`, the safe way for a shell script to read it.

#[cfg(test)]
mod catalogue_tests;
mod render;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::{limits, RetryPolicy, TaskEnv, TaskResources};

pub use render::{check, params, render, ParamProblem, RenderError};

/// Most parameters a template declares.
pub const MAX_PARAMS: usize = 32;
/// Longest parameter value, in bytes (an environment variable's limit).
pub const MAX_PARAM_VALUE: usize = limits::ENV_VALUE_MAX;

/// What a team's template offers (namespaced: usable by Tasks of its own namespace only).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "TaskTemplate",
    namespaced,
    shortname = "ett",
    category = "ephemera",
    doc = "A typed Task template of one namespace: parameters and the Task they produce.",
    printcolumn(name = "Description", type_ = "string", json_path = ".spec.description"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TaskTemplateSpec {
    /// The template.
    #[serde(flatten)]
    pub body: TemplateBody,
}

/// What a cluster-wide template offers (usable by Tasks of every namespace).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "ClusterTaskTemplate",
    shortname = "ectt",
    category = "ephemera",
    doc = "A typed Task template for every namespace (the admins' catalogue): parameters and the Task they produce.",
    printcolumn(name = "Description", type_ = "string", json_path = ".spec.description"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTaskTemplateSpec {
    /// The template.
    #[serde(flatten)]
    pub body: TemplateBody,
}

/// A template: what it is for, its parameters and the Task it produces.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateBody {
    /// What the template does (shown in the API's template list and in forms).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PARAMS))]
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(o, o.name == p.name))").message("param names are unique"))]
    pub params: Vec<TemplateParam>,
    /// The Task it produces.
    pub task: TemplateTask,
}

/// One typed parameter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'enum' ? (has(self.values) && size(self.values) > 0) : !has(self.values)").message("an enum param lists its values, and only an enum param has values"),
    validation = Rule::new("!has(self.pattern) || self.type == 'string'").message("pattern applies to string params only"),
    validation = Rule::new("(!has(self.minimum) && !has(self.maximum)) || self.type == 'integer'").message("minimum and maximum apply to integer params only"),
    validation = Rule::new("!has(self.minimum) || !has(self.maximum) || self.minimum <= self.maximum").message("minimum is at most maximum"),
    validation = Rule::new("!(has(self.required) && self.required && has(self.default))").message("a required param has no default"),
    validation = Rule::new("self.type != 'enum' || !has(self.default) || self.default in self.values").message("the default of an enum param is one of its values"),
    validation = Rule::new("self.type != 'boolean' || !has(self.default) || self.default in ['true', 'false']").message("the default of a boolean param is true or false"),
    validation = Rule::new("!has(self.embed) || !self.embed || self.type != 'string' || has(self.pattern)").message("a string param declared embed gives a pattern (it is spliced into a larger string)")
)]
pub struct TemplateParam {
    /// Its name, referenced as `$(params.NAME)` and given to the command as `EPHEMERA_PARAM_<NAME>`.
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_]*$"), length(max = 63))]
    pub name: String,
    /// Its type: `string`, `integer`, `boolean` or `enum`.
    #[serde(rename = "type", default)]
    pub type_: ParamType,
    /// A Task must give it (no default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The value when a Task gives none (written as the Task would give it: `"3"`, `"true"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PARAM_VALUE))]
    pub default: Option<String>,
    /// What it means (shown in forms).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// `string`: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub pattern: Option<String>,
    /// `integer`: the smallest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    /// `integer`: the largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    /// `enum`: the values it may take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 256)))]
    pub values: Vec<String>,
    /// May be spliced into a larger string (`--target-org=$(params.org)`); without it a parameter
    /// only ever becomes a whole argument or value of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embed: bool,
}

/// The type of a parameter.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any text (bounded by `pattern` if given).
    #[default]
    String,
    /// A whole number (bounded by `minimum` and `maximum`).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// One of `values`.
    Enum,
}

impl ParamType {
    /// The type as written in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Enum => "enum",
        }
    }
}

/// The Task a template produces (`$(params.NAME)` where the module doc says).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateTask {
    /// Container image (default: the operator's default Task image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::IMAGE_MAX))]
    pub image: Option<String>,
    /// The command.
    #[schemars(length(min = 1, max = limits::COMMAND_MAX), inner(length(max = limits::ENV_VALUE_MAX)))]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ARGS_MAX), inner(length(max = limits::ENV_VALUE_MAX)))]
    pub args: Vec<String>,
    /// Environment (not secrets); `HOME`, `EPHEMERA_*` and `LD_*` are reserved, as in a Task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ENV_MAX))]
    #[x_kube(validation = Rule::new("self.all(e, e.name != 'HOME' && !e.name.startsWith('EPHEMERA_') && !e.name.startsWith('LD_'))").message("HOME, EPHEMERA_* and LD_* are reserved"))]
    pub env: Vec<TaskEnv>,
    /// Logical credential names, or a whole `$(params.NAME)` whose value is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::CREDENTIALS_MAX), inner(regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?|\$\(params\.[A-Za-z][A-Za-z0-9_]*\))$"), length(max = 80)))]
    pub credentials: Vec<String>,
    /// Queue (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = limits::DNS_LABEL_MAX))]
    pub queue: Option<String>,
    /// Priority (a Task's own non-zero priority wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::PRIORITY_MIN, max = limits::PRIORITY_MAX))]
    pub priority: Option<i32>,
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
}

/// Which kind of template a Task names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TemplateKind {
    /// A `TaskTemplate` of the Task's own namespace.
    TaskTemplate,
    /// A `ClusterTaskTemplate`.
    #[default]
    ClusterTaskTemplate,
}

impl TemplateKind {
    /// The kind as written in `templateRef.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::TaskTemplate => "TaskTemplate",
            TemplateKind::ClusterTaskTemplate => "ClusterTaskTemplate",
        }
    }
}

/// The template a Task is made from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct TemplateRef {
    /// `TaskTemplate` (of the Task's namespace) or `ClusterTaskTemplate` (the default).
    #[serde(default)]
    pub kind: TemplateKind,
    /// Its name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(max = 253))]
    pub name: String,
}

/// What the operator rendered a templated Task into, and from which template version: written once,
/// when the Task is first admitted, and what every later step of the Task runs from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateResolution {
    /// The template's kind.
    pub kind: TemplateKind,
    /// Its name.
    pub name: String,
    /// Its uid (a template deleted and recreated under the same name is another template).
    #[serde(default)]
    pub uid: String,
    /// Its `metadata.generation` that was rendered.
    #[serde(default)]
    pub generation: i64,
    /// The rendered Task.
    pub task: RenderedTask,
}

/// A template's Task with the parameters substituted and the defaults applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RenderedTask {
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The command.
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<TaskEnv>,
    /// Every parameter with its value (given or default), as the command receives them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
    /// Logical credential names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
    /// Queue.
    pub queue: String,
    /// Priority.
    #[serde(default)]
    pub priority: i32,
    /// Deadline for all attempts.
    pub timeout_seconds: i64,
    /// Retries.
    pub retry: RetryPolicy,
    /// Resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TaskResources>,
}

impl TemplateResolution {
    /// Rendered from the template `r` names (anything else in a Task's status is never run).
    pub fn is_for(&self, r: &TemplateRef) -> bool {
        self.kind == r.kind && self.name == r.name
    }
}

impl crate::Task {
    /// The rendering a templated Task runs from, once made from the template it names.
    fn rendering(&self) -> Option<&RenderedTask> {
        let r = self.status.as_ref().and_then(|s| s.template.as_ref())?;
        self.spec.template_ref.as_ref().is_some_and(|t| r.is_for(t)).then_some(&r.task)
    }

    /// The Task as it runs: for a templated Task whose template was rendered, its spec with the
    /// rendered fields in place (a Task not yet rendered, or not templated, is itself).
    pub fn rendered(&self) -> std::borrow::Cow<'_, crate::Task> {
        match self.rendering() {
            Some(r) => std::borrow::Cow::Owned(with_rendering(self, r)),
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// A templated Task not rendered yet (its queue, credentials and command are not known).
    pub fn awaits_rendering(&self) -> bool {
        self.spec.template_ref.is_some() && self.status.as_ref().is_none_or(|s| s.template.is_none())
    }

    /// The queue the Task runs in (a templated Task's once rendered).
    pub fn queue(&self) -> &str {
        self.rendering().map_or(&self.spec.queue, |r| &r.queue)
    }

    /// The priority the Task asked for (a templated Task's once rendered).
    pub fn priority(&self) -> i32 {
        self.rendering().map_or(self.spec.priority, |r| r.priority)
    }
}

/// `task` with a rendering's fields in its spec.
pub fn with_rendering(task: &crate::Task, r: &RenderedTask) -> crate::Task {
    let mut t = task.clone();
    let s = &mut t.spec;
    s.image = r.image.clone();
    s.command = r.command.clone();
    s.args = r.args.clone();
    s.env = r.env.clone();
    s.params = r.params.clone();
    s.credentials = r.credentials.clone();
    s.queue = r.queue.clone();
    s.priority = r.priority;
    s.timeout_seconds = r.timeout_seconds;
    s.retry = r.retry.clone();
    s.resources = r.resources.clone();
    t
}
