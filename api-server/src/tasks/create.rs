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
    let mut t = Task::new_in("", ns, spec);
    t.metadata.name = None;
    t.metadata.labels = (!req.labels.is_empty()).then(|| req.labels.clone());
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
        (status = 409, description = "A Task of that name exists (or every name the cluster generated was taken: name-generation)", body = Problem, content_type = "application/problem+json"),
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
    match create_task(&api, &t).await {
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
            let Some(name) = t.metadata.name.clone() else {
                return Err(ApiError::Conflict {
                    kind: "name-generation",
                    detail: format!("every name the cluster generated in {ns:?} was taken; retry, or name the Task"),
                });
            };
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

/// Generated names tried before a create gives up: the cluster picks 5 random characters, and one
/// it picks may be taken (clusters before Kubernetes 1.32 do not try again themselves), more likely
/// the more generated Tasks a namespace holds.
const GENERATED_NAME_TRIES: usize = 5;

/// Creates `t`; when the cluster generates its name and the one it generated was taken, asks again.
async fn create_task(api: &Api<Task>, t: &Task) -> Result<Task, kube::Error> {
    let mut tries = 1;
    loop {
        match api.create(&PostParams::default(), t).await {
            Err(kube::Error::Api(e)) if e.code == 409 && t.metadata.name.is_none() && tries < GENERATED_NAME_TRIES => {
                tracing::debug!(tries, "a generated Task name was taken; generating another");
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cluster that answers the first `taken` creates with AlreadyExists, then creates.
    fn cluster(taken: usize, calls: Arc<AtomicUsize>) -> kube::Client {
        let svc = tower::service_fn(move |req: axum::http::Request<kube::client::Body>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(req.method(), axum::http::Method::POST);
                let (code, body) = if n < taken {
                    (
                        409,
                        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "tasks.ephemera.dev \"task-abcde\" already exists", "reason": "AlreadyExists", "code": 409}),
                    )
                } else {
                    (
                        201,
                        serde_json::json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
                        "metadata": {"name": format!("task-{n}"), "namespace": "ns"}, "spec": {"command": ["true"]}}),
                    )
                };
                axum::http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap_or_default()))
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        });
        kube::Client::new(svc, "ns")
    }

    fn unnamed() -> Task {
        let mut t = Task::new("", serde_json::from_value(serde_json::json!({"command": ["true"]})).unwrap_or_default());
        t.metadata.name = None;
        t.metadata.generate_name = Some("task-".into());
        t
    }

    #[tokio::test]
    async fn a_generated_name_that_was_taken_is_generated_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let api: Api<Task> = Api::namespaced(cluster(2, calls.clone()), "ns");
        let created = create_task(&api, &unnamed()).await.map(|t| t.metadata.name);
        assert_eq!(created.ok().flatten().as_deref(), Some("task-2"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_taken_name_the_caller_chose_is_not_tried_again_and_generation_gives_up() {
        let calls = Arc::new(AtomicUsize::new(0));
        let api: Api<Task> = Api::namespaced(cluster(usize::MAX, calls.clone()), "ns");
        let mut named = unnamed();
        named.metadata.name = Some("mine".into());
        assert!(matches!(create_task(&api, &named).await, Err(kube::Error::Api(e)) if e.code == 409));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a chosen name is the caller's: one try");
        assert!(matches!(create_task(&api, &unnamed()).await, Err(kube::Error::Api(e)) if e.code == 409));
        assert_eq!(calls.load(Ordering::SeqCst), 1 + GENERATED_NAME_TRIES);
    }
}
