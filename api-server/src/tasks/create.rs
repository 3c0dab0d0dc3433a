//! `POST /api/v1/namespaces/{namespace}/tasks`: validate, attribute, create. With an
//! `Idempotency-Key` the Task's name is derived from the caller and the key, so concurrent retries
//! race on one name and the cluster lets exactly one create win; the others get that Task back.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ephemera_crds::{Origin, RetryPolicy, Task, TaskEnv, TaskSpec, TemplateRef};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use super::model::{CreateTask, TaskView};
use crate::auth::{Identity, Verb};
use crate::error::{ApiError, BodyProblems, Problem, Refusals};
use crate::extract::{plausible_name, ApiJson};
use crate::{templates, AppState};

const KEY_ANNOTATION: &str = "ephemera.dev/idempotency-key";
const REQUEST_ANNOTATION: &str = "ephemera.dev/request-hash";

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be printable ASCII".into()))?.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(ApiError::BadRequest("Idempotency-Key must be 1 to 255 printable ASCII characters".into()));
    }
    Ok(Some(key.to_string()))
}

/// The Task the request describes, made from `template` if it names one, attributed to `who`
/// (unnamed: the caller names it).
pub fn task(ns: &str, req: &CreateTask, template: Option<TemplateRef>, who: &Identity) -> Task {
    let mut retry = RetryPolicy::default();
    if let Some(r) = &req.retry {
        retry.max_attempts = r.max_attempts.unwrap_or(retry.max_attempts);
        retry.backoff_seconds = r.backoff_seconds.unwrap_or(retry.backoff_seconds);
        if let Some(on) = &r.retry_on {
            retry.retry_on = on.clone();
        }
    }
    let spec = TaskSpec {
        image: req.image.clone(),
        command: req.command.clone(),
        template_ref: template,
        args: req.args.clone(),
        env: req.env.iter().map(|(k, v)| TaskEnv { name: k.clone(), value: v.clone() }).collect(),
        params: req.params.clone(),
        credentials: req.credentials.clone(),
        queue: req.queue.clone().unwrap_or_else(|| "default".into()),
        priority: req.priority.unwrap_or(0),
        timeout_seconds: req.timeout_seconds.unwrap_or(3600),
        retry,
        ttl_seconds_after_finished: req.ttl_seconds_after_finished,
        cancel: false,
        resources: None,
        origin: Some(Box::new(Origin { source: "api".into(), requester: who.id.clone(), ..Default::default() })),
    };
    let mut t = Task::new("", spec);
    t.metadata.name = None;
    t.metadata.namespace = Some(ns.to_string());
    t.metadata.labels = (!req.labels.is_empty()).then(|| req.labels.clone());
    t.metadata.finalizers = Some(vec![ephemera_crds::CLEANUP_FINALIZER.into()]);
    t
}

/// Creates a Task.
#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{namespace}/tasks",
    tag = "tasks",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the same Task (1-255 printable ASCII characters)", pattern = "^[!-~]([ -~]{0,253}[!-~])?$"),
    ),
    request_body(content = CreateTask, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = TaskView),
        (status = 200, description = "An earlier request with this Idempotency-Key created it", body = TaskView),
        (status = 404, description = "No such namespace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A Task of that name exists", body = Problem, content_type = "application/problem+json"),
        BodyProblems,
        Refusals,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(ns): Path<String>,
    who: Identity,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<Response, ApiError> {
    if !plausible_name(&ns) {
        return Err(ApiError::NotFound(format!("namespace {ns:?} not found")));
    }
    who.require(&ns, Verb::Create)?;
    req.validate().map_err(ApiError::Validation)?;
    let key = idempotency_key(&headers)?;
    let template = match &req.template {
        Some(choice) => Some(templates::resolve(&state, &ns, choice, &req.params).await?),
        None => None,
    };
    let mut t = task(&ns, &req, template, &who);
    let request_hash = sha256_hex(&[&serde_json::to_vec(&req).map_err(|_| ApiError::Internal)?]);
    let key_hash = key.as_ref().map(|k| sha256_hex(&[who.id.as_bytes(), ns.as_bytes(), k.as_bytes()]));
    match (&req.name, &key_hash) {
        (Some(n), _) => t.metadata.name = Some(n.clone()),
        (None, Some(h)) => t.metadata.name = Some(format!("t-{}", &h[..20])),
        (None, None) => t.metadata.generate_name = Some("task-".into()),
    }
    if let Some(h) = &key_hash {
        t.metadata.annotations = Some(
            [(KEY_ANNOTATION.to_string(), h.clone()), (REQUEST_ANNOTATION.to_string(), request_hash.clone())].into(),
        );
    }
    let api: Api<Task> = Api::namespaced(state.client.clone(), &ns);
    match api.create(&PostParams::default(), &t).await {
        Ok(created) => {
            state.metrics.tasks_created.inc();
            tracing::info!(namespace = %ns, task = ?created.metadata.name, requester = %who.id, "task created");
            let mut resp = (StatusCode::CREATED, Json(TaskView::from(&created))).into_response();
            let location =
                format!("/api/v1/namespaces/{ns}/tasks/{}", created.metadata.name.clone().unwrap_or_default());
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert("location", v);
            }
            Ok(resp)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let name = t.metadata.name.clone().unwrap_or_default();
            let existing = api.get(&name).await.map_err(|e| ApiError::from_kube(e, "the Task"))?;
            let ann = existing.metadata.annotations.clone().unwrap_or_default();
            match key_hash {
                Some(h) if ann.get(KEY_ANNOTATION) == Some(&h) => {
                    if ann.get(REQUEST_ANNOTATION) != Some(&request_hash) {
                        return Err(ApiError::IdempotencyMismatch);
                    }
                    let mut resp = (StatusCode::OK, Json(TaskView::from(&existing))).into_response();
                    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                    Ok(resp)
                }
                _ => Err(ApiError::Conflict {
                    kind: "task-exists",
                    detail: format!("a Task named {name:?} already exists in {ns:?}"),
                }),
            }
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Err(ApiError::NotFound(format!("namespace {ns:?} not found"))),
        Err(e) => Err(ApiError::from_kube(e, "the Task")),
    }
}
