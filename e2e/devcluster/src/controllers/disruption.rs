//! The disruption controller's status of a PodDisruptionBudget: how many selected Pods are
//! healthy, how many must be, and how many may be disrupted now.

use serde_json::{json, Value};

use super::objects::{int, pod_active, pod_ready, selects};

/// An int-or-percent of `total`, rounded up (as upstream's PDB arithmetic does).
fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some((total * pct + 99) / 100)
        }
        _ => None,
    }
}

/// The status of one budget, given every Pod of its namespace.
pub fn status(pdb: &Value, pods: &[&Value], now: &str) -> Value {
    let selected: Vec<&&Value> =
        pods.iter().filter(|p| pod_active(p) && selects(&pdb["spec"]["selector"], &p["metadata"]["labels"])).collect();
    let expected = i64::try_from(selected.len()).unwrap_or(0);
    let healthy = i64::try_from(selected.iter().filter(|p| pod_ready(p)).count()).unwrap_or(0);
    let desired =
        match (scaled(&pdb["spec"]["minAvailable"], expected), scaled(&pdb["spec"]["maxUnavailable"], expected)) {
            (Some(min), _) => min,
            (None, Some(max)) => (expected - max).max(0),
            (None, None) => expected,
        };
    let allowed = if expected == 0 { 0 } else { (healthy - desired).max(0) };
    let (ok, reason) = if allowed > 0 { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    let previous =
        pdb["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "DisruptionAllowed");
    let since = match previous {
        Some(p) if p["status"] == ok => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let generation = int(&pdb["metadata"]["generation"], 1);
    json!({
        "observedGeneration": generation,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "conditions": [{"type": "DisruptionAllowed", "status": ok, "reason": reason, "message": "",
                        "observedGeneration": generation, "lastTransitionTime": since}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"labels": {"app": "api"}}, "status": {"phase": "Running",
               "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn disruptions_are_allowed_only_above_the_budget() {
        let (a, b, c) = (pod(true), pod(true), pod(false));
        let pdb = json!({"metadata": {"generation": 1}, "spec": {"selector": {"matchLabels": {"app": "api"}}, "minAvailable": 1}});
        let s = status(&pdb, &[&a, &b, &c], "now");
        assert_eq!(
            (s["expectedPods"].as_i64(), s["currentHealthy"].as_i64(), s["disruptionsAllowed"].as_i64()),
            (Some(3), Some(2), Some(1))
        );
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
        let pdb = json!({"spec": {"selector": {"matchLabels": {"app": "api"}}, "maxUnavailable": "50%"}});
        let s = status(&pdb, &[&a, &c], "now");
        assert_eq!((s["desiredHealthy"].as_i64(), s["disruptionsAllowed"].as_i64()), (Some(1), Some(0)));
        assert_eq!(s["conditions"][0]["status"], "False");
    }
}
