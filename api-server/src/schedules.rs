//! TaskSchedules over REST, under `/api/v1/namespaces/{namespace}/schedules`: create (the Task to
//! make is the same body as a Task create, inline or by template), list, get, suspend and resume
//! ("stop recurring" is suspend, or delete), delete. Each is a `TaskSchedule` the operator runs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ephemera_crds::schedule::{ConcurrencyPolicy, ScheduledTask, TaskSchedule, TaskScheduleSpec};
use ephemera_crds::TaskPhase;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Identity, Verb};
use crate::error::{ApiError, BodyProblems, FieldError, Problem, Refusals};
use crate::extract::{plausible_name, ApiJson};
use crate::tasks::model::CreateTask;
use crate::tasks::query::namespace_path;
use crate::{templates, AppState};

/// Longest schedule name (its Tasks are named `<name>-<unix time>`).
const NAME_MAX: usize = 42;

/// A schedule to create.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSchedule {
    /// Name (a DNS label of at most 42 characters).
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 42)]
    pub name: String,
    /// Cron (five fields, as CronJob), `@hourly`-style descriptors, or `@every <duration>`; or give
    /// `runAt`.
    #[schema(max_length = 256)]
    pub schedule: Option<String>,
    /// IANA time zone of the cron expression (default UTC).
    #[schema(max_length = 64)]
    pub time_zone: Option<String>,
    /// One run at this RFC 3339 time (a delayed one-off Task).
    #[schema(max_length = 64)]
    pub run_at: Option<String>,
    /// The Task each run makes (as for `POST .../tasks`, without a name).
    pub task: CreateTask,
    /// `Allow` (default), `Forbid` or `Replace`.
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Runs missed by more than this are skipped.
    #[schema(minimum = 0, maximum = 604800)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i64")]
    pub starting_deadline_seconds: Option<i64>,
    /// Created suspended.
    #[serde(default)]
    pub suspend: bool,
    /// Succeeded Tasks kept (default 3).
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i32")]
    pub successful_tasks_history_limit: Option<i32>,
    /// Failed Tasks kept (default 1).
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "ephemera_crds::json_int::opt_i32")]
    pub failed_tasks_history_limit: Option<i32>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The cron expression or `@every`.
    pub schedule: Option<String>,
    /// Its time zone.
    pub time_zone: Option<String>,
    /// The one-off time.
    pub run_at: Option<String>,
    /// Suspended.
    pub suspend: bool,
    /// `Allow`, `Forbid` or `Replace`.
    pub concurrency_policy: ConcurrencyPolicy,
    /// The template its Tasks are made from (`KIND/NAME`).
    pub template: Option<String>,
    /// Whether the schedule is valid; `message` says why not.
    pub ready: bool,
    /// Why it is not ready.
    pub message: String,
    /// The newest run made or skipped.
    pub last_schedule_time: Option<String>,
    /// The next run.
    pub next_schedule_time: Option<String>,
    /// Its Tasks that have not finished.
    pub active: Vec<String>,
    /// The newest finished Task and its phase.
    pub last_task: Option<String>,
    /// That Task's phase.
    pub last_phase: Option<String>,
    /// Runs skipped (missed or forbidden) so far.
    pub skipped: i64,
    /// Created (RFC 3339).
    pub created_at: String,
}

impl From<&TaskSchedule> for ScheduleView {
    fn from(s: &TaskSchedule) -> Self {
        let st = s.status.clone().unwrap_or_default();
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
        let r = &s.spec.task.spec.template_ref;
        ScheduleView {
            name: s.name_any(),
            namespace: s.namespace().unwrap_or_default(),
            schedule: s.spec.schedule.clone(),
            time_zone: s.spec.time_zone.clone(),
            run_at: s.spec.run_at.clone(),
            suspend: s.spec.suspend,
            concurrency_policy: s.spec.concurrency_policy,
            template: r.as_ref().map(|r| format!("{}/{}", r.kind.as_str(), r.name)),
            ready: ready.is_some_and(|c| c.status == "True"),
            message: ready.map(|c| c.message.clone()).unwrap_or_default(),
            last_schedule_time: st.last_schedule_time,
            next_schedule_time: st.next_schedule_time,
            active: st.active,
            last_task: st.last_outcome.as_ref().map(|o| o.task.clone()),
            last_phase: st.last_outcome.as_ref().map(|o| TaskPhase::as_str(o.phase).to_string()),
            skipped: st.skipped,
            created_at: s.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()).unwrap_or_default(),
        }
    }
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

impl CreateSchedule {
    /// What the CRD and the schedule parser would refuse, with field paths.
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let n = &self.name;
        if !ephemera_crds::task::limits::dns_label(n) || n.len() > NAME_MAX {
            errors.push(field("name", format!("must be a DNS label of at most {NAME_MAX} characters")));
        }
        if self.task.name.is_some() {
            errors.push(field("task.name", "a scheduled Task is named by its run (<schedule>-<unix time>)"));
        }
        if self.time_zone.is_some() && self.schedule.is_none() {
            errors.push(field("timeZone", "applies to schedule (runAt carries its own offset)"));
        }
        let mut range = |f: &str, v: Option<i64>, max: i64| {
            if v.is_some_and(|v| !(0..=max).contains(&v)) {
                errors.push(field(f, format!("must be between 0 and {max}")));
            }
        };
        range("startingDeadlineSeconds", self.starting_deadline_seconds, 604_800);
        range("successfulTasksHistoryLimit", self.successful_tasks_history_limit.map(i64::from), 100);
        range("failedTasksHistoryLimit", self.failed_tasks_history_limit.map(i64::from), 100);
        if let Err(task) = self.task.validate() {
            errors.extend(task.into_iter().map(|e| field(&format!("task.{}", e.field), e.message)));
        }
        errors
    }
}

/// Creates a schedule.
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/schedules",
    tag = "schedules",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body(content = CreateSchedule, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ScheduleView),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A schedule of that name exists", body = Problem, content_type = "application/problem+json"),
        BodyProblems,
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(ns): Path<String>,
    who: Identity,
    ApiJson(req): ApiJson<CreateSchedule>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    namespace_path(&ns)?;
    who.require(&ns, Verb::Create)?;
    let mut errors = req.validate();
    let mut spec = TaskScheduleSpec {
        schedule: req.schedule.clone(),
        time_zone: req.time_zone.clone(),
        run_at: req.run_at.clone(),
        task: ScheduledTask { labels: req.task.labels.clone(), spec: Default::default() },
        concurrency_policy: req.concurrency_policy.unwrap_or_default(),
        starting_deadline_seconds: req.starting_deadline_seconds,
        suspend: req.suspend,
        successful_tasks_history_limit: req.successful_tasks_history_limit.unwrap_or(3),
        failed_tasks_history_limit: req.failed_tasks_history_limit.unwrap_or(1),
    };
    if let Err(e) = ephemera_schedules::When::of(&spec, jiff::Timestamp::now()) {
        let f = if req.run_at.is_some() && req.schedule.is_none() { "runAt" } else { "schedule" };
        errors.push(field(f, e.to_string()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let template = match &req.task.template {
        Some(choice) => Some(templates::resolve(&state, &ns, choice, &req.task.params).await.map_err(|e| match e {
            ApiError::Validation(v) => {
                ApiError::Validation(v.into_iter().map(|e| field(&format!("task.{}", e.field), e.message)).collect())
            }
            other => other,
        })?),
        None => None,
    };
    let mut task_spec = crate::tasks::create::task(&ns, &req.task, template, &who).spec;
    // The operator records the schedule as each run's origin.
    task_spec.origin = None;
    spec.task.spec = task_spec;
    let mut schedule = TaskSchedule::new(&req.name, spec);
    schedule.metadata.namespace = Some(ns.clone());
    let api: Api<TaskSchedule> = Api::namespaced(state.client.clone(), &ns);
    match api.create(&PostParams::default(), &schedule).await {
        Ok(created) => {
            tracing::info!(namespace = %ns, schedule = %req.name, requester = %who.id, "schedule created");
            Ok((StatusCode::CREATED, Json(ScheduleView::from(&created))))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Err(ApiError::Conflict {
            kind: "schedule-exists",
            detail: format!("a schedule named {:?} already exists in {ns:?}", req.name),
        }),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(ApiError::NotFound(format!("namespace {ns:?} not found"))),
        Err(e) => Err(ApiError::from_kube(e, "the schedule")),
    }
}

/// Lists the namespace's schedules.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/schedules",
    tag = "schedules",
    params(("namespace" = String, Path, description = "Namespace")),
    responses(
        (status = 200, description = "The schedules, by name", body = [ScheduleView]),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(ns): Path<String>,
    who: Identity,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    namespace_path(&ns)?;
    who.require(&ns, Verb::Read)?;
    let api: Api<TaskSchedule> = Api::namespaced(state.client.clone(), &ns);
    let items = api.list(&ListParams::default()).await.map_err(|e| ApiError::from_kube(e, "schedules"))?.items;
    let mut out: Vec<ScheduleView> = items.iter().map(ScheduleView::from).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

async fn load(
    state: &AppState,
    who: &Identity,
    ns: &str,
    name: &str,
    verb: Verb,
) -> Result<Api<TaskSchedule>, ApiError> {
    namespace_path(ns)?;
    who.require(ns, verb)?;
    if !plausible_name(name) {
        return Err(ApiError::NotFound(format!("schedule {name:?} not found")));
    }
    Ok(Api::namespaced(state.client.clone(), ns))
}

/// One schedule.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/schedules/{name}",
    tag = "schedules",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<Json<ScheduleView>, ApiError> {
    let api = load(&state, &who, &ns, &name, Verb::Read).await?;
    let s = api.get(&name).await.map_err(|e| ApiError::from_kube(e, &format!("schedule {name:?}")))?;
    Ok(Json(ScheduleView::from(&s)))
}

async fn set_suspend(
    state: &AppState,
    who: &Identity,
    ns: &str,
    name: &str,
    suspend: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    // Suspending stops future runs (as cancel stops a Task); resuming makes Tasks again.
    let verb = if suspend { Verb::Cancel } else { Verb::Create };
    let api = load(state, who, ns, name, verb).await?;
    let patch = serde_json::json!({"spec": {"suspend": suspend}});
    let s = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ApiError::from_kube(e, &format!("schedule {name:?}")))?;
    tracing::info!(namespace = %ns, schedule = %name, suspend, requester = %who.id, "schedule suspend changed");
    Ok(Json(ScheduleView::from(&s)))
}

/// Suspends a schedule: no runs until resumed (runs falling meanwhile are missed).
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/schedules/{name}/suspend",
    tag = "schedules",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "Suspended", body = ScheduleView),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn suspend(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<Json<ScheduleView>, ApiError> {
    set_suspend(&state, &who, &ns, &name, true).await
}

/// Resumes a suspended schedule.
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/schedules/{name}/resume",
    tag = "schedules",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "Resumed", body = ScheduleView),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn resume(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<Json<ScheduleView>, ApiError> {
    set_suspend(&state, &who, &ns, &name, false).await
}

/// Deletes a schedule and, with it, its Tasks (running ones are stopped and cleaned up first).
#[utoipa::path(
    delete,
    path = "/api/v1/namespaces/{namespace}/schedules/{name}",
    tag = "schedules",
    params(("namespace" = String, Path, description = "Namespace"), ("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 202, description = "Deletion started"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    who: Identity,
) -> Result<StatusCode, ApiError> {
    let api = load(&state, &who, &ns, &name, Verb::Delete).await?;
    api.delete(&name, &DeleteParams::background())
        .await
        .map_err(|e| ApiError::from_kube(e, &format!("schedule {name:?}")))?;
    tracing::info!(namespace = %ns, schedule = %name, requester = %who.id, "schedule deleted");
    Ok(StatusCode::ACCEPTED)
}
