//! The worker Pod of one attempt: deterministic name, owned by its Task, hardened to the Pod Security
//! "restricted" profile, with a read-only root and memory-backed scratch and home folders.

use ephemera_crds::worker::{
    CredentialRef, ATTEMPT_SECRET_DIR, CREDENTIALS_CONTAINER, ENV_CREDENTIALS, ENV_GRACE_SECONDS, ENV_HANDOFF_URL,
    ENV_PROGRESS_URL, ENV_RESULT_FILE, ENV_TASK_UID, ENV_TERMINATION_LOG, ENV_VAULT_ADDR, ENV_VAULT_CREATION_PATH,
    ENV_WORKER_NO_PROXY, ENV_WORKER_PROXY, HANDOFF_AUDIENCE, IDENTITY_TOKEN_DIR, IDENTITY_TOKEN_FILE,
    PROGRESS_TOKEN_FILE, SECRETS_DIR,
};
use ephemera_crds::Task;
use k8s_openapi::api::core::v1::Pod;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::names::{pod_name, reporting_secret_name, task_label, ATTEMPT_LABEL, TASK_LABEL};
use crate::vault::VaultConfig;
use crate::Config;

use ephemera_crds::worker::{WORKER_DIR, WORKER_IN_IMAGE};
/// Init container that pulls the Task's image and runs the worker in it before credentials exist.
const PREFLIGHT_CONTAINER: &str = "preflight";
/// Seconds of the Pod's grace period kept for the worker to revoke and report after the command.
const REVOKE_RESERVE: u64 = 10;

/// What the worker needs besides the Task: its credentials and where Vault is.
pub struct WorkerSettings<'a> {
    /// The Task's resolved credentials.
    pub credentials: Vec<CredentialRef>,
    /// Vault settings (present whenever credentials are).
    pub vault: Option<&'a VaultConfig>,
    /// Where the worker reports progress (with the reporting token in the attempt's Secret).
    pub progress_url: Option<&'a str>,
    /// The operator's credential hand-off, as worker Pods reach it (present whenever credentials are).
    pub handoff_url: Option<&'a str>,
}

/// Seconds the `credentials` step's identity token is valid (the API server's minimum: it is used
/// once, within moments of the step starting).
const IDENTITY_TOKEN_SECONDS: i64 = 600;

/// The Pod for `attempt` of `task`, with `active_deadline` seconds left of the Task's deadline. An init
/// container copies the worker from the worker image into a shared volume; the task container (the
/// Task's image) runs `ephemera-worker run -- <command>`, so any image gets credentials and reporting.
pub fn worker_pod(
    task: &Task,
    attempt: i32,
    active_deadline: i64,
    config: &Config,
    worker: &WorkerSettings<'_>,
) -> Result<Pod, serde_json::Error> {
    let spec = &task.spec;
    let name = pod_name(&task.name_any(), attempt);
    let owner = task.controller_owner_ref(&()).map(|o| serde_json::to_value(o).unwrap_or_default());
    // The Task's own variables first: the reserved ones come last, so they win (later entries win).
    let mut env: Vec<serde_json::Value> = spec.env.iter().map(|e| json!({"name": e.name, "value": e.value})).collect();
    for (k, v) in &spec.params {
        let key: String =
            k.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        env.push(json!({"name": format!("EPHEMERA_PARAM_{key}"), "value": v}));
    }
    // Set for both worker steps: which attempt this is, and the admin's proxy for the worker's own calls.
    let attempt_env = [
        json!({"name": "EPHEMERA_TASK_NAME", "value": task.name_any()}),
        json!({"name": "EPHEMERA_TASK_NAMESPACE", "value": task.namespace().unwrap_or_default()}),
        json!({"name": "EPHEMERA_ATTEMPT", "value": attempt.to_string()}),
        json!({"name": ENV_TASK_UID, "value": task.meta().uid.clone().unwrap_or_default()}),
    ];
    // Every worker-only variable is set, empty when unused: an image's `ENV` never supplies one.
    let (proxy, no_proxy) = config.worker_proxy.clone().unwrap_or_default();
    let proxy_env =
        [json!({"name": ENV_WORKER_PROXY, "value": proxy}), json!({"name": ENV_WORKER_NO_PROXY, "value": no_proxy})];
    env.extend(attempt_env.iter().cloned());
    env.extend([
        json!({"name": "HOME", "value": "/home/task"}),
        json!({"name": ENV_GRACE_SECONDS, "value": config.termination_grace.as_secs().saturating_sub(REVOKE_RESERVE).max(1).to_string()}),
    ]);
    env.extend(proxy_env.iter().cloned());
    let worker_only = |name: &str, value: &str| json!({"name": name, "value": value});
    env.extend([
        worker_only(ENV_TERMINATION_LOG, ""),
        worker_only(ENV_RESULT_FILE, ""),
        worker_only(ENV_VAULT_ADDR, ""),
        worker_only(ENV_VAULT_CREATION_PATH, ""),
        worker_only(ENV_HANDOFF_URL, ""),
    ]);
    let mut mounts = vec![
        json!({"name": "scratch", "mountPath": "/tmp"}),
        json!({"name": "work", "mountPath": "/work"}),
        json!({"name": "home", "mountPath": "/home/task"}),
        json!({"name": "ephemera-bin", "mountPath": WORKER_DIR, "readOnly": true}),
    ];
    let mut volumes = vec![
        json!({"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}),
        json!({"name": "work", "emptyDir": {"sizeLimit": "4Gi"}}),
        json!({"name": "home", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}),
        json!({"name": "ephemera-bin", "emptyDir": {"sizeLimit": "256Mi"}}),
    ];
    // The attempt's Secret holds only the reporting token (for the task container); the Vault token
    // is claimed from the operator by the `credentials` step, with an identity only it mounts.
    let mut credentials_step = None;
    if let (false, Some(vault)) = (worker.credentials.is_empty(), worker.vault) {
        let credentials = serde_json::to_string(&worker.credentials)?;
        env.push(json!({"name": ENV_CREDENTIALS, "value": credentials}));
        mounts.push(json!({"name": "secrets", "mountPath": SECRETS_DIR}));
        // Static files, plus their copy in the hand-off until the task container has read it.
        volumes.push(json!({"name": "secrets", "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}}));
        // A token bound to this Pod (name and uid) for an audience only the hand-off accepts.
        volumes.push(json!({"name": "identity", "projected": {
            "sources": [{"serviceAccountToken": {
                "audience": HANDOFF_AUDIENCE,
                "expirationSeconds": IDENTITY_TOKEN_SECONDS,
                "path": IDENTITY_TOKEN_FILE,
            }}],
            "defaultMode": 0o440,
        }}));
        // Only operator-set variables: nothing the Task author wrote reaches the step that holds
        // the Vault token.
        let mut step_env = attempt_env.to_vec();
        step_env.extend([
            json!({"name": ENV_VAULT_ADDR, "value": vault.worker_addr}),
            json!({"name": ENV_VAULT_CREATION_PATH, "value": vault.creation_path()}),
            json!({"name": ENV_HANDOFF_URL, "value": worker.handoff_url.unwrap_or_default()}),
            json!({"name": ENV_CREDENTIALS, "value": credentials}),
            worker_only(ENV_TERMINATION_LOG, ""),
        ]);
        step_env.extend(proxy_env);
        credentials_step = Some(step_env);
    }
    env.push(json!({"name": ENV_PROGRESS_URL, "value": worker.progress_url.unwrap_or_default()}));
    if worker.progress_url.is_some() {
        mounts.push(json!({"name": "attempt", "mountPath": ATTEMPT_SECRET_DIR, "readOnly": true}));
        volumes.push(json!({"name": "attempt", "secret": {
            "secretName": reporting_secret_name(&name),
            "items": [{"key": PROGRESS_TOKEN_FILE, "path": PROGRESS_TOKEN_FILE}],
            "defaultMode": 0o440,
        }}));
    }
    let restricted = json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    let command: Vec<String> = [format!("{WORKER_DIR}/ephemera-worker"), "run".into(), "--".into()]
        .into_iter()
        .chain(spec.command.iter().cloned())
        .collect();
    let mut container = json!({
        "name": "task",
        "image": spec.image.clone().or_else(|| config.default_task_image.clone()).unwrap_or_else(|| config.worker_image.clone()),
        "command": command,
        "env": env,
        "securityContext": restricted,
        // `File` only: a log tail (which may print a credential) must never become `status.result`.
        "terminationMessagePolicy": "File",
        "workingDir": "/work",
        "volumeMounts": mounts,
    });
    let install = json!({
        "name": "install-worker",
        "image": config.worker_image,
        "command": [WORKER_IN_IMAGE, "install", format!("{WORKER_DIR}/ephemera-worker")],
        "securityContext": restricted,
        "resources": init_resources(),
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "ephemera-bin", "mountPath": WORKER_DIR}],
    });
    let mut init = vec![install];
    if let Some(step_env) = credentials_step {
        // Pull the Task's image and check the worker runs in it before anything is minted: tokens
        // handed to a task container that never starts would be revoked by no one.
        init.push(json!({
            "name": PREFLIGHT_CONTAINER,
            "image": container["image"],
            "command": [format!("{WORKER_DIR}/ephemera-worker"), "--version"],
            "securityContext": restricted,
            "resources": init_resources(),
            "terminationMessagePolicy": "File",
            "volumeMounts": [{"name": "ephemera-bin", "mountPath": WORKER_DIR, "readOnly": true}],
        }));
        init.push(json!({
            "name": CREDENTIALS_CONTAINER,
            "image": config.worker_image,
            "command": [WORKER_IN_IMAGE, "credentials"],
            "env": step_env,
            "securityContext": restricted,
            "resources": init_resources(),
            "terminationMessagePolicy": "File",
            "volumeMounts": [
                {"name": "secrets", "mountPath": SECRETS_DIR},
                {"name": "identity", "mountPath": IDENTITY_TOKEN_DIR, "readOnly": true},
            ],
        }));
    }
    if !spec.args.is_empty() {
        container["args"] = json!(spec.args);
    }
    let r = resources(spec.resources.as_ref(), &config.default_resources);
    container["resources"] = json!({"requests": r.requests, "limits": r.limits});
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": task.namespace(),
            "labels": {
                "app.kubernetes.io/name": "ephemera-worker",
                crate::names::MANAGED_BY.0: crate::names::MANAGED_BY.1,
                TASK_LABEL: task_label(&task.name_any()),
                ATTEMPT_LABEL: attempt.to_string(),
            },
            "annotations": {"kubectl.kubernetes.io/default-container": "task"},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": active_deadline.max(1),
            "terminationGracePeriodSeconds": config.termination_grace.as_secs(),
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": config.worker_uid,
                "runAsGroup": config.worker_uid,
                "fsGroup": config.worker_uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": init,
            "containers": [container],
            "volumes": volumes,
        },
    });
    serde_json::from_value(pod)
}

/// The task container's resources: the Task's own, plus the admin's default request and limit for
/// every resource the Task names neither for (so one never conflicts with the other).
pub fn resources(
    task: Option<&ephemera_crds::TaskResources>,
    defaults: &ephemera_crds::TaskResources,
) -> ephemera_crds::TaskResources {
    let mut out = task.cloned().unwrap_or_default();
    let named = |k: &String| out.requests.contains_key(k) || out.limits.contains_key(k);
    let add_requests: Vec<_> =
        defaults.requests.iter().filter(|(k, _)| !named(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let add_limits: Vec<_> =
        defaults.limits.iter().filter(|(k, _)| !named(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    out.requests.extend(add_requests);
    out.limits.extend(add_limits);
    out
}

/// Resources of the worker's own init containers (they copy a binary, or hold a few tokens).
fn init_resources() -> serde_json::Value {
    json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}})
}

/// Whether `pod` belongs to `task`'s `attempt` (guards against a same-named Pod of another Task).
pub fn is_ours(task: &Task, pod: &Pod) -> bool {
    let uid = task.meta().uid.as_deref();
    pod.metadata.owner_references.iter().flatten().any(|o| Some(o.uid.as_str()) == uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_containers_get_the_admins_defaults_for_what_their_task_leaves_open() {
        let d = crate::config::default_task_resources();
        let none = resources(None, &d);
        assert_eq!(none.requests["memory"], "256Mi");
        assert_eq!(none.limits["memory"], "2Gi");
        let mine: ephemera_crds::TaskResources =
            serde_json::from_value(serde_json::json!({"requests": {"memory": "4Gi"}, "limits": {"cpu": "2"}})).unwrap();
        let merged = resources(Some(&mine), &d);
        assert_eq!(merged.requests["memory"], "4Gi", "the Task's own request stands");
        assert!(!merged.limits.contains_key("memory"), "no default limit below the Task's own request");
        assert_eq!(merged.limits["cpu"], "2");
        assert!(!merged.requests.contains_key("cpu"), "no default request above the Task's own limit");
        assert_eq!(merged.limits["ephemeral-storage"], "4Gi");
    }

    #[test]
    fn pods_meet_the_restricted_profile() {
        let mut task = Task::new(
            "t",
            serde_json::from_value(serde_json::json!({"command": ["true"], "params": {"target-org": "x"}})).unwrap(),
        );
        task.metadata.namespace = Some("ns".into());
        task.metadata.uid = Some("u1".into());
        let worker = WorkerSettings { credentials: Vec::new(), vault: None, progress_url: None, handoff_url: None };
        let pod = worker_pod(&task, 1, 100, &Config::default(), &worker).unwrap();
        let v = serde_json::to_value(&pod).unwrap();
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(v["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(v["spec"]["automountServiceAccountToken"], false);
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        let env = c["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "EPHEMERA_PARAM_TARGET_ORG"));
        let reserved = env.iter().position(|e| e["name"] == "HOME").unwrap();
        assert!(
            reserved > env.iter().position(|e| e["name"] == "EPHEMERA_PARAM_TARGET_ORG").unwrap(),
            "reserved variables come last and win"
        );
        assert_eq!(c["command"], serde_json::json!(["/ephemera/bin/ephemera-worker", "run", "--", "true"]));
        assert_eq!(v["spec"]["initContainers"][0]["command"][1], "install");
        let volume_kinds: Vec<_> = v["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().unwrap().keys().find(|k| *k != "name").unwrap().clone())
            .collect();
        assert!(volume_kinds.iter().all(|k| k == "emptyDir"));
        // Settings the worker reads are never left for the image's `ENV` to supply.
        let set = |name: &str| env.iter().any(|e| e["name"] == name);
        for name in [
            ENV_WORKER_PROXY,
            ENV_WORKER_NO_PROXY,
            ENV_TERMINATION_LOG,
            ENV_RESULT_FILE,
            ENV_PROGRESS_URL,
            ENV_VAULT_ADDR,
            ENV_VAULT_CREATION_PATH,
            ENV_HANDOFF_URL,
            ENV_TASK_UID,
        ] {
            assert!(set(name), "{name} is set explicitly");
        }
    }
}
