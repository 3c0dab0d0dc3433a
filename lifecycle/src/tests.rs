//! The lifecycle as tables: each row is a Task, what was seen of it and the time, and the step that
//! must follow, written as `Phase/Reason [effects] next`.

use std::time::Duration;

use ephemera_crds::worker::WorkerFailure;
use ephemera_crds::{FailureClass, Reason, Task, TaskQueueSpec};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::*;

const CREATED: &str = "2026-12-01T10:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A Task created at [`CREATED`] with `spec` and `status` merged over a minimal one.
fn task(spec: Value, status: Value) -> Task {
    let mut spec_v = json!({"command": ["true"], "timeoutSeconds": 3600});
    merge(&mut spec_v, spec);
    serde_json::from_value(json!({
        "apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "t", "namespace": "team", "uid": "u1", "generation": 1, "creationTimestamp": CREATED},
        "spec": spec_v, "status": status,
    }))
    .unwrap()
}

fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
}

fn pod(attempt: Attempt) -> ObservedPod {
    ObservedPod { name: "t-1".into(), uid: "p1".into(), created: Some(at("2026-12-01T10:00:01Z")), attempt }
}

fn failed(class: FailureClass, reason: Reason) -> Attempt {
    Attempt::Failed(Failure { class, reason, message: "it broke".into(), exit_code: Some(3), result: "out".into() })
}

/// Everything resolved: credentials fine, the queue exists, admitted.
fn open() -> Seen {
    Seen {
        credentials: Some(Ok(())),
        queue: Some(Some(TaskQueueSpec::default())),
        admitted: Some(true),
        ..Default::default()
    }
}

fn with_pod(mut seen: Seen, p: Option<ObservedPod>) -> Seen {
    seen.pod = Some(p);
    seen
}

const SCHEDULED: &str = r#"{"phase": "Scheduled", "attempt": 1, "podName": "t-1"}"#;
const RUNNING: &str = r#"{"phase": "Running", "attempt": 1, "podName": "t-1", "podUid": "p1"}"#;

fn status(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

fn settings() -> Settings {
    Settings { pod_start_timeout: Duration::from_secs(300) }
}

/// A decision in one line: `Need(Fact)` or `Phase/Reason [effects] next`.
fn line(d: &Decision) -> String {
    let Decision::Plan(p) = d else { return format!("{d:?}") };
    let effects: Vec<String> = p
        .effects
        .iter()
        .map(|e| match e {
            Effect::StopPod(n) => format!("Stop {n}"),
            Effect::Event(n) => format!("{}:{}", if n.warning { "Warn" } else { "Event" }, n.reason),
            Effect::WriteStatus => "Write".into(),
            Effect::ExpectPod(uid) => format!("Expect {uid}"),
            Effect::ReleaseSlot => "Release".into(),
            Effect::RevokeEnded { announce: true } => "Revoke!".into(),
            Effect::RevokeEnded { announce: false } => "Revoke".into(),
            Effect::DeleteTask => "Delete".into(),
            Effect::Metric(m) => format!("{m:?}").split('(').next().unwrap_or_default().to_string(),
        })
        .collect();
    let next = match p.next {
        Next::AwaitChange => "await".to_string(),
        Next::After(d) => format!("{}s", d.as_secs()),
        Next::StartAttempt => "start".into(),
    };
    format!("{}/{} [{}] {next}", p.status.phase.as_str(), p.status.reason, effects.join(" "))
}

fn plan(d: Decision) -> Plan {
    match d {
        Decision::Plan(p) => p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

#[test]
fn every_transition_follows_the_table() {
    let t0 = at("2026-12-01T10:00:05Z");
    let late = at("2026-12-01T10:10:00Z");
    let after_deadline = at("2026-12-01T11:00:01Z");
    let refused = Seen {
        credentials: Some(Err(Refusal { reason: Reason::UnknownCredential, message: "no such credential".into() })),
        ..Default::default()
    };
    let no_queue = Seen { credentials: Some(Ok(())), queue: Some(None), ..Default::default() };
    let closed = Seen {
        credentials: Some(Ok(())),
        queue: Some(Some(TaskQueueSpec { namespaces: vec!["other".into()], ..Default::default() })),
        ..Default::default()
    };
    let full = Seen { admitted: Some(false), ..open() };
    let retries = json!({"retry": {"maxAttempts": 3, "backoffSeconds": 10}});
    let creds = json!({"credentials": ["sf-prod"]});
    let pull = Attempt::Starting { problem: Some(("ImagePullBackOff".into(), "Back-off pulling image".into())) };
    let stolen = Attempt::Intercepted { message: "already used".into(), started: None };
    let backoff = r#"{"phase": "Pending", "attempt": 1, "podName": "t-1", "nextAttemptTime": "2026-12-01T10:00:20Z"}"#;
    let done = r#"{"phase": "Succeeded", "completionTime": "2026-12-01T10:00:30Z"}"#;
    #[rustfmt::skip]
    let rows: Vec<(&str, Task, Seen, Timestamp, &str)> = vec![
        // Pending: the facts are asked for in order, each only once it matters.
        ("a new Task first checks its credentials", task(json!({}), json!({})), Seen::default(), t0, "Need(Credentials)"),
        ("then its queue", task(json!({}), json!({})), Seen { credentials: Some(Ok(())), ..Default::default() }, t0, "Need(Queue)"),
        ("then asks for a slot", task(json!({}), json!({})), Seen { admitted: None, ..open() }, t0, "Need(Admission)"),
        ("refused credentials end it", task(creds.clone(), json!({})), refused, t0,
            "Failed/UnknownCredential [Warn:UnknownCredential Write Release Revoke!] await"),
        ("an unknown queue holds it, with one event", task(json!({}), json!({})), no_queue.clone(), t0,
            "Pending/UnknownQueue [Warn:UnknownQueue Write] 30s"),
        ("and no second event on the next look", task(json!({}), json!({"reason": "UnknownQueue"})), no_queue, t0,
            "Pending/UnknownQueue [Write] 30s"),
        ("a queue closed to the namespace holds it", task(json!({}), json!({})), closed, t0,
            "Pending/QueueForbidden [Warn:QueueForbidden Write] 30s"),
        ("a full queue keeps it waiting", task(json!({}), json!({})), full, t0, "Pending/Queued [Write] 30s"),
        ("an admitted Task records its attempt before the Pod", task(json!({}), json!({})), open(), t0,
            "Scheduled/CreatingPod [Write] start"),
        ("back-off is waited out before a slot is asked for", task(retries.clone(), status(backoff)),
            Seen { admitted: None, ..with_pod(open(), Some(pod(failed(FailureClass::Infrastructure, Reason::Kubelet("Evicted".into()))))) },
            t0, "Pending/ [Write] 16s"),
        // Scheduled and running.
        ("a recorded attempt looks at its Pod", task(json!({}), status(SCHEDULED)), open(), t0, "Need(Pod)"),
        ("no Pod yet: create it", task(json!({}), status(SCHEDULED)), with_pod(open(), None), t0, "Scheduled/ [] start"),
        ("a created Pod that vanished is retried", task(retries.clone(), status(RUNNING)), with_pod(open(), None), t0,
            "Pending/RetryBackoff [Revoke Warn:AttemptFailed Write Release] 11s"),
        ("or fails with no attempts left", task(json!({}), status(RUNNING)), with_pod(open(), None), t0,
            "Failed/PodDeleted [Revoke Warn:PodDeleted Write Release Revoke!] await"),
        ("a starting Pod is watched, with no write until it runs", task(json!({}), status(SCHEDULED)), with_pod(open(), Some(pod(Attempt::Starting { problem: None }))), t0,
            "Scheduled/ [] 30s"),
        ("its pull problem is surfaced", task(json!({}), status(SCHEDULED)), with_pod(open(), Some(pod(pull.clone()))), t0,
            "Scheduled/ImagePullBackOff [Write] 30s"),
        ("and a Pod stuck past the start timeout is stopped", task(retries.clone(), status(SCHEDULED)), with_pod(open(), Some(pod(pull))), late,
            "Pending/RetryBackoff [Stop t-1 Revoke Warn:AttemptFailed Write Release] 11s"),
        ("a running container moves the Task to Running", task(json!({}), status(SCHEDULED)), with_pod(open(), Some(pod(Attempt::Running))), t0,
            "Running/Running [StartLatency Event:Running Write] 3595s"),
        ("once", task(json!({}), status(RUNNING)), with_pod(open(), Some(pod(Attempt::Running))), t0, "Running/ [Write] 3595s"),
        ("exit 0 succeeds", task(json!({}), status(RUNNING)), with_pod(open(), Some(pod(Attempt::Succeeded { result: "42".into() }))), t0,
            "Succeeded/Succeeded [Event:Succeeded Write Release Revoke!] await"),
        ("a non-zero exit is not retried by default", task(retries.clone(), status(RUNNING)),
            with_pod(open(), Some(pod(failed(FailureClass::ExitCode, Reason::ExitCode)))), t0,
            "Failed/ExitCode [Revoke Warn:ExitCode Write Release Revoke!] await"),
        ("a worker failure is infrastructure, and retried", task(retries.clone(), status(RUNNING)),
            with_pod(open(), Some(pod(failed(FailureClass::Infrastructure, Reason::Worker(WorkerFailure::VaultUnavailable))))), t0,
            "Pending/RetryBackoff [Revoke Warn:AttemptFailed Write Release] 11s"),
        ("a Pod that hit its deadline times out", task(retries.clone(), status(RUNNING)),
            with_pod(open(), Some(pod(failed(FailureClass::Timeout, Reason::DeadlineExceeded)))), t0,
            "TimedOut/DeadlineExceeded [Warn:DeadlineExceeded Write Release Revoke!] await"),
        ("an intercepted token fails the Task even with attempts left", task(retries.clone(), status(RUNNING)),
            with_pod(open(), Some(pod(stolen))), t0,
            "Failed/CredentialUnwrapFailed [UnwrapFailure Warn:CredentialUnwrapFailed Warn:CredentialUnwrapFailed Write Release Revoke!] await"),
        ("a token that expired before a slow start is retried", task(retries.clone(), json!({"phase": "Running", "attempt": 1, "podName": "t-1", "podUid": "p1", "wrapExpires": "2026-12-01T10:00:02Z"})),
            with_pod(open(), Some(pod(Attempt::Intercepted { message: "expired".into(), started: Some(at("2026-12-01T10:00:03Z")) }))), t0,
            "Pending/RetryBackoff [Warn:CredentialExpired Revoke Warn:AttemptFailed Write Release] 11s"),
        // A Pod with credentials is adopted only as the one the operator recorded.
        ("an unseen Pod of a Task with credentials is checked against the record", task(creds.clone(), status(SCHEDULED)),
            with_pod(open(), Some(pod(Attempt::Running))), t0, "Need(RecordedPod)"),
        ("a Pod that is not the recorded one is stopped", task(creds.clone(), status(SCHEDULED)),
            Seen { recorded_pod: Some(Some("someone-else".into())), ..with_pod(open(), Some(pod(Attempt::Running))) }, t0,
            "Failed/PodUnverified [Stop t-1 Revoke Warn:PodUnverified Write Release Revoke!] await"),
        ("the recorded Pod is adopted", task(creds.clone(), status(SCHEDULED)),
            Seen { recorded_pod: Some(Some("p1".into())), ..with_pod(open(), Some(pod(Attempt::Running))) }, t0,
            "Running/Running [StartLatency Event:Running Write] 3595s"),
        // Cancel and deadline.
        ("cancel stops the running Pod with grace", task(json!({"cancel": true}), status(RUNNING)), with_pod(open(), Some(pod(Attempt::Running))), t0,
            "Cancelled/Cancelled [Stop t-1 Warn:Cancelled Write Release Revoke!] await"),
        ("cancel of a pending Task needs no facts", task(json!({"cancel": true}), json!({})), Seen::default(), t0,
            "Cancelled/Cancelled [Warn:Cancelled Write Release Revoke!] await"),
        ("an attempt that already ended beats a later cancel", task(json!({"cancel": true}), status(RUNNING)),
            with_pod(open(), Some(pod(Attempt::Succeeded { result: String::new() }))), t0,
            "Succeeded/Succeeded [Event:Succeeded Write Release Revoke!] await"),
        ("an interception is not hidden by a later cancel", task(json!({"cancel": true}), status(RUNNING)),
            with_pod(open(), Some(pod(Attempt::Intercepted { message: "already used".into(), started: None }))), t0,
            "Failed/CredentialUnwrapFailed [UnwrapFailure Warn:CredentialUnwrapFailed Warn:CredentialUnwrapFailed Write Release Revoke!] await"),
        ("the deadline stops a running Pod", task(json!({}), status(RUNNING)), with_pod(open(), Some(pod(Attempt::Running))), after_deadline,
            "TimedOut/DeadlineExceeded [Stop t-1 Warn:DeadlineExceeded Write Release Revoke!] await"),
        ("a retry that would start after the deadline is not made", task(json!({"timeoutSeconds": 10, "retry": {"maxAttempts": 3, "backoffSeconds": 10}}), status(RUNNING)),
            with_pod(open(), Some(pod(failed(FailureClass::Infrastructure, Reason::Kubelet("Evicted".into()))))), t0,
            "Failed/Evicted [Revoke Warn:Evicted Write Release Revoke!] await"),
        // Finished: tokens revoked again, then the TTL.
        ("a finished Task without a TTL stays", task(json!({}), status(done)), Seen::default(), t0, "Succeeded/ [Revoke] await"),
        ("a finished Task waits out its TTL", task(json!({"ttlSecondsAfterFinished": 60}), status(done)), Seen::default(), t0,
            "Succeeded/ [Revoke] 86s"),
        ("and is deleted after it", task(json!({"ttlSecondsAfterFinished": 60}), status(done)), Seen::default(), late,
            "Succeeded/ [Revoke Delete] await"),
        ("a TTL of 0 deletes it as it finishes", task(json!({"ttlSecondsAfterFinished": 0}), status(RUNNING)),
            with_pod(open(), Some(pod(Attempt::Succeeded { result: String::new() }))), t0,
            "Succeeded/Succeeded [Event:Succeeded Write Release Revoke! Delete] await"),
    ];
    let mut wrong = Vec::new();
    for (name, t, seen, now, want) in rows {
        let got = line(&decide(&t, &seen, now, &settings()));
        if got != want {
            wrong.push(format!("{name}:\n    want {want}\n    got  {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn back_off_doubles_per_attempt_up_to_its_cap() {
    let t0 = at("2026-12-01T10:00:05Z");
    let t = |attempt: i32| {
        task(
            json!({"retry": {"maxAttempts": 10, "backoffSeconds": 10, "maxBackoffSeconds": 60}}),
            json!({"phase": "Running", "attempt": attempt, "podName": "t-1", "podUid": "p1"}),
        )
    };
    let gone = with_pod(open(), None);
    let waits: Vec<Next> = (1..=5).map(|a| plan(decide(&t(a), &gone, t0, &settings())).next).collect();
    let secs = |s| Next::After(Duration::from_secs(s));
    assert_eq!(waits, [secs(11), secs(21), secs(41), secs(61), secs(61)]);
    let p = plan(decide(&t(3), &gone, t0, &settings()));
    assert_eq!(p.status.next_attempt_time.as_deref(), Some("2026-12-01T10:00:45Z"));
    assert!(p.status.message.contains("attempt 3 failed (PodDeleted"), "{}", p.status.message);
}

#[test]
fn why_a_failure_was_not_retried_is_in_the_message() {
    let t0 = at("2026-12-01T10:00:05Z");
    let exit = with_pod(open(), Some(pod(failed(FailureClass::ExitCode, Reason::ExitCode))));
    let p = plan(decide(&task(json!({}), status(RUNNING)), &exit, t0, &settings()));
    assert!(p.status.message.ends_with("(ExitCode failures are not retried)"), "{}", p.status.message);
    let infra = with_pod(open(), Some(pod(failed(FailureClass::Infrastructure, Reason::Kubelet("Evicted".into())))));
    let p = plan(decide(&task(json!({}), status(RUNNING)), &infra, t0, &settings()));
    assert!(p.status.message.ends_with("(no attempts left: 1/1)"), "{}", p.status.message);
    assert_eq!(
        (p.status.exit_code, p.status.result.as_str()),
        (Some(3), "out"),
        "the attempt's exit and result are kept"
    );
}

#[test]
fn an_ending_sets_the_job_style_conditions() {
    let t0 = at("2026-12-01T10:00:05Z");
    let cond = |p: &Plan, ty: &str| p.status.conditions.iter().find(|c| c.type_ == ty).map(|c| c.status.clone());
    let ok = with_pod(open(), Some(pod(Attempt::Succeeded { result: String::new() })));
    let p = plan(decide(&task(json!({}), status(RUNNING)), &ok, t0, &settings()));
    assert_eq!((cond(&p, "Complete"), cond(&p, "Failed")), (Some("True".into()), Some("False".into())));
    assert_eq!(p.status.completion_time.as_deref(), Some("2026-12-01T10:00:05Z"));
    let bad = with_pod(open(), Some(pod(failed(FailureClass::ExitCode, Reason::ExitCode))));
    let p = plan(decide(&task(json!({}), status(RUNNING)), &bad, t0, &settings()));
    assert_eq!((cond(&p, "Complete"), cond(&p, "Failed")), (Some("False".into()), Some("True".into())));
}

#[test]
fn an_admitted_attempt_gets_a_deterministic_pod_name_and_a_fresh_record() {
    let t0 = at("2026-12-01T10:00:05Z");
    let prior = json!({"phase": "Pending", "attempt": 2, "podName": "t-2", "podUid": "old", "wrapExpires": "x",
        "nextAttemptTime": "2026-12-01T10:00:00Z"});
    let p = plan(decide(&task(json!({}), prior), &with_pod(open(), None), t0, &settings()));
    let s = &p.status;
    assert_eq!((s.attempt, s.pod_name.as_str(), s.pod_uid.as_str(), s.wrap_expires.as_str()), (3, "t-3", "", ""));
    assert_eq!(s.next_attempt_time, None);
}

#[test]
fn a_capped_priority_is_said_and_cleared_when_the_cap_goes() {
    let t0 = at("2026-12-01T10:00:05Z");
    let full = Seen { admitted: Some(false), ..open() };
    let capped =
        Seen { queue: Some(Some(TaskQueueSpec { max_priority: Some(10), ..Default::default() })), ..full.clone() };
    let p = plan(decide(&task(json!({"priority": 50}), json!({})), &capped, t0, &settings()));
    let c = p.status.conditions.iter().find(|c| c.type_ == "PriorityCapped").unwrap();
    assert_eq!((c.reason.as_str(), c.status.as_str()), ("QueuePriorityCap", "True"));
    let t = task(json!({"priority": 50}), serde_json::to_value(&p.status).unwrap());
    let p = plan(decide(&t, &full, t0, &settings()));
    assert!(p.status.conditions.iter().all(|c| c.type_ != "PriorityCapped"));
}

#[test]
fn each_outcome_of_starting_an_attempt_has_its_step() {
    let t0 = at("2026-12-01T10:00:05Z");
    let deadline = at("2026-12-01T11:00:00Z");
    let scheduled = || task(json!({"retry": {"maxAttempts": 3}}), status(SCHEDULED)).status.unwrap();
    let t = task(json!({"retry": {"maxAttempts": 3}}), status(SCHEDULED));
    let step = |o: StartOutcome| line(&Decision::Plan(start::outcome(&t, scheduled(), o, t0, deadline)));
    let refused = Refusal { reason: Reason::CredentialForbidden, message: "no".into() };
    #[rustfmt::skip]
    let rows = [
        (StartOutcome::Refused(refused), "Failed/CredentialForbidden [Warn:CredentialForbidden Write Release Revoke!] await"),
        (StartOutcome::Vault { unavailable: true, message: "connection refused".into() },
            "Pending/RetryBackoff [VaultError Revoke Warn:AttemptFailed Write Release] 11s"),
        (StartOutcome::Vault { unavailable: false, message: "permission denied".into() },
            "Pending/RetryBackoff [VaultError Revoke Warn:AttemptFailed Write Release] 11s"),
        (StartOutcome::SecretNameTaken("taken".into()), "Failed/SecretNameTaken [Warn:SecretNameTaken Write Release Revoke!] await"),
        (StartOutcome::PodNameTaken, "Failed/PodNameTaken [Warn:PodNameTaken Write Release Revoke!] await"),
        (StartOutcome::NameRace, "Scheduled/ [] 1s"),
        (StartOutcome::Rejected("bad quantity".into()), "Failed/PodInvalid [Warn:PodInvalid Write Release Revoke!] await"),
        (StartOutcome::Forbidden("quota".into()), "Scheduled/PodForbidden [Write] 30s"),
        (StartOutcome::Created { uid: "p1".into() }, "Scheduled/PodCreated [PodCreatedLatency Event:Scheduled Expect p1] 30s"),
    ];
    for (outcome, want) in rows {
        assert_eq!(step(outcome.clone()), want, "{outcome:?}");
    }
    let mut minted = scheduled();
    minted.wrap_expires = "2026-12-01T10:05:00Z".into();
    let created = start::outcome(&t, minted, StartOutcome::Created { uid: "p1".into() }, t0, deadline);
    assert_eq!(
        line(&Decision::Plan(created)),
        "Scheduled/PodCreated [PodCreatedLatency Event:Scheduled Write] 30s",
        "a minted token's expiry is written at once"
    );
    let vault = start::outcome(
        &t,
        scheduled(),
        StartOutcome::Vault { unavailable: false, message: "denied".into() },
        t0,
        deadline,
    );
    assert!(vault.status.message.contains("VaultRefused"), "{}", vault.status.message);
}

fn rendering(queue: &str, credentials: &[&str]) -> ephemera_crds::template::TemplateResolution {
    ephemera_crds::template::TemplateResolution {
        kind: ephemera_crds::TemplateKind::ClusterTaskTemplate,
        name: "deploy".into(),
        uid: "tu".into(),
        generation: 4,
        task: ephemera_crds::template::RenderedTask {
            command: vec!["sf".into()],
            credentials: credentials.iter().map(ToString::to_string).collect(),
            queue: queue.into(),
            timeout_seconds: 60,
            ..Default::default()
        },
    }
}

fn templated(status: Value) -> Task {
    task(
        json!({"command": [], "templateRef": {"kind": "ClusterTaskTemplate", "name": "deploy"}, "params": {"org": "prod"}}),
        status,
    )
}

#[test]
fn a_templated_task_is_rendered_once_then_runs_as_rendered() {
    let t0 = at("2026-12-01T10:00:05Z");
    let s = settings();
    assert_eq!(line(&decide(&templated(json!({})), &Seen::default(), t0, &s)), "Need(Template)");

    // Rendered: the rendering goes into the status, and the rendered credentials and queue are what
    // is checked next.
    let seen = Seen { template: Some(Ok(rendering("deploys", &["prod"]))), ..Default::default() };
    assert_eq!(line(&decide(&templated(json!({})), &seen, t0, &s)), "Need(Credentials)");
    let seen = Seen { queue: Some(None), ..Seen { template: seen.template, ..open() } };
    let p = plan(decide(&templated(json!({})), &seen, t0, &s));
    assert_eq!(p.status.template, Some(Box::new(rendering("deploys", &["prod"]))));
    assert!(p.status.message.contains("\"deploys\""), "the rendered queue is the one looked for: {}", p.status.message);
    let c = p.status.conditions.iter().find(|c| c.type_ == "TemplateResolved").unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Rendered"));
    assert!(c.message.contains("generation 4"), "{}", c.message);

    // Once rendered, it is never rendered again: the status holds it, whatever the template became.
    let stored = serde_json::to_value(&p.status).unwrap();
    let later = templated(stored);
    let d = decide(&later, &Seen { credentials: Some(Ok(())), queue: Some(None), ..Default::default() }, t0, &s);
    assert!(line(&d).starts_with("Pending/UnknownQueue"), "{}", line(&d));
    // Its deadline is the template's timeout.
    let d = decide(&later, &open(), at("2026-12-01T10:01:01Z"), &s);
    assert!(line(&d).starts_with("TimedOut/DeadlineExceeded"), "{}", line(&d));
}

#[test]
fn a_template_that_cannot_be_rendered_fails_the_task_before_anything_else() {
    let refusal = Refusal { reason: Reason::InvalidParams, message: "param \"org\" is required".into() };
    let seen = Seen { template: Some(Err(refusal)), ..Default::default() };
    let d = decide(&templated(json!({})), &seen, at("2026-12-01T10:00:05Z"), &settings());
    assert_eq!(line(&d), "Failed/InvalidParams [Warn:InvalidParams Write Release Revoke!] await");
    let p = plan(d);
    assert_eq!(p.status.message, "param \"org\" is required");
    let c = p.status.conditions.iter().find(|c| c.type_ == "TemplateResolved").unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidParams"));
}

#[test]
fn a_rendering_of_another_template_in_the_status_is_never_run() {
    // A hostile status writer puts a rendering of a template the Task does not name.
    let mut forged = rendering("default", &["prod"]);
    forged.name = "anything-goes".into();
    let t = templated(json!({"template": serde_json::to_value(&forged).unwrap()}));
    assert_eq!(t.rendered().spec.command, Vec::<String>::new(), "the forged command is not the Task's");
    let d = decide(&t, &open(), at("2026-12-01T10:00:05Z"), &settings());
    assert!(line(&d).starts_with("Failed/InvalidTemplate"), "{}", line(&d));
    let p = plan(d);
    assert!(p.status.message.contains("\"anything-goes\""), "{}", p.status.message);
}
