//! Task templates over REST: `GET /api/v1/templates` lists the templates a caller may make Tasks
//! from, with their parameter schemas (forms and the CLI are built from it); a create by template
//! finds its template here and checks the params before the Task is written, so a caller hears
//! about a wrong param at once rather than from a failed Task.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use ephemera_crds::template::{check, render, ParamType, RenderError, TemplateParam};
use ephemera_crds::{ClusterTaskTemplate, TaskSpec, TaskTemplate, TemplateBody, TemplateKind, TemplateRef};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Identity, Verb};
use crate::error::{ApiError, FieldError, Refusals};
use crate::tasks::model::TemplateChoice;
use crate::AppState;

/// A template a caller may make Tasks from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    /// `TaskTemplate` or `ClusterTaskTemplate`.
    pub kind: TemplateKind,
    /// Its name.
    pub name: String,
    /// A `TaskTemplate`'s namespace (the only one whose Tasks may use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// What it does.
    pub description: String,
    /// Its parameters, in order.
    pub params: Vec<ParamView>,
    /// What is wrong with it, if anything: a Task made from it would fail (its owner must fix it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One parameter's schema.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParamView {
    /// Its name (the key in `params`).
    pub name: String,
    /// `string`, `integer`, `boolean` or `enum`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A value must be given.
    pub required: bool,
    /// The value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What it means.
    pub description: String,
    /// `string`: a regular expression the whole value matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `integer`: the smallest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    /// `integer`: the largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    /// `enum`: the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl From<&TemplateParam> for ParamView {
    fn from(p: &TemplateParam) -> Self {
        ParamView {
            name: p.name.clone(),
            type_: p.type_.as_str().into(),
            required: p.required,
            default: p.default.clone(),
            description: p.description.clone(),
            pattern: p.pattern.clone().filter(|_| p.type_ == ParamType::String),
            minimum: p.minimum,
            maximum: p.maximum,
            values: p.values.clone(),
        }
    }
}

fn view(kind: TemplateKind, name: String, namespace: Option<String>, body: &TemplateBody) -> TemplateView {
    TemplateView {
        kind,
        name,
        namespace,
        description: body.description.clone(),
        params: body.params.iter().map(ParamView::from).collect(),
        problems: check(body),
    }
}

/// The filter of the template list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    /// Only the templates Tasks of this namespace may use (its `TaskTemplate`s and every
    /// `ClusterTaskTemplate`).
    pub namespace: Option<String>,
}

/// Lists the templates the caller may make Tasks from: every `ClusterTaskTemplate`, and the
/// `TaskTemplate`s of the namespaces it may create Tasks in.
#[utoipa::path(
    get,
    path = "/api/v1/templates",
    tag = "templates",
    params(TemplateQuery),
    responses(
        (status = 200, description = "The templates, cluster-wide first, each by name", body = [TemplateView]),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    who: Identity,
    Query(q): Query<TemplateQuery>,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    if let Some(ns) = &q.namespace {
        who.require(ns, Verb::Create)?;
    }
    let cluster: Api<ClusterTaskTemplate> = Api::all(state.client.clone());
    let mut out: Vec<TemplateView> = cluster
        .list(&ListParams::default())
        .await
        .map_err(|e| ApiError::from_kube(e, "templates"))?
        .items
        .iter()
        .map(|t| view(TemplateKind::ClusterTaskTemplate, t.name_any(), None, &t.spec.body))
        .collect();
    let everywhere = q.namespace.is_none() && who.allows_everywhere(Verb::Create);
    let namespaced: Vec<TaskTemplate> = if everywhere {
        let api: Api<TaskTemplate> = Api::all(state.client.clone());
        api.list(&ListParams::default()).await.map_err(|e| ApiError::from_kube(e, "templates"))?.items
    } else {
        let namespaces = match &q.namespace {
            Some(ns) => vec![ns.clone()],
            None => who.namespaces(Verb::Create),
        };
        let mut items = Vec::new();
        for ns in namespaces.iter().filter(|ns| crate::extract::plausible_name(ns)) {
            let api: Api<TaskTemplate> = Api::namespaced(state.client.clone(), ns);
            items
                .extend(api.list(&ListParams::default()).await.map_err(|e| ApiError::from_kube(e, "templates"))?.items);
        }
        items
    };
    let mut own: Vec<TemplateView> = namespaced
        .iter()
        .filter(|t| t.namespace().is_some_and(|ns| who.allows(&ns, Verb::Create)))
        .map(|t| view(TemplateKind::TaskTemplate, t.name_any(), t.namespace(), &t.spec.body))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    own.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.extend(own);
    Ok(Json(out))
}

/// The template a create names, as a reference the Task records (with the kind explicit), after a
/// trial rendering with the create's params: every wrong param is a field error (`params.NAME`),
/// and so is a malformed, missing or broken template.
pub async fn resolve(
    state: &AppState,
    ns: &str,
    choice: &TemplateChoice,
    given: &std::collections::BTreeMap<String, String>,
) -> Result<TemplateRef, ApiError> {
    let name = choice.name().to_string();
    let field = |message: String| ApiError::Validation(vec![FieldError { field: "template".into(), message }]);
    // Not a name any template can have: said so, without asking the cluster about it.
    if !crate::extract::plausible_name(&name) {
        return Err(field(format!(
            "{name:?} is not a template name (lowercase letters, digits, '-' and '.', at most 253)"
        )));
    }
    let namespaced: Api<TaskTemplate> = Api::namespaced(state.client.clone(), ns);
    let cluster: Api<ClusterTaskTemplate> = Api::all(state.client.clone());
    let get_ns = |name: String| async move {
        namespaced
            .get_opt(&name)
            .await
            .map(|t| t.map(|t| t.spec.body))
            .map_err(|e| ApiError::from_kube(e, "the template"))
    };
    let get_cluster = |name: String| async move {
        cluster.get_opt(&name).await.map(|t| t.map(|t| t.spec.body)).map_err(|e| ApiError::from_kube(e, "the template"))
    };
    let found = match choice {
        TemplateChoice::Ref(r) if r.kind == TemplateKind::TaskTemplate => {
            get_ns(r.name.clone()).await?.map(|b| (TemplateKind::TaskTemplate, b))
        }
        TemplateChoice::Ref(r) => get_cluster(r.name.clone()).await?.map(|b| (TemplateKind::ClusterTaskTemplate, b)),
        // A bare name is the admins' catalogue, as in a Task's templateRef: a namespace's own
        // template of the same name must not take the place of the one a CI job means.
        TemplateChoice::Name(n) => get_cluster(n.clone()).await?.map(|b| (TemplateKind::ClusterTaskTemplate, b)),
    };
    let Some((kind, body)) = found else {
        let what = match choice {
            TemplateChoice::Ref(r) => format!("no {} named {name:?}", r.kind.as_str()),
            TemplateChoice::Name(_) => {
                format!("no ClusterTaskTemplate named {name:?} (a TaskTemplate is named with its kind)")
            }
        };
        return Err(field(format!("{what} for namespace {ns:?} (GET /api/v1/templates lists them)")));
    };
    trial(kind, &name, &body, given).map_err(|e| match e {
        RenderError::InvalidTemplate(problems) => {
            field(format!("{} {name:?} is invalid: {}", kind.as_str(), problems.join("; ")))
        }
        RenderError::InvalidParams(problems) => ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldError { field: format!("params.{}", p.param), message: p.message })
                .collect(),
        ),
    })?;
    Ok(TemplateRef { kind, name })
}

/// Renders the template as the operator will, with `given` as the params: what a value makes of
/// the image, the program or a credential name is refused here, not in a failed Task.
fn trial(
    kind: TemplateKind,
    name: &str,
    body: &TemplateBody,
    given: &std::collections::BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let spec = TaskSpec { params: given.clone(), ..Default::default() };
    render(kind, name, "", 0, body, &spec).map(drop)
}
