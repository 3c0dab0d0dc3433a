//! Container and Pod status as the kubelet reports it.

use serde_json::{json, Value};

/// One container's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running yet (or between restarts).
    Waiting {
        /// e.g. `ContainerCreating`, `ErrImagePull`, `CreateContainerConfigError`, `CrashLoopBackOff`.
        reason: String,
        /// Human-readable detail.
        message: String,
    },
    /// Running since.
    Running {
        /// RFC 3339 start time.
        started_at: String,
    },
    /// Finished.
    Terminated {
        /// Process exit code (128 + signal when killed).
        exit_code: i32,
        /// `Completed` or `Error`.
        reason: String,
        /// Termination message.
        message: String,
        /// Start time.
        started_at: String,
        /// End time.
        finished_at: String,
        /// Runtime id of the run.
        container_id: String,
    },
}

impl State {
    /// A waiting state.
    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        State::Waiting { reason: reason.into(), message: message.into() }
    }

    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated { exit_code, reason, message, started_at, finished_at, container_id } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at, "containerID": container_id});
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// Everything reported about one container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous run's terminated state, if any.
    pub last: Option<State>,
    /// Restarts so far.
    pub restarts: u32,
    /// Runtime id of the current run.
    pub container_id: String,
    /// The pulled image's `registry/repository@digest` (empty until pulled).
    pub image_id: String,
    /// The startup probe passed (or there is none) in the current run.
    pub started: bool,
    /// The readiness probe passes (or there is none) in the current run.
    pub ready: bool,
}

impl Container {
    /// A container that has not started.
    pub fn new(name: &str, image: &str, reason: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            state: State::waiting(reason, ""),
            last: None,
            restarts: 0,
            container_id: String::new(),
            image_id: String::new(),
            started: false,
            ready: false,
        }
    }

    /// Whether it is running now.
    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Running and passing its readiness probe.
    pub fn is_ready(&self) -> bool {
        self.running() && self.ready
    }

    /// The `containerStatuses[]` entry.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.is_ready(),
            "started": self.running() && self.started,
            "restartCount": self.restarts,
            "state": self.state.to_json(),
            "lastState": self.last.as_ref().map(State::to_json).unwrap_or(json!({})),
        });
        if !self.container_id.is_empty() {
            v["containerID"] = json!(self.container_id);
        }
        v
    }
}

/// The Pod's QoS class from its containers' CPU and memory requests and limits, by Kubernetes'
/// rule: none anywhere is `BestEffort`; limits on both for every container with requests equal to
/// them (an unset request defaults to its limit) is `Guaranteed`; anything else `Burstable`.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> =
        ["initContainers", "containers"].iter().flat_map(|f| pod["spec"][f].as_array().into_iter().flatten()).collect();
    let quantity = |c: &Value, kind: &str, r: &str| {
        c["resources"][kind][r].as_str().and_then(super::bundle::quantity_milli).filter(|q| *q > 0)
    };
    let any = containers.iter().any(|c| {
        ["cpu", "memory"].iter().any(|r| quantity(c, "requests", r).is_some() || quantity(c, "limits", r).is_some())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| match quantity(c, "limits", r) {
            Some(limit) => quantity(c, "requests", r).is_none_or(|req| req == limit),
            None => false,
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A Pod condition.
pub fn condition(kind: &str, ok: bool, reason: Option<&str>, now: &str) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// Keeps each condition's `lastTransitionTime` unless its status changed.
pub fn merge_conditions(old: &Value, new: Vec<Value>) -> Vec<Value> {
    new.into_iter()
        .map(|mut c| {
            if let Some(prev) = old.as_array().and_then(|a| a.iter().find(|p| p["type"] == c["type"])) {
                if prev["status"] == c["status"] {
                    c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                }
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes_follow_kubernetes_rules() {
        let pod = |containers: Value| json!({"spec": {"containers": containers}});
        assert_eq!(qos_class(&pod(json!([{"name": "a"}]))), "BestEffort");
        let both = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        assert_eq!(qos_class(&pod(json!([{"resources": both}]))), "Guaranteed");
        let equal = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}});
        assert_eq!(qos_class(&pod(json!([{"resources": equal}]))), "Guaranteed");
        let lower = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}});
        assert_eq!(qos_class(&pod(json!([{"resources": lower}]))), "Burstable");
        assert_eq!(qos_class(&pod(json!([{"resources": both}, {"name": "b"}]))), "Burstable");
    }
}
