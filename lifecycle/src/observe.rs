//! What a worker Pod says about its attempt.

use ephemera_crds::worker::{WorkerFailure, WorkerReport, CREDENTIALS_CONTAINER};
use ephemera_crds::{FailureClass, Reason};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// Waiting reasons that mean the container cannot start as configured.
const START_PROBLEMS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "InvalidImageName",
];

/// The attempt as its Pod shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Not started; `problem` is a waiting reason and message worth surfacing.
    Starting {
        /// e.g. (`ImagePullBackOff`, `Back-off pulling image "x"`).
        problem: Option<(String, String)>,
    },
    /// The container runs.
    Running,
    /// Exit code 0.
    Succeeded {
        /// Termination message.
        result: String,
    },
    /// The worker could not unwrap its one-time token: someone else may have, or it had expired.
    Intercepted {
        /// The worker's explanation.
        message: String,
        /// When the container that tried to unwrap started (kubelet-reported), to compare with the
        /// token's expiry; None when the token was forged (expiry cannot explain that).
        started: Option<Timestamp>,
    },
    /// Ended unsuccessfully.
    Failed(Failure),
}

impl Attempt {
    /// Whether the attempt is over (its outcome is known). An interception is an outcome too: a
    /// cancel or deadline that comes later must not hide it.
    pub fn is_over(&self) -> bool {
        matches!(self, Attempt::Succeeded { .. } | Attempt::Failed(_) | Attempt::Intercepted { .. })
    }
}

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// For the retry decision.
    pub class: FailureClass,
    /// The Task's reason.
    pub reason: Reason,
    /// Human-readable message.
    pub message: String,
    /// Exit code, when the container ran.
    pub exit_code: Option<i32>,
    /// Termination message (or log tail).
    pub result: String,
}

impl Failure {
    /// An infrastructure failure the operator saw itself (no exit code, no result).
    pub fn infrastructure(reason: Reason, message: String) -> Self {
        Self { class: FailureClass::Infrastructure, reason, message, exit_code: None, result: String::new() }
    }
}

/// The current attempt's Pod as the lifecycle needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedPod {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// When the API server created it.
    pub created: Option<Timestamp>,
    /// What it says about the attempt.
    pub attempt: Attempt,
}

impl ObservedPod {
    /// Reads a Pod.
    pub fn of(pod: &Pod) -> Self {
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            attempt: attempt(pod),
        }
    }
}

/// Reads a Pod's status.
pub fn attempt(pod: &Pod) -> Attempt {
    let status = pod.status.clone().unwrap_or_default();
    let container = status.container_statuses.unwrap_or_default().into_iter().next();
    let state = container.as_ref().and_then(|c| c.state.clone()).unwrap_or_default();
    // A failed init container ends the Pod before the task container starts; the `credentials`
    // step's report then speaks for the attempt.
    let failed_init = || {
        status.init_container_statuses.iter().flatten().find_map(|c| {
            let t = c.state.as_ref()?.terminated.clone().filter(|t| t.exit_code != 0)?;
            Some((c.name.clone(), t))
        })
    };
    // The init container that ended the attempt, if the task container never did.
    let (failed_step, terminated) = match state.terminated.clone() {
        Some(t) => (None, Some(t)),
        None => failed_init().map_or((None, None), |(name, t)| (Some(name), Some(t))),
    };
    let message = match &failed_step {
        Some(name) if name != CREDENTIALS_CONTAINER => String::new(),
        _ => terminated.as_ref().and_then(|t| t.message.clone()).unwrap_or_default(),
    };
    // The worker's report; a Pod without the worker leaves plain text (kept as the result).
    let report = WorkerReport::parse(&message).unwrap_or(WorkerReport { result: message, ..Default::default() });
    match status.phase.as_deref() {
        // A worker that ended the attempt itself never leaves 0, but an older one might: trust its report.
        Some("Succeeded") if report.failure.is_none() => Attempt::Succeeded { result: report.result },
        Some("Succeeded" | "Failed") => {
            let exit_code = terminated.as_ref().map(|t| t.exit_code);
            let result = report.result;
            let pod_reason = status.reason.unwrap_or_default();
            match report.failure {
                Some(WorkerFailure::CredentialUnwrapFailed) => {
                    let started = terminated.as_ref().and_then(|t| t.started_at.as_ref()).map(|t| t.0);
                    return Attempt::Intercepted { message: report.message, started };
                }
                Some(WorkerFailure::CredentialNotGenuine) => {
                    return Attempt::Intercepted { message: report.message, started: None }
                }
                Some(failure) if failure != WorkerFailure::Terminated || pod_reason != "DeadlineExceeded" => {
                    return Attempt::Failed(Failure {
                        class: FailureClass::Infrastructure,
                        reason: Reason::Worker(failure),
                        message: report.message,
                        exit_code: None,
                        result,
                    })
                }
                _ => {}
            }
            if pod_reason == "DeadlineExceeded" {
                return Attempt::Failed(Failure {
                    class: FailureClass::Timeout,
                    reason: Reason::DeadlineExceeded,
                    message: "the Task's deadline passed while its Pod was running".into(),
                    exit_code,
                    result,
                });
            }
            let term_reason = terminated.as_ref().and_then(|t| t.reason.clone()).unwrap_or_default();
            if let Some(step) = failed_step {
                // The command never ran: an init container failed without a worker report (OOM,
                // a worker binary that cannot run in the Task's image, a version mismatch).
                return Attempt::Failed(Failure::infrastructure(
                    Reason::InitContainerFailed,
                    format!(
                        "init container {step:?} exited with code {} ({term_reason}) before the task command ran",
                        exit_code.unwrap_or_default()
                    ),
                ));
            }
            match exit_code {
                Some(code) if code != 0 && term_reason != "ContainerStatusUnknown" && pod_reason != "Evicted" => {
                    Attempt::Failed(Failure {
                        class: FailureClass::ExitCode,
                        reason: Reason::ExitCode,
                        message: format!("the task command exited with code {code}"),
                        exit_code,
                        result,
                    })
                }
                _ => Attempt::Failed(Failure {
                    class: FailureClass::Infrastructure,
                    reason: Reason::Kubelet(if pod_reason.is_empty() {
                        term_reason.clone()
                    } else {
                        pod_reason.clone()
                    }),
                    message: status.message.unwrap_or_else(|| format!("the Pod failed ({term_reason})")),
                    exit_code,
                    result,
                }),
            }
        }
        Some("Running") if state.running.is_some() => Attempt::Running,
        _ => {
            // The init container (which installs the worker) can be the one that cannot start.
            let init = status.init_container_statuses.unwrap_or_default().into_iter().filter_map(|c| c.state?.waiting);
            let problem = state
                .waiting
                .into_iter()
                .chain(init)
                .find(|w| w.reason.as_deref().is_some_and(|r| START_PROBLEMS.contains(&r)))
                .map(|w| (w.reason.unwrap_or_default(), w.message.unwrap_or_default()));
            Attempt::Starting { problem }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn pod_states_map_to_attempt_outcomes() {
        let ok = pod(
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "message": "done"}}}]}),
        );
        assert_eq!(attempt(&ok), Attempt::Succeeded { result: "done".into() });
        let failed = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}),
        );
        assert!(matches!(
            attempt(&failed),
            Attempt::Failed(Failure { class: FailureClass::ExitCode, exit_code: Some(3), .. })
        ));
        let deadline = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}));
        assert!(matches!(attempt(&deadline), Attempt::Failed(Failure { class: FailureClass::Timeout, .. })));
        let pull = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}}]}),
        );
        assert_eq!(attempt(&pull), Attempt::Starting { problem: Some(("ImagePullBackOff".into(), "Back-off".into())) });
    }

    #[test]
    fn worker_reports_decide_the_outcome() {
        let ended = |phase: &str, code: i32, message: &str| {
            pod(
                json!({"phase": phase, "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code, "message": message}}}]}),
            )
        };
        let ok = ended("Succeeded", 0, r#"{"exitCode":0,"result":"42"}"#);
        assert_eq!(attempt(&ok), Attempt::Succeeded { result: "42".into() });
        let stolen = ended("Failed", 1, r#"{"failure":"CredentialUnwrapFailed","message":"already used"}"#);
        assert_eq!(attempt(&stolen), Attempt::Intercepted { message: "already used".into(), started: None });
        let vault = ended("Failed", 1, r#"{"failure":"VaultUnavailable","message":"connection refused"}"#);
        assert!(matches!(
            attempt(&vault),
            Attempt::Failed(Failure {
                class: FailureClass::Infrastructure,
                reason: Reason::Worker(WorkerFailure::VaultUnavailable),
                ..
            })
        ));
        let stopped = ended("Succeeded", 0, r#"{"failure":"Terminated","exitCode":0}"#);
        assert!(
            matches!(
                attempt(&stopped),
                Attempt::Failed(Failure {
                    class: FailureClass::Infrastructure,
                    reason: Reason::Worker(WorkerFailure::Terminated),
                    ..
                })
            ),
            "a command that exited 0 after being stopped did not succeed"
        );
        let code = ended("Failed", 4, r#"{"exitCode":4,"result":"partial"}"#);
        assert!(
            matches!(attempt(&code), Attempt::Failed(Failure { class: FailureClass::ExitCode, exit_code: Some(4), ref result, .. }) if result == "partial")
        );
        // The credentials step failed: the task container never ran; the step's report decides.
        let step = |message: &str| {
            pod(json!({"phase": "Failed",
                "initContainerStatuses": [{"name": "credentials", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1, "message": message, "startedAt": "2026-12-01T10:00:00Z"}}}],
                "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}))
        };
        let stolen_in_step = step(r#"{"failure":"CredentialUnwrapFailed","message":"already used"}"#);
        assert!(
            matches!(attempt(&stolen_in_step), Attempt::Intercepted { started: Some(t), .. } if t.to_string() == "2026-12-01T10:00:00Z")
        );
        let forged = step(r#"{"failure":"CredentialNotGenuine","message":"wrong path"}"#);
        assert!(matches!(attempt(&forged), Attempt::Intercepted { started: None, .. }));
        let oom = step("");
        assert!(
            matches!(
                attempt(&oom),
                Attempt::Failed(Failure {
                    class: FailureClass::Infrastructure,
                    reason: Reason::InitContainerFailed,
                    exit_code: None,
                    ..
                })
            ),
            "a step that died without a report is not blamed on the command"
        );
        let down = step(r#"{"failure":"VaultUnavailable","message":"connection refused"}"#);
        assert!(matches!(
            attempt(&down),
            Attempt::Failed(Failure {
                class: FailureClass::Infrastructure,
                reason: Reason::Worker(WorkerFailure::VaultUnavailable),
                ..
            })
        ));
        let init = pod(
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "install-worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}]}),
        );
        assert_eq!(
            attempt(&init),
            Attempt::Starting { problem: Some(("ErrImagePull".into(), "no such image".into())) }
        );
    }
}
