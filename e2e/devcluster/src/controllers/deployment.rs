//! The Deployment controller: one ReplicaSet per Pod template (named `<deployment>-<hash>`, the
//! hash also the `pod-template-hash` label), rolled out by the strategy (RollingUpdate within
//! maxSurge/maxUnavailable, or Recreate), old ReplicaSets kept up to `revisionHistoryLimit`, and
//! the status and conditions `kubectl rollout status` and Helm's wait read.

use serde_json::{json, Value};

use super::objects::{controller_ref, controller_uid, int};
use crate::meta;

/// The label that ties a ReplicaSet and its Pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// One change a sync makes.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet.
    Create(Value),
    /// Set a ReplicaSet's replicas (and, for the new one, its revision).
    Scale {
        /// ReplicaSet name.
        name: String,
        /// New `spec.replicas`.
        replicas: i64,
        /// The revision annotation to set, when it changes.
        revision: Option<String>,
    },
    /// Delete an old, empty ReplicaSet beyond the history limit.
    Delete(String),
}

/// What one sync does: at most one rollout step, history cleanup, and the status to write.
#[derive(Debug)]
pub struct Plan {
    /// The changes, in order.
    pub actions: Vec<Action>,
    /// The Deployment's status afterwards (as far as this sync knows).
    pub status: Value,
    /// The Deployment's revision annotation.
    pub revision: String,
}

/// The template hash: FNV-1a over the template's JSON, spelt in the alphabet upstream uses for
/// names (no vowels, so no words).
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let text = format!("{template}{collision_count}");
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string().bytes().map(|b| char::from(SAFE[usize::from(b) % SAFE.len()])).collect()
}

/// `maxSurge`/`maxUnavailable`: an integer, or a percentage of `replicas` rounded up (surge) or
/// down (unavailable).
pub fn resolve(v: &Value, replicas: i64, default: &str, round_up: bool) -> i64 {
    let text = match v {
        Value::Number(n) => return n.as_i64().unwrap_or(0),
        Value::String(s) => s.as_str(),
        _ => default,
    };
    let Some(pct) = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return text.parse().unwrap_or(0);
    };
    let scaled = replicas * pct;
    if round_up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    }
}

fn revision_of(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION].as_str().and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn name_of(o: &Value) -> String {
    meta::meta_str(o, "name").unwrap_or_default().to_string()
}

fn replicas_of(rs: &Value) -> i64 {
    int(&rs["spec"]["replicas"], 1)
}

fn status_int(rs: &Value, field: &str) -> i64 {
    int(&rs["status"][field], 0)
}

/// The template with the hash label, as the new ReplicaSet and its Pods carry it.
fn hashed_template(template: &Value, hash: &str) -> Value {
    let mut t = template.clone();
    if !t["metadata"].is_object() {
        t["metadata"] = json!({});
    }
    t["metadata"]["labels"][HASH_LABEL] = json!(hash);
    t
}

/// The template a ReplicaSet runs, without its hash label (to compare with the Deployment's).
fn unhashed_template(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    t
}

fn new_replica_set(d: &Value, hash: &str, replicas: i64, revision: i64, max_replicas: i64) -> Value {
    let name = format!("{}-{hash}", name_of(d));
    let template = hashed_template(&d["spec"]["template"], hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": meta::meta_str(d, "namespace").unwrap_or_default(),
            "labels": template["metadata"]["labels"],
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": replicas_of(d).to_string(),
                "deployment.kubernetes.io/max-replicas": max_replicas.to_string(),
            },
            "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": int(&d["spec"]["minReadySeconds"], 0),
            "selector": selector,
            "template": template,
        }
    })
}

fn condition(kind: &str, ok: bool, reason: &str, message: String, old: &Value, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let previous = old["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == kind);
    let transition = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let update = match previous {
        Some(p) if p["status"] == status && p["reason"] == reason => p["lastUpdateTime"].clone(),
        _ => json!(now),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": transition, "lastUpdateTime": update})
}

/// The sync of one Deployment, given every ReplicaSet and Pod of its namespace.
pub fn plan(d: &Value, all_sets: &[&Value], pods: &[&Value], now: &str) -> Plan {
    let uid = meta::meta_str(d, "uid").unwrap_or_default();
    let mut sets: Vec<&Value> = all_sets.iter().copied().filter(|rs| controller_uid(rs) == Some(uid)).collect();
    sets.sort_by_key(|rs| (revision_of(rs), meta::meta_str(rs, "creationTimestamp").unwrap_or_default().to_string()));
    let desired = int(&d["spec"]["replicas"], 1).max(0);
    let template = &d["spec"]["template"];
    let hash = template_hash(template, int(&d["status"]["collisionCount"], 0));
    let current = sets.iter().copied().find(|rs| unhashed_template(rs) == *template);
    let old: Vec<&Value> = sets.iter().copied().filter(|rs| Some(*rs) != current).collect();
    let max_revision = sets.iter().map(|rs| revision_of(rs)).max().unwrap_or(0);
    let recreate = d["spec"]["strategy"]["type"] == "Recreate";
    let rolling = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = if recreate { 0 } else { resolve(&rolling["maxSurge"], desired, "25%", true) };
    let mut unavailable = if recreate { 0 } else { resolve(&rolling["maxUnavailable"], desired, "25%", false) };
    if !recreate && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let old_total: i64 = old.iter().map(|rs| replicas_of(rs)).sum();
    let old_running: i64 = old.iter().map(|rs| status_int(rs, "replicas")).sum();
    // Recreate waits until no old Pod runs, terminating ones included (they may hold what the new
    // Pods need), as upstream's `oldPodsRunning` does.
    let old_uids: Vec<&str> = old.iter().filter_map(|rs| meta::meta_str(rs, "uid")).collect();
    let old_pods_running = pods.iter().any(|p| {
        controller_uid(p).is_some_and(|u| old_uids.contains(&u))
            && !matches!(p["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
    });
    let mut actions = Vec::new();

    // The new ReplicaSet's revision is one past every other (a rollback re-numbers the old one).
    let new_revision = match current {
        Some(rs) if revision_of(rs) == max_revision && max_revision > 0 => max_revision,
        _ => max_revision + 1,
    };
    let revision_change = current.filter(|rs| revision_of(rs) != new_revision).map(|_| new_revision.to_string());
    let current_replicas = current.map_or(0, replicas_of);
    let target = if recreate {
        // Recreate: old Pods all gone before the new ReplicaSet grows.
        if old_total > 0 || old_running > 0 || old_pods_running {
            0
        } else {
            desired
        }
    } else {
        let room = desired + surge - old_total - current_replicas;
        if current_replicas > desired {
            desired
        } else {
            (current_replicas + room.max(0)).min(desired)
        }
    };
    // A ReplicaSet of that name with another template is a hash collision: upstream counts it in
    // `status.collisionCount`, which changes the hash, and creates the ReplicaSet next sync.
    let new_name = format!("{}-{hash}", name_of(d));
    let collision = current.is_none() && sets.iter().any(|rs| name_of(rs) == new_name);
    match current {
        None if collision => {}
        None => actions.push(Action::Create(new_replica_set(d, &hash, target, new_revision, desired + surge))),
        Some(rs) if replicas_of(rs) != target || revision_change.is_some() => {
            actions.push(Action::Scale { name: name_of(rs), replicas: target, revision: revision_change.clone() })
        }
        Some(_) => {}
    }

    // Scale old ReplicaSets down: all at once for Recreate; for RollingUpdate as far as keeps
    // `desired - maxUnavailable` Pods available, and not in the sync that grew the new one (its
    // Pods are not counted yet), as upstream steps.
    let grew = !recreate && !actions.is_empty();
    let available_all: i64 = sets.iter().map(|rs| status_int(rs, "availableReplicas")).sum();
    let mut may_remove = if recreate { i64::MAX } else { available_all - (desired - unavailable) };
    if !recreate {
        // Old replicas that are not available may go at once: they serve nobody.
        for rs in &old {
            let unhealthy = (replicas_of(rs) - status_int(rs, "availableReplicas")).max(0);
            if unhealthy > 0 {
                may_remove += unhealthy;
            }
        }
    }
    for rs in &old {
        let have = replicas_of(rs);
        if have == 0 || may_remove <= 0 || grew {
            continue;
        }
        let down = have.min(may_remove);
        may_remove -= down;
        actions.push(Action::Scale { name: name_of(rs), replicas: have - down, revision: None });
    }

    // History: empty old ReplicaSets beyond the limit go, oldest first.
    let limit = usize::try_from(int(&d["spec"]["revisionHistoryLimit"], 10).max(0)).unwrap_or(10);
    let empty: Vec<&&Value> = old.iter().filter(|rs| replicas_of(rs) == 0 && status_int(rs, "replicas") == 0).collect();
    if empty.len() > limit {
        for rs in &empty[..empty.len() - limit] {
            actions.push(Action::Delete(name_of(rs)));
        }
    }

    let sum = |f: &str| sets.iter().map(|rs| status_int(rs, f)).sum::<i64>();
    let updated = current.map_or(0, |rs| status_int(rs, "replicas"));
    let new_available = current.map_or(0, |rs| status_int(rs, "availableReplicas"));
    let available = sum("availableReplicas");
    let new_name = current.map(name_of).unwrap_or(new_name);
    let complete = updated == desired && new_available == desired && sum("replicas") == desired && old_running == 0;
    let progressing = if complete {
        condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet {new_name:?} has successfully progressed."),
            d,
            now,
        )
    } else {
        condition("Progressing", true, "ReplicaSetUpdated", format!("ReplicaSet {new_name:?} is progressing."), d, now)
    };
    let min_available = desired - unavailable;
    let available_condition = if available >= min_available {
        condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into(), d, now)
    } else {
        condition(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            d,
            now,
        )
    };
    let mut status = json!({
        "observedGeneration": int(&d["metadata"]["generation"], 1),
        "replicas": sum("replicas"),
        "updatedReplicas": updated,
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available,
        "conditions": [available_condition, progressing],
    });
    // Always written: the status is merge-patched, and a key left out would never go away.
    status["unavailableReplicas"] = json!((desired - available).max(0));
    let collisions = int(&d["status"]["collisionCount"], 0) + i64::from(collision);
    if collisions > 0 {
        status["collisionCount"] = json!(collisions);
    }
    Plan { actions, status, revision: new_revision.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, image: &str, strategy: Value) -> Value {
        json!({
            "metadata": {"name": "api", "namespace": "e", "uid": "d-1", "generation": 3},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api"}}, "strategy": strategy,
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
        })
    }

    /// A ReplicaSet as the controller made it, with every Pod in it available.
    fn settled(d: &Value, revision: i64, replicas: i64) -> Value {
        let hash = template_hash(&d["spec"]["template"], 0);
        let mut rs = new_replica_set(d, &hash, replicas, revision, replicas);
        rs["metadata"]["ownerReferences"][0]["uid"] = json!("d-1");
        rs["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        rs
    }

    fn rolling(surge: Value, unavailable: Value) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    #[test]
    fn percentages_round_surge_up_and_unavailability_down() {
        assert_eq!(resolve(&json!("25%"), 3, "25%", true), 1);
        assert_eq!(resolve(&json!("25%"), 3, "25%", false), 0);
        assert_eq!(resolve(&Value::Null, 10, "25%", false), 2);
        assert_eq!(resolve(&json!(2), 10, "25%", true), 2);
        assert_eq!(resolve(&json!("3"), 10, "25%", true), 3);
    }

    #[test]
    fn a_first_rollout_creates_the_replicaset_at_full_size() {
        let d = deployment(2, "v1", rolling(json!(1), json!(0)));
        let p = plan(&d, &[], &[], "now");
        let [Action::Create(rs)] = p.actions.as_slice() else { panic!("{:?}", p.actions) };
        let hash = template_hash(&d["spec"]["template"], 0);
        assert_eq!(rs["metadata"]["name"], format!("api-{hash}"));
        assert_eq!(rs["spec"]["replicas"], 2);
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH_LABEL], hash);
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL], hash);
        assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
        assert_eq!(p.status["conditions"][1]["reason"], "ReplicaSetUpdated");
    }

    #[test]
    fn a_rolling_update_surges_then_scales_the_old_set_down_as_new_pods_become_available() {
        let v1 = deployment(2, "v1", rolling(json!(1), json!(0)));
        let old = settled(&v1, 1, 2);
        let v2 = deployment(2, "v2", rolling(json!(1), json!(0)));
        // Step 1: a new ReplicaSet of one (the surge); nothing old may go yet.
        let p = plan(&v2, &[&old], &[], "now");
        let [Action::Create(new)] = p.actions.as_slice() else { panic!("{:?}", p.actions) };
        assert_eq!(
            (new["spec"]["replicas"].as_i64(), new["metadata"]["annotations"][REVISION].as_str()),
            (Some(1), Some("2"))
        );
        // Step 2: its Pod is available, so one old Pod goes.
        let mut new = new.clone();
        new["metadata"]["ownerReferences"][0]["uid"] = json!("d-1");
        new["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1});
        let p = plan(&v2, &[&old, &new], &[], "now");
        assert_eq!(p.actions, vec![Action::Scale { name: name_of(&old), replicas: 1, revision: None }]);
        // Step 3: with the old set at one, the new one grows to two.
        let mut old1 = old.clone();
        old1["spec"]["replicas"] = json!(1);
        let p = plan(&v2, &[&old1, &new], &[], "now");
        assert_eq!(p.actions, vec![Action::Scale { name: name_of(&new), replicas: 2, revision: None }]);
        assert_eq!(p.status["conditions"][1]["reason"], "ReplicaSetUpdated");
    }

    #[test]
    fn a_replicaset_of_the_same_name_with_another_template_counts_as_a_collision() {
        let d = deployment(1, "v2", rolling(json!(1), json!(0)));
        let mut squatter = settled(&d, 1, 1);
        squatter["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        let p = plan(&d, &[&squatter], &[], "now");
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Create(_))), "{:?}", p.actions);
        assert_eq!(p.status["collisionCount"], 1);
        let mut bumped = d.clone();
        bumped["status"]["collisionCount"] = json!(1);
        assert_ne!(template_hash(&d["spec"]["template"], 1), template_hash(&d["spec"]["template"], 0));
        assert!(matches!(plan(&bumped, &[&squatter], &[], "now").actions.first(), Some(Action::Create(_))));
    }

    #[test]
    fn recreate_empties_the_old_set_before_the_new_one_grows() {
        let v1 = deployment(1, "v1", json!({"type": "Recreate"}));
        let old = settled(&v1, 1, 1);
        let v2 = deployment(1, "v2", json!({"type": "Recreate"}));
        let p = plan(&v2, &[&old], &[], "now");
        assert!(matches!(&p.actions[0], Action::Create(rs) if rs["spec"]["replicas"] == 0));
        assert_eq!(p.actions[1], Action::Scale { name: name_of(&old), replicas: 0, revision: None });
        let mut gone = old.clone();
        gone["spec"]["replicas"] = json!(0);
        gone["status"] = json!({"replicas": 0});
        let mut new = settled(&v2, 2, 0);
        new["status"] = json!({"replicas": 0});
        // A terminating old Pod still holds the new one back.
        let mut old_pod = json!({"metadata": {"ownerReferences": [{"uid": "", "controller": true}], "deletionTimestamp": "t"},
                                 "status": {"phase": "Running"}});
        old_pod["metadata"]["ownerReferences"][0]["uid"] = json!("rs-old");
        gone["metadata"]["uid"] = json!("rs-old");
        let p = plan(&v2, &[&gone, &new], &[&old_pod], "now");
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let p = plan(&v2, &[&gone, &new], &[], "now");
        assert_eq!(p.actions, vec![Action::Scale { name: name_of(&new), replicas: 1, revision: None }]);
    }

    #[test]
    fn a_settled_deployment_reports_complete_and_keeps_history_within_the_limit() {
        let mut d = deployment(1, "v3", rolling(json!("25%"), json!("25%")));
        d["spec"]["revisionHistoryLimit"] = json!(1);
        let current = settled(&d, 3, 1);
        let mut empties = Vec::new();
        for (i, image) in ["v1", "v2"].iter().enumerate() {
            let mut rs = settled(&deployment(1, image, Value::Null), i64::try_from(i).unwrap() + 1, 0);
            rs["status"] = json!({"replicas": 0});
            empties.push(rs);
        }
        let p = plan(&d, &[&empties[0], &empties[1], &current], &[], "now");
        assert_eq!(p.actions, vec![Action::Delete(name_of(&empties[0]))]);
        assert_eq!(p.status["conditions"][0]["reason"], "MinimumReplicasAvailable");
        assert_eq!(p.status["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert_eq!((p.status["updatedReplicas"].as_i64(), p.status["availableReplicas"].as_i64()), (Some(1), Some(1)));
        assert_eq!(p.revision, "3");
    }
}
