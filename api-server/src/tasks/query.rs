//! Reading Tasks: list with filters and a keyset cursor (newest first, stable while Tasks are being
//! created), get one, get its result.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ephemera_crds::{Task, TaskPhase};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::model::{TaskList, TaskResult, TaskView};
use crate::auth::{Identity, Verb};
use crate::error::{ApiError, Problem, Refusals};
use crate::extract::{plausible_name, ApiQuery};
use crate::AppState;

/// Filters and paging of a Task list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this phase (empty: any).
    #[param(pattern = "^(Pending|Scheduled|Running|Succeeded|Failed|Cancelled|TimedOut)?$")]
    pub phase: Option<String>,
    /// Only this queue (empty: any).
    #[param(pattern = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$", max_length = 63)]
    pub queue: Option<String>,
    /// Kubernetes label selector, e.g. `app=web,tier!=db` (empty: all).
    pub label_selector: Option<String>,
    /// Only Tasks created at or after this time (RFC 3339; empty: any).
    #[param(format = DateTime)]
    pub created_since: Option<String>,
    /// Page size (1-500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page (opaque).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    c: String,
    n: String,
}

fn key(t: &Task) -> (String, String) {
    (t.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()).unwrap_or_default(), t.name_any())
}

pub(crate) fn namespace_path(ns: &str) -> Result<(), ApiError> {
    if plausible_name(ns) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("namespace {ns:?} not found")))
    }
}

/// Loads a Task the caller may `verb`.
pub(crate) async fn load(
    state: &AppState,
    who: &Identity,
    ns: &str,
    name: &str,
    verb: Verb,
) -> Result<(Api<Task>, Task), ApiError> {
    namespace_path(ns)?;
    who.require(ns, verb)?;
    if !plausible_name(name) {
        return Err(ApiError::NotFound(format!("Task {name:?} not found")));
    }
    let api: Api<Task> = Api::namespaced(state.client.clone(), ns);
    let t = api.get(name).await.map_err(|e| ApiError::from_kube(e, &format!("Task {name:?}")))?;
    Ok((api, t))
}

/// Lists Tasks.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/tasks",
    tag = "tasks",
    params(("namespace" = String, Path, description = "Namespace"), ListQuery),
    responses(
        (status = 200, description = "A page, newest first", body = TaskList),
        (status = 400, description = "Bad filter or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(ns): Path<String>,
    who: Identity,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<TaskList>, ApiError> {
    namespace_path(&ns)?;
    who.require(&ns, Verb::Read)?;
    // An empty parameter means "not given" (as forms and many clients send them).
    let q = ListQuery {
        phase: q.phase.filter(|v| !v.is_empty()),
        queue: q.queue.filter(|v| !v.is_empty()),
        label_selector: q.label_selector.filter(|v| !v.is_empty()),
        created_since: q.created_since,
        limit: q.limit,
        cursor: q.cursor.filter(|v| !v.is_empty()),
    };
    if q.queue.as_ref().is_some_and(|qu| qu.len() > 63 || !crate::extract::plausible_name(qu) || qu.contains('.')) {
        return Err(ApiError::BadRequest("queue must be a queue name (DNS label)".into()));
    }
    let phase = match q.phase.as_deref() {
        Some(p) => Some(TaskPhase::parse(p).ok_or_else(|| {
            let names: Vec<&str> = TaskPhase::ALL.iter().map(|p| p.as_str()).collect();
            ApiError::BadRequest(format!("phase must be one of {}", names.join(", ")))
        })?),
        None => None,
    };
    let since = match &q.created_since {
        Some(s) => Some(
            s.parse::<jiff::Timestamp>()
                .map_err(|_| ApiError::BadRequest("createdSince must be an RFC 3339 time".into()))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 500".into()));
    }
    let after = match &q.cursor {
        Some(c) => {
            let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| ApiError::BadRequest("invalid cursor".into()))?;
            let cur: Cursor =
                serde_json::from_slice(&bytes).map_err(|_| ApiError::BadRequest("invalid cursor".into()))?;
            Some((cur.c, cur.n))
        }
        None => None,
    };
    let api: Api<Task> = Api::namespaced(state.client.clone(), &ns);
    let mut lp = ListParams::default();
    if let Some(sel) = q.label_selector.as_deref().filter(|s| !s.is_empty()) {
        lp = lp.labels(sel);
    }
    let all = api.list(&lp).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 400 => ApiError::BadRequest(format!("invalid labelSelector: {}", s.message)),
        other => ApiError::from_kube(other, "Tasks"),
    })?;
    let mut items: Vec<Task> = all
        .items
        .into_iter()
        .filter(|t| phase.is_none_or(|p| t.status.as_ref().map(|s| s.phase).unwrap_or_default() == p))
        .filter(|t| q.queue.as_ref().is_none_or(|qu| t.queue() == qu))
        .filter(|t| since.is_none_or(|s| t.metadata.creation_timestamp.as_ref().is_some_and(|c| c.0 >= s)))
        .collect();
    // Newest first; Tasks created while paging sort before the cursor and never shift later pages.
    items.sort_by_key(|t| std::cmp::Reverse(key(t)));
    if let Some(after) = &after {
        items.retain(|t| key(t) < *after);
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => {
            let (c, n) = key(last);
            Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Cursor { c, n }).map_err(|_| ApiError::Internal)?))
        }
        _ => None,
    };
    Ok(Json(TaskList { items: items.iter().map(TaskView::from).collect(), next_cursor }))
}

/// Gets one Task.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}",
    tag = "tasks",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Task name")),
    responses(
        (status = 200, description = "The Task", body = TaskView),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<Json<TaskView>, ApiError> {
    let (_, t) = load(&state, &who, &ns, &name, Verb::Read).await?;
    Ok(Json(TaskView::from(&t)))
}

/// The outcome of a finished Task.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/tasks/{name}/result",
    tag = "tasks",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Task name")),
    responses(
        (status = 200, description = "Exit code and bounded result", body = TaskResult),
        (status = 404, description = "No such Task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not finished yet", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn result(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<Json<TaskResult>, ApiError> {
    let (_, t) = load(&state, &who, &ns, &name, Verb::Read).await?;
    let st = t.status.clone().unwrap_or_default();
    if !st.phase.is_terminal() {
        return Err(ApiError::Conflict {
            kind: "task-not-finished",
            detail: format!("Task {name:?} is {:?}; its result is not known yet", st.phase),
        });
    }
    Ok(Json(TaskResult {
        name,
        phase: st.phase.as_str().into(),
        reason: st.reason,
        exit_code: st.exit_code,
        result: st.result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_phase_pattern_lists_exactly_the_phases() {
        let params = ListQuery::into_params(|| None);
        let phase = params.iter().find(|p| p.name == "phase").expect("a phase parameter");
        let schema = serde_json::to_value(&phase.schema).expect("a schema");
        let names: Vec<&str> = TaskPhase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(schema["pattern"], serde_json::json!(format!("^({})?$", names.join("|"))));
    }
}
