//! `GET /api/v1/namespaces/{namespace}/triggers`: the namespace's TaskTriggers with their delivery
//! log (what `kubectl get etrig -o yaml` shows in `status`), for the CLI and the dashboard. Read from
//! the API, not the endpoint's cache, so a just-written log is seen by the next call.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ephemera_crds::trigger::{DeliveryRecord, TaskTrigger};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Identity, Verb};
use crate::error::{ApiError, Problem, Refusals};
use crate::tasks::query::namespace_path;
use crate::AppState;

/// One delivery as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The provider's delivery id.
    pub id: String,
    /// The provider's event name.
    pub event: String,
    /// When it arrived (RFC 3339).
    pub time: String,
    /// `Created`, `Redelivered`, `Ignored`, `Refused`, `RateLimited` or `Failed`.
    pub outcome: String,
    /// The rule that matched.
    pub rule: String,
    /// The Task it made (or had made).
    pub task: String,
    /// Why it was ignored, refused or failed.
    pub reason: String,
}

impl From<&DeliveryRecord> for DeliveryView {
    fn from(d: &DeliveryRecord) -> Self {
        DeliveryView {
            id: d.id.clone(),
            event: d.event.clone(),
            time: d.time.clone(),
            outcome: d.outcome.clone(),
            rule: d.rule.clone(),
            task: d.task.clone(),
            reason: d.reason.clone(),
        }
    }
}

/// A trigger as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Who sends its deliveries (`github`, `gitlab`, `bitbucket`, `azure-devops`, ...).
    pub source: String,
    /// Where the provider sends them (path under the edge).
    pub path: String,
    /// Whether its rules compile and its secret is there; `message` says why not.
    pub ready: bool,
    /// Why it is not ready.
    pub message: String,
    /// Its rules, by name, in order.
    pub rules: Vec<String>,
    /// The last deliveries, newest first.
    pub deliveries: Vec<DeliveryView>,
    /// The newest refused delivery (not authenticated or malformed) and why.
    pub last_refused: Option<DeliveryView>,
    /// Deliveries by outcome since the trigger was created.
    pub counters: BTreeMap<String, i64>,
}

impl From<&TaskTrigger> for TriggerView {
    fn from(t: &TaskTrigger) -> Self {
        let st = t.status.clone().unwrap_or_default();
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
        let (ns, name) = (t.namespace().unwrap_or_default(), t.name_any());
        TriggerView {
            path: format!("/webhooks/{ns}/{name}"),
            name,
            namespace: ns,
            source: t.spec.source.as_str().to_string(),
            ready: ready.is_some_and(|c| c.status == "True"),
            message: ready.map(|c| c.message.clone()).unwrap_or_default(),
            rules: t.spec.rules.iter().map(|r| r.name.clone()).collect(),
            deliveries: st.deliveries.iter().map(DeliveryView::from).collect(),
            last_refused: st.last_refused.as_ref().map(DeliveryView::from),
            counters: st.counters,
        }
    }
}

/// Lists the namespace's triggers with their recent deliveries.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/triggers",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Namespace")),
    responses(
        (status = 200, description = "The triggers, by name", body = [TriggerView]),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(ns): Path<String>,
    who: Identity,
) -> Result<Json<Vec<TriggerView>>, ApiError> {
    namespace_path(&ns)?;
    who.require(&ns, Verb::Read)?;
    let api: Api<TaskTrigger> = Api::namespaced(state.client.clone(), &ns);
    let items = api.list(&ListParams::default()).await.map_err(|e| ApiError::from_kube(e, "triggers"))?.items;
    let mut out: Vec<TriggerView> = items.iter().map(TriggerView::from).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}
