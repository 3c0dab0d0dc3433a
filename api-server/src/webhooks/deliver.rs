//! `POST /webhooks/{namespace}/{trigger}`: authenticate the delivery, apply the trigger's rate limit
//! (to authenticated deliveries only, so forged ones cannot use up its budget),
//! evaluate its rules, create the Task (once per delivery id, whichever replica receives it), cancel
//! the previous Task of the same concurrency key, answer within milliseconds, and log the delivery.
//! Answers never say anything about the secret or about other triggers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ephemera_crds::trigger::{DeliveryRecord, TaskTrigger, TriggerSource};
use ephemera_crds::Task;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::log::{DeliveryOutcome, Entry};
use super::rules::Outcome;
use super::task::{self, Made};
use super::triggers::exposed;
use super::verify::{self, azure, Delivery, Refusal, Verified};
use crate::error::{ApiError, Refusals};
use crate::AppState;

/// Largest delivery accepted from GitHub (its own cap on webhook payloads is 25 MB).
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;
/// Largest delivery accepted from the other JSON sources.
const JSON_LIMIT: usize = 5 * 1024 * 1024;
/// Largest Salesforce Outbound Message (at most 100 notifications).
const SOAP_LIMIT: usize = 1024 * 1024;

/// The body limit of a source.
fn body_limit(source: TriggerSource) -> usize {
    match source {
        TriggerSource::Github => BODY_LIMIT,
        TriggerSource::Salesforce => SOAP_LIMIT,
        _ => JSON_LIMIT,
    }
}
/// Longest delivery id kept.
const DELIVERY_ID_MAX: usize = 256;

/// A delivery's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The Task it made (or, for a redelivery, had made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// The provider's delivery id.
    pub delivery: String,
    /// Where to follow the Task (the REST API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Set when this delivery was seen before (nothing new was created).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
    /// Why nothing was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// Receives a webhook delivery.
#[utoipa::path(
    post,
    path = "/webhooks/{namespace}/{trigger}",
    tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "The trigger's namespace"),
        ("trigger" = String, Path, description = "The TaskTrigger"),
    ),
    request_body(content = String, description = "The provider's payload, as the provider sends it", content_type = "application/json"),
    responses(
        (status = 202, description = "A Task was created", body = Answer),
        (status = 200, description = "Redelivered (the same Task), or ignored (no rule matched)", body = Answer),
        (status = 400, description = "Malformed delivery", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such trigger", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not the content type the source sends", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A rule could not be evaluated on this delivery", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals,
    ),
)]
pub async fn deliver(
    State(state): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let no_trigger = || ApiError::NotFound("no such trigger".into());
    if !crate::extract::plausible_name(&ns) || !crate::extract::plausible_name(&name) {
        return Err(no_trigger());
    }
    // The trigger and the content type are checked before a byte of the body is read, and each
    // source has its own size limit (the body is buffered: signatures are over all of it).
    let trigger = state.webhooks.triggers.get(&ns, &name).ok_or_else(no_trigger)?;
    let log = Logger { state: &state, ns: &ns, name: &name };
    let json_body = content_type_ok(trigger.spec.source, &headers)?;
    let limit = body_limit(trigger.spec.source);
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::TooLarge(limit))?;
    let secrets = match state.webhooks.triggers.secrets(&trigger).await {
        Ok(s) => s,
        Err(e) => {
            log.record(DeliveryOutcome::Failed, None, "", "", e.to_string());
            return Err(ApiError::Unavailable);
        }
    };
    if trigger.spec.source == TriggerSource::Salesforce {
        // Salesforce signs nothing and org ids are not secret: the endpoint URL carries the
        // trigger's secret (`?token=...`), checked before the XML is parsed.
        let token = query.as_deref().and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()?.into_iter().find(|(k, _)| k == "token")
        });
        let genuine = token.is_some_and(|(_, t)| exposed(&secrets).iter().any(|s| verify::same(t.as_bytes(), s)));
        if !genuine {
            log.record(DeliveryOutcome::Refused, None, "", "", "missing or wrong token".into());
            return Err(ApiError::Unauthorized("the delivery is not signed with this trigger's secret".into()));
        }
        return outbound_message(&state, &trigger, &log, &body).await;
    }
    let d = Delivery { headers: &headers, body: &body, now: jiff::Timestamp::now().as_second() };
    let verified = match authenticate(&trigger, &d, &exposed(&secrets)) {
        Ok(v) if v.delivery.len() <= DELIVERY_ID_MAX && !v.delivery.is_empty() => v,
        Ok(_) => {
            log.record(DeliveryOutcome::Refused, None, "", "", "the delivery id is missing or too long".into());
            return Err(ApiError::BadRequest("the delivery id is missing or too long".into()));
        }
        Err(r) => {
            log.record(DeliveryOutcome::Refused, None, "", "", r.to_string());
            return Err(refused(&r));
        }
    };
    // Counted after authentication: forged deliveries cannot use up a trigger's budget.
    if let Some(limiter) = state.webhooks.triggers.limiter(&trigger) {
        if let Err(e) = limiter.check("") {
            log.record(DeliveryOutcome::RateLimited, Some(&verified), "", "", "past the trigger's rate limit".into());
            return Err(e);
        }
    }
    let payload = match parse(&body, json_body) {
        Ok(p) => p,
        Err(why) => {
            log.record(DeliveryOutcome::Refused, Some(&verified), "", "", why.into());
            return Err(ApiError::BadRequest(why.into()));
        }
    };
    let azure_header = trigger.spec.azure.as_ref().and_then(|a| a.header.as_ref()).map(|h| h.to_ascii_lowercase());
    let visible: BTreeMap<String, String> = headers
        .iter()
        .filter(|(k, _)| !is_credential_header(k.as_str()) && azure_header.as_deref() != Some(k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let (status, answer) = make_task(&state, &trigger, &log, &verified, &payload, &visible).await?;
    Ok((status, Json(answer)).into_response())
}

/// The answer to a sender that failed to authenticate (401) or sent something malformed (400).
fn refused(r: &Refusal) -> ApiError {
    if r.is_unauthenticated() {
        ApiError::Unauthorized("the delivery is not signed with this trigger's secret".into())
    } else {
        ApiError::BadRequest(r.to_string())
    }
}

/// Records deliveries of one trigger (log and metrics).
struct Logger<'a> {
    state: &'a AppState,
    ns: &'a str,
    name: &'a str,
}

impl Logger<'_> {
    fn record(&self, outcome: DeliveryOutcome, v: Option<&Verified>, rule: &str, task: &str, reason: String) {
        self.state.metrics.observe_delivery(self.ns, self.name, outcome.as_str());
        self.state.webhooks.log.record(Entry {
            namespace: self.ns.to_string(),
            name: self.name.to_string(),
            record: DeliveryRecord {
                id: v.map(|v| v.delivery.chars().take(256).collect()).unwrap_or_default(),
                event: v.map(|v| v.event.chars().take(128).collect()).unwrap_or_default(),
                time: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                outcome: outcome.as_str().into(),
                rule: rule.into(),
                task: task.into(),
                reason: reason.chars().take(1024).collect(),
            },
        });
    }
}

/// A Salesforce Outbound Message: every notification is a delivery of its own; Salesforce gets the
/// `Ack` once each is handled (created, redelivered, ignored, or refused by a rule: redelivering
/// those would fail the same way for 24 hours), and a 503 when the cluster could not take one (it
/// redelivers; the ones already made are found again).
async fn outbound_message(
    state: &AppState,
    trigger: &TaskTrigger,
    log: &Logger<'_>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let message = match verify::salesforce::parse(body, &trigger.spec.allowed_org_ids) {
        Ok(m) => m,
        Err(r) => {
            log.record(DeliveryOutcome::Refused, None, "", "", r.to_string());
            return Err(if r == Refusal::BadSignature {
                ApiError::Unauthorized("the message is not from an org this trigger accepts".into())
            } else {
                refused(&r)
            });
        }
    };
    if let Some(limiter) = state.webhooks.triggers.limiter(trigger) {
        if let Err(e) = limiter.check("") {
            log.record(DeliveryOutcome::RateLimited, None, "", "", "past the trigger's rate limit".into());
            return Err(e);
        }
    }
    for n in message.notifications {
        let verified = Verified { event: n.object_type, delivery: n.id };
        match make_task(state, trigger, log, &verified, &n.body, &BTreeMap::new()).await {
            // Logged; redelivering them would fail the same way for 24 hours.
            Ok(_) | Err(ApiError::Validation(_) | ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], verify::salesforce::ACK).into_response())
}

/// Evaluates the rules on a verified delivery and makes its Task (once per delivery id).
async fn make_task(
    state: &AppState,
    trigger: &TaskTrigger,
    log: &Logger<'_>,
    verified: &Verified,
    payload: &serde_json::Value,
    headers: &BTreeMap<String, String>,
) -> Result<(StatusCode, Answer), ApiError> {
    let (ns, name) = (log.ns.to_string(), log.name.to_string());
    let rules = state.webhooks.triggers.rules(trigger);
    if let Err(e) = rules.as_ref() {
        log.record(DeliveryOutcome::Failed, Some(verified), &e.rule, "", e.to_string());
        return Err(ApiError::Unavailable);
    }
    let outcome = match state.webhooks.evaluate(rules, &verified.event, payload, headers).await {
        Some(o) => o,
        None => {
            let why = "the trigger's rules took too long on this delivery".to_string();
            log.record(DeliveryOutcome::Failed, Some(verified), "", "", why);
            return Err(ApiError::Unavailable);
        }
    };
    let (index, params, key) = match outcome {
        Outcome::Matched { index, params, concurrency_key } => (index, params, concurrency_key),
        Outcome::NoMatch => {
            let why = if verified.event == "ping" { "ping" } else { "no rule matched" };
            log.record(DeliveryOutcome::Ignored, Some(verified), "", "", why.into());
            let answer = Answer {
                task: None,
                namespace: ns,
                delivery: verified.delivery.clone(),
                url: None,
                redelivered: false,
                ignored: Some(why.into()),
            };
            return Ok((StatusCode::OK, answer));
        }
        Outcome::Failed { rule, reason } => {
            log.record(DeliveryOutcome::Failed, Some(verified), &rule, "", reason);
            return Err(ApiError::Validation(vec![crate::error::FieldError {
                field: format!("rules[{rule}]"),
                message: "could not be evaluated on this delivery".into(),
            }]));
        }
    };
    let rule = &trigger.spec.rules[index];
    // Task names are keyed by the replicas' shared key; without one they would be predictable,
    // and anyone allowed to create Tasks could take a delivery's name first.
    let Some(name_key) = state.progress_key.as_ref() else {
        let why = "the server has no shared key (--progress-key-file), so it takes no webhook deliveries".to_string();
        log.record(DeliveryOutcome::Failed, Some(verified), &rule.name, "", why);
        return Err(ApiError::Unavailable);
    };
    let made = Made {
        event: &verified.event,
        delivery: &verified.delivery,
        name_key: name_key.expose_secret(),
        params,
        concurrency_key: key.as_deref(),
    };
    let task = task::build(trigger, rule, made);
    let task_name = task.name_any();
    let tasks: Api<Task> = Api::namespaced(state.client.clone(), &ns);
    let answer = |redelivered: bool| Answer {
        task: Some(task_name.clone()),
        namespace: ns.clone(),
        delivery: verified.delivery.clone(),
        url: Some(format!("/api/v1/namespaces/{ns}/tasks/{task_name}")),
        redelivered,
        ignored: None,
    };
    match tasks.create(&PostParams::default(), &task).await {
        Ok(created) => {
            state.metrics.tasks_created.inc();
            if key.is_some() {
                cancel_previous(&tasks, &task, &created).await;
            }
            log.record(DeliveryOutcome::Created, Some(verified), &rule.name, &task_name, String::new());
            Ok((StatusCode::ACCEPTED, answer(false)))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Redelivered, or delivered to two replicas at once: the first create won. Only a Task
            // this trigger made for this delivery counts; anything else on the name is a conflict.
            let existing = tasks.get_opt(&task_name).await.map_err(|e| ApiError::from_kube(e, "Task"))?;
            let ours = existing.as_ref().is_some_and(|t| {
                t.labels().get(task::TRIGGER_LABEL) == Some(&task::label_value(&name))
                    && t.spec.origin.as_ref().is_some_and(|o| o.trigger == name && o.delivery == verified.delivery)
            });
            if !ours {
                let why = "the Task's name is taken".to_string();
                log.record(DeliveryOutcome::Failed, Some(verified), &rule.name, &task_name, why.clone());
                return Err(ApiError::Conflict { kind: "task-exists", detail: why });
            }
            log.record(DeliveryOutcome::Redelivered, Some(verified), &rule.name, &task_name, String::new());
            Ok((StatusCode::OK, answer(true)))
        }
        Err(e) => {
            let err = ApiError::from_kube(e, "Task");
            log.record(DeliveryOutcome::Failed, Some(verified), &rule.name, "", err.to_string());
            Err(match err {
                // The cluster refused the Task this rule makes: the trigger is misconfigured.
                ApiError::Validation(_) => ApiError::Unavailable,
                other => other,
            })
        }
    }
}

/// Checks the delivery the way its source signs it.
fn authenticate(t: &TaskTrigger, d: &Delivery<'_>, secrets: &[&[u8]]) -> Result<Verified, Refusal> {
    let window = t.spec.replay_window_seconds.unwrap_or(verify::standard::DEFAULT_WINDOW_SECONDS);
    match t.spec.source {
        TriggerSource::Github => verify::github::verify(d, secrets),
        TriggerSource::Gitlab => verify::gitlab::verify(d, secrets, window),
        TriggerSource::Bitbucket => verify::bitbucket::verify(d, secrets),
        TriggerSource::StandardWebhooks => verify::standard::verify(d, secrets, window),
        TriggerSource::AzureDevops => {
            let presented = match t.spec.azure.as_ref() {
                Some(a) => match (&a.basic_username, &a.header) {
                    (Some(u), _) => azure::Presented::Basic { username: u.clone() },
                    (None, Some(h)) => azure::Presented::Header { name: h.to_ascii_lowercase() },
                    (None, None) => return Err(Refusal::BadSignature),
                },
                None => return Err(Refusal::BadSignature),
            };
            azure::verify(d, secrets, &presented)
        }
        // Outbound Messages are parsed (and their org checked) by `outbound_message`.
        TriggerSource::Salesforce => Err(Refusal::Malformed("not an outbound message")),
    }
}

/// Whether the content type is what the source sends; `Ok(true)` for JSON, `Ok(false)` for GitHub's
/// form encoding (`payload=<json>`).
fn content_type_ok(source: TriggerSource, headers: &HeaderMap) -> Result<bool, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "text/xml" if source == TriggerSource::Salesforce => Ok(false),
        "application/json" if source != TriggerSource::Salesforce => Ok(true),
        "application/x-www-form-urlencoded" if source == TriggerSource::Github => Ok(false),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// The payload as JSON (GitHub's form encoding carries it in `payload`).
fn parse(body: &[u8], json: bool) -> Result<serde_json::Value, &'static str> {
    if json {
        return serde_json::from_slice(body).map_err(|_| "the body is not JSON");
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| "the form body is malformed")?;
    let payload = form.into_iter().find(|(k, _)| k == "payload").ok_or("the form has no payload field")?.1;
    serde_json::from_str(&payload).map_err(|_| "the payload field is not JSON")
}

/// Whether rules may see a header: the providers' own metadata only (an allowlist: the secret, and
/// whatever credentials an edge or proxy adds, never reach a rule or a Task).
fn is_credential_header(name: &str) -> bool {
    let provider = (name.starts_with("x-github-") || name.starts_with("x-gitlab-") || name.starts_with("x-hook-"))
        && name != "x-gitlab-token"
        && !name.contains("secret");
    let visible = provider
        || matches!(
            name,
            "user-agent"
                | "content-type"
                | "x-event-key"
                | "x-request-uuid"
                | "x-attempt-number"
                | "idempotency-key"
                | "webhook-id"
                | "webhook-timestamp"
        );
    !visible
}

/// Cancels the still-running Tasks of the same trigger and concurrency key, older than `created`
/// (the Task as the cluster stored it, with its creation time).
async fn cancel_previous(tasks: &Api<Task>, task: &Task, created: &Task) {
    let labels = task.labels();
    let (Some(trigger), Some(key)) = (labels.get(task::TRIGGER_LABEL), labels.get(task::CONCURRENCY_LABEL)) else {
        return;
    };
    let selector = format!("{}={trigger},{}={key}", task::TRIGGER_LABEL, task::CONCURRENCY_LABEL);
    let Ok(list) = tasks.list(&ListParams::default().labels(&selector)).await else { return };
    let patch = serde_json::json!({"spec": {"cancel": true}});
    // Only older Tasks of the key go (a late or concurrent delivery never cancels a newer one),
    // ordered by arrival (nanoseconds), then name.
    let arrival = |t: &Task| {
        let at = t.annotations().get(task::DELIVERED_AT).cloned().unwrap_or_default();
        (at, t.name_any())
    };
    let this = arrival(created);
    let older = |t: &Task| arrival(t) < this;
    for t in list.items.iter().filter(|t| t.name_any() != task.name_any() && older(t)) {
        let done = t.status.as_ref().is_some_and(|s| s.phase.is_terminal());
        if done || t.spec.cancel {
            continue;
        }
        if let Err(e) = tasks.patch(&t.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!(error = %e, task = %t.name_any(), "cancelling the previous Task of a concurrency key");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_may_send_a_form_and_everyone_else_json() {
        let h = |ct: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            m
        };
        assert_eq!(content_type_ok(TriggerSource::Gitlab, &h("application/json; charset=utf-8")).ok(), Some(true));
        assert_eq!(content_type_ok(TriggerSource::Github, &h("application/x-www-form-urlencoded")).ok(), Some(false));
        assert!(content_type_ok(TriggerSource::Bitbucket, &h("application/x-www-form-urlencoded")).is_err());
        assert!(content_type_ok(TriggerSource::Github, &h("text/plain")).is_err());
        assert!(content_type_ok(TriggerSource::Github, &HeaderMap::new()).is_err());
        let form = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
        assert_eq!(parse(form, false).unwrap()["ref"], "refs/heads/main");
        assert!(parse(b"{", true).is_err());
    }

    #[test]
    fn rules_never_see_the_headers_that_carry_the_secret() {
        for h in [
            "authorization",
            "x-gitlab-token",
            "x-hook-secret",
            "cookie",
            "proxy-authorization",
            "x-api-key",
            "x-amz-security-token",
        ] {
            assert!(is_credential_header(h), "{h}");
        }
        for h in ["x-github-event", "x-github-hook-id", "x-gitlab-event", "x-event-key", "user-agent"] {
            assert!(!is_credential_header(h), "{h}");
        }
    }
}
