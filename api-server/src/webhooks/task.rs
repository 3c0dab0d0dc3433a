//! The Task a matched delivery becomes. Its name is derived from the trigger's uid and the delivery
//! id, so a redelivery (to any replica, after any restart) collides with the first create instead of
//! making a second Task: exactly once per delivery, by construction. Keyed by the key the replicas
//! share, so nobody who can create Tasks can take a future delivery's name first.

use std::collections::BTreeMap;

use ephemera_crds::trigger::TaskTrigger;
use ephemera_crds::{Origin, Task, TaskSpec, TriggerRule};
use ephemera_webhooks::verify;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

/// Label naming the trigger a Task came from.
pub const TRIGGER_LABEL: &str = "ephemera.dev/trigger";
/// Label naming the rule that matched.
pub const RULE_LABEL: &str = "ephemera.dev/trigger-rule";
/// Label carrying a hash of the rule's concurrency key.
pub const CONCURRENCY_LABEL: &str = "ephemera.dev/concurrency-key";
/// Annotation: when the delivery arrived (RFC 3339 with nanoseconds; orders the Tasks of one
/// concurrency key, which `creationTimestamp`'s whole seconds cannot).
pub const DELIVERED_AT: &str = "ephemera.dev/delivered-at";

/// Longest Task name the operator accepts (it appends `-<attempt>` for Pods).
const NAME_MAX: usize = 53;

/// Hex of the first `n` bytes of SHA-256 over `parts` joined by `/`.
fn digest(parts: &[&str], n: usize) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"/");
        }
        h.update(p.as_bytes());
    }
    hex(&h.finalize(), n)
}

fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// `<trigger>-<16 hex>`, a DNS label of at most 53 characters. The hex is HMAC-SHA256, under the
/// key the replicas share, of the trigger's uid and the delivery id: every replica computes the same
/// name, and nobody without the key can compute it in advance.
pub fn task_name(key: &[u8], trigger: &str, trigger_uid: &str, delivery: &str) -> String {
    let mac =
        verify::hmac_sha256(key, &[b"ephemera webhook task name\0", trigger_uid.as_bytes(), b"/", delivery.as_bytes()]);
    let suffix = hex(&mac, 8);
    let keep = NAME_MAX - suffix.len() - 1;
    let prefix: String = trigger.chars().take(keep).collect();
    format!("{}-{suffix}", prefix.trim_end_matches(['-', '.']))
}

/// The label value for a concurrency key (any text becomes a valid label value).
pub fn concurrency_label(trigger_uid: &str, rule: &str, key: &str) -> String {
    digest(&[trigger_uid, rule, key], 16)
}

/// A trigger name as a label value (at most 63 characters: a longer name is shortened with a hash).
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let prefix: String = name.chars().take(46).collect();
    format!("{}-{}", prefix.trim_end_matches(['-', '.']), digest(&[name], 8))
}

/// What the Task records about the delivery.
pub struct Made<'a> {
    /// The provider's event name.
    pub event: &'a str,
    /// The provider's delivery id.
    pub delivery: &'a str,
    /// The replicas' shared key, which keys Task names.
    pub name_key: &'a [u8],
    /// The rule's evaluated params.
    pub params: BTreeMap<String, String>,
    /// The evaluated concurrency key.
    pub concurrency_key: Option<&'a str>,
}

/// The Task for a delivery that `rule` of `trigger` matched.
pub fn build(trigger: &TaskTrigger, rule: &TriggerRule, made: Made<'_>) -> Task {
    let (ns, name) = (trigger.namespace().unwrap_or_default(), trigger.name_any());
    let uid = trigger.uid().unwrap_or_default();
    // A rule gives either the Task or its template (the CRD says exactly one).
    let t = rule.task.clone().unwrap_or_default();
    let spec = TaskSpec {
        image: t.image.clone(),
        command: t.command.clone(),
        template_ref: rule.template.clone(),
        args: t.args.clone(),
        env: t.env.clone(),
        params: made.params,
        credentials: t.credentials.clone(),
        queue: rule.queue.clone().unwrap_or_else(|| "default".into()),
        priority: rule.priority.unwrap_or_default(),
        timeout_seconds: t.timeout_seconds.unwrap_or(ephemera_crds::task::limits::TIMEOUT_DEFAULT),
        retry: t.retry.clone().unwrap_or_default(),
        // A templated rule's Tasks would otherwise never be cleaned up: templates carry no TTL.
        ttl_seconds_after_finished: rule.ttl_seconds_after_finished.or(t.ttl_seconds_after_finished),
        cancel: false,
        resources: t.resources.clone(),
        origin: Some(Box::new(Origin {
            source: "webhook".into(),
            requester: format!("trigger:{ns}/{name}"),
            trigger: name.clone(),
            event: made.event.chars().take(128).collect(),
            delivery: made.delivery.chars().take(256).collect(),
        })),
    };
    let mut task = Task::new_in(&task_name(made.name_key, &name, &uid, made.delivery), &ns, spec);
    let mut labels =
        BTreeMap::from([(TRIGGER_LABEL.to_string(), label_value(&name)), (RULE_LABEL.to_string(), rule.name.clone())]);
    if let Some(key) = made.concurrency_key {
        labels.insert(CONCURRENCY_LABEL.into(), concurrency_label(&uid, &rule.name, key));
        let at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
        task.metadata.annotations = Some(BTreeMap::from([(DELIVERED_AT.to_string(), at)]));
    }
    task.metadata.labels = Some(labels);
    task
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger() -> TaskTrigger {
        serde_json::from_value(json!({
            "apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskTrigger",
            "metadata": {"name": "gh", "namespace": "team", "uid": "11111111-2222-3333-4444-555555555555"},
            "spec": {"source": "github", "secretRef": {"name": "s", "key": "k"}, "rules": [
                {"name": "branch-push", "queue": "ci", "priority": 20,
                 "task": {"image": "busybox", "command": ["sh", "-c", "echo $EPHEMERA_PARAM_REPO"]}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_redelivery_gets_the_same_name_and_another_delivery_another() {
        let key = b"the replicas' shared key";
        let a = task_name(key, "gh", "uid-1", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(a, task_name(key, "gh", "uid-1", "72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        assert_ne!(a, task_name(key, "gh", "uid-1", "72d3162e-cc78-11e3-81ab-4c9367dc0959"));
        assert_ne!(
            a,
            task_name(key, "gh", "uid-2", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            "a recreated trigger starts over"
        );
        let long = task_name(key, &"t".repeat(63), "u", "d");
        assert!(long.len() <= 53 && long.starts_with("ttt"), "{long}");
        assert!(!task_name(key, "a.b-", "u", "d").starts_with("a.b--"), "no doubled separator before the hash");
        assert!(label_value(&"x".repeat(200)).len() <= 63);
    }

    #[test]
    fn without_the_shared_key_nobody_can_compute_a_future_deliverys_task_name() {
        // A Task author knows the trigger's uid and can guess a delivery id (Azure DevOps numbers
        // its notifications); the name still depends on the key they do not have.
        let (uid, delivery) = ("11111111-2222-3333-4444-555555555555", "sub/42");
        let keyed = task_name(b"key one", "az", uid, delivery);
        assert_ne!(keyed, task_name(b"key two", "az", uid, delivery));
        assert_ne!(keyed, format!("az-{}", digest(&[uid, delivery], 8)), "not the plain hash");
        assert_eq!(keyed, task_name(b"key one", "az", uid, delivery), "every replica agrees");
    }

    #[test]
    fn the_task_has_the_rules_queue_priority_and_params_and_says_where_it_came_from() {
        let tr = trigger();
        let rule = &tr.spec.rules[0];
        let params = BTreeMap::from([("repo".to_string(), "acme/app".to_string())]);
        let made =
            Made { event: "push", delivery: "d-1", name_key: b"k", params, concurrency_key: Some("acme/app#42") };
        let t = build(&tr, rule, made);
        assert_eq!(t.metadata.namespace.as_deref(), Some("team"));
        assert_eq!((t.spec.queue.as_str(), t.spec.priority), ("ci", 20));
        assert_eq!(t.spec.params["repo"], "acme/app");
        let o = t.spec.origin.clone().unwrap();
        assert_eq!((o.source.as_str(), o.requester.as_str(), o.trigger.as_str()), ("webhook", "trigger:team/gh", "gh"));
        assert_eq!((o.event.as_str(), o.delivery.as_str()), ("push", "d-1"));
        let labels = t.metadata.labels.clone().unwrap();
        assert_eq!((labels[TRIGGER_LABEL].as_str(), labels[RULE_LABEL].as_str()), ("gh", "branch-push"));
        assert_eq!(labels[CONCURRENCY_LABEL].len(), 32);
    }

    #[test]
    fn a_templated_rule_gives_its_tasks_the_rules_ttl() {
        let tr: TaskTrigger = serde_json::from_value(json!({
            "apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskTrigger",
            "metadata": {"name": "gh", "namespace": "team", "uid": "u"},
            "spec": {"source": "github", "secretRef": {"name": "s", "key": "k"}, "rules": [
                {"name": "deploy", "template": {"name": "salesforce-deploy"}, "ttlSecondsAfterFinished": 600}]}
        }))
        .unwrap();
        let made =
            Made { event: "push", delivery: "d", name_key: b"k", params: BTreeMap::new(), concurrency_key: None };
        let t = build(&tr, &tr.spec.rules[0], made);
        assert_eq!(t.spec.ttl_seconds_after_finished, Some(600));
        assert!(t.spec.template_ref.is_some() && t.spec.command.is_empty());
    }
}
