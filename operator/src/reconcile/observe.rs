//! What a worker Pod says about its attempt.

use ephemera_crds::FailureClass;
use k8s_openapi::api::core::v1::Pod;

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
    /// Ended unsuccessfully.
    Failed {
        /// For the retry decision.
        class: FailureClass,
        /// CamelCase reason for the Task.
        reason: String,
        /// Human-readable message.
        message: String,
        /// Exit code, when the container ran.
        exit_code: Option<i32>,
        /// Termination message (or log tail).
        result: String,
    },
}

/// Reads a Pod's status.
pub fn attempt(pod: &Pod) -> Attempt {
    let status = pod.status.clone().unwrap_or_default();
    let container = status.container_statuses.unwrap_or_default().into_iter().next();
    let state = container.as_ref().and_then(|c| c.state.clone()).unwrap_or_default();
    let terminated = state.terminated.clone();
    match status.phase.as_deref() {
        Some("Succeeded") => Attempt::Succeeded { result: terminated.and_then(|t| t.message).unwrap_or_default() },
        Some("Failed") => {
            let exit_code = terminated.as_ref().map(|t| t.exit_code);
            let result = terminated.as_ref().and_then(|t| t.message.clone()).unwrap_or_default();
            let pod_reason = status.reason.unwrap_or_default();
            if pod_reason == "DeadlineExceeded" {
                return Attempt::Failed {
                    class: FailureClass::Timeout,
                    reason: "DeadlineExceeded".into(),
                    message: "the Task's deadline passed while its Pod was running".into(),
                    exit_code,
                    result,
                };
            }
            let term_reason = terminated.as_ref().and_then(|t| t.reason.clone()).unwrap_or_default();
            match exit_code {
                Some(code) if code != 0 && term_reason != "ContainerStatusUnknown" && pod_reason != "Evicted" => {
                    Attempt::Failed {
                        class: FailureClass::ExitCode,
                        reason: "ExitCode".into(),
                        message: format!("the task command exited with code {code}"),
                        exit_code,
                        result,
                    }
                }
                _ => Attempt::Failed {
                    class: FailureClass::Infrastructure,
                    reason: if pod_reason.is_empty() { term_reason.clone() } else { pod_reason.clone() },
                    message: status.message.unwrap_or_else(|| format!("the Pod failed ({term_reason})")),
                    exit_code,
                    result,
                },
            }
        }
        Some("Running") if state.running.is_some() => Attempt::Running,
        _ => {
            let problem = state
                .waiting
                .filter(|w| w.reason.as_deref().is_some_and(|r| START_PROBLEMS.contains(&r)))
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
        assert!(matches!(attempt(&failed), Attempt::Failed { class: FailureClass::ExitCode, exit_code: Some(3), .. }));
        let deadline = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}));
        assert!(matches!(attempt(&deadline), Attempt::Failed { class: FailureClass::Timeout, .. }));
        let pull = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}}]}),
        );
        assert_eq!(attempt(&pull), Attempt::Starting { problem: Some(("ImagePullBackOff".into(), "Back-off".into())) });
    }
}
