//! The kubelet's runtime pieces against real parts, below the Pod lifecycle: an image pulled from the
//! loopback registry by the OCI distribution API, combined with a Pod spec into a runc config, and
//! run by runc under the restricted profile the operator gives worker Pods. The test command builds the
//! test images and exports the registry as `EPHEMERA_TEST_REGISTRY` (host:port).

use std::process::Command;

use ephemera_devcluster::kubelet::bundle::{self, ImageConfig};
use ephemera_devcluster::kubelet::pull::{PullError, PullPolicy, Puller};
use serde_json::{json, Value};

/// Runs `spec` with runc in a fresh bundle directory; answers (exit code, stdout).
fn run(spec: &Value, id: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
    let id = format!("ephemera-test-{id}-{}", std::process::id());
    let out = Command::new("runc").args(["run", "--bundle"]).arg(dir.path()).arg(&id).output().expect("runc runs");
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            if stderr.is_empty() { String::new() } else { format!("[stderr] {stderr}") }
        ),
    )
}

fn restricted_pod(command: &[&str], extra: Value) -> (Value, Value) {
    let mut container = json!({"name": "task", "command": command, "securityContext": {
        "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
        "runAsUser": 65532, "capabilities": {"drop": ["ALL"]}}});
    if let Some(m) = extra.as_object() {
        container.as_object_mut().unwrap().extend(m.clone());
    }
    let pod = json!({"metadata": {"name": "t", "namespace": "default", "uid": "u"}, "spec": {"containers": [container.clone()]}});
    (pod, container)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_pulled_from_the_registry_runs_under_runc_with_the_restricted_profile() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = crate::common::test_registry();
    let store = tempfile::tempdir().unwrap();
    let puller = Puller::new(store.path().to_path_buf(), vec![registry.clone()], Default::default());
    let image = format!("{registry}/ephemera-test/busybox:1.35");

    // Pull policy and the registry's own answers.
    let never = puller.pull(&image, PullPolicy::Never, None).await.unwrap_err();
    assert_eq!(never.reason(), "ErrImageNeverPull");
    let missing =
        puller.pull(&format!("{registry}/ephemera-test/busybox:absent"), PullPolicy::IfNotPresent, None).await;
    let Err(PullError::Pull(why)) = missing else { panic!("{missing:?}") };
    assert!(why.contains("busybox:absent") && why.to_lowercase().contains("manifest unknown"), "{why}");
    let pulled = puller.pull(&image, PullPolicy::IfNotPresent, None).await.unwrap();
    assert!(pulled.image_id.starts_with(&format!("{registry}/ephemera-test/busybox@sha256:")), "{}", pulled.image_id);
    assert_eq!(
        pulled.config,
        ImageConfig { cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], ..Default::default() }
    );
    let cached = puller.pull(&image, PullPolicy::Never, None).await.unwrap();
    assert_eq!(cached.image_id, pulled.image_id, "on the node now");

    // The image's user is root: runAsNonRoot without runAsUser refuses it as the kubelet does.
    let (pod, mut c) = restricted_pod(&["id"], json!({}));
    c["securityContext"].as_object_mut().unwrap().remove("runAsUser");
    let refused = bundle::bundle(&pulled.config, &pulled.accounts, &pod, &c, &[], None, None).unwrap_err();
    assert_eq!(refused.reason(), "CreateContainerConfigError");

    // Restricted: non-root, no capabilities, no_new_privs, read-only root.
    let probe = "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; \
        touch /x 2>/dev/null && echo writable || echo read-only; \
        chown 0 /tmp 2>/dev/null && echo chowned || echo no-chown";
    let (pod, c) = restricted_pod(&["sh", "-c", probe], json!({}));
    let command = Some(vec!["sh".to_string(), "-c".to_string(), probe.to_string()]);
    let b = bundle::bundle(&pulled.config, &pulled.accounts, &pod, &c, &[], command, None).unwrap();
    let spec = bundle::runtime_spec(&b, pulled.rootfs.to_str().unwrap(), "t", &[]);
    let (code, out) = run(&spec, "restricted");
    assert_eq!(code, 0, "{out}");
    // CapEff 0 also means no CAP_NET_RAW: no raw sockets (ping may still work through unprivileged
    // ICMP sockets where the host's ping_group_range allows them, so it proves nothing here).
    assert_eq!(out, "65532\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nread-only\nno-chown\n");

    // RuntimeDefault seccomp: no new namespaces and no mounts, even as root with the default
    // capabilities; the same container Unconfined may create a user namespace, so the filter is
    // what refuses it.
    let probe = "unshare -U true 2>/dev/null && echo unshared || echo no-unshare; \
        mount -t tmpfs t /tmp 2>/dev/null && echo mounted || echo no-mount";
    let command = Some(vec!["sh".to_string(), "-c".to_string(), probe.to_string()]);
    for (kind, want) in [("RuntimeDefault", "no-unshare\nno-mount\n"), ("Unconfined", "unshared\nno-mount\n")] {
        let c = json!({"name": "task", "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true,
            "seccompProfile": {"type": kind}}});
        let pod =
            json!({"metadata": {"name": "t", "namespace": "default", "uid": "u"}, "spec": {"containers": [c.clone()]}});
        let b = bundle::bundle(&pulled.config, &pulled.accounts, &pod, &c, &[], command.clone(), None).unwrap();
        let (code, out) = run(&bundle::runtime_spec(&b, pulled.rootfs.to_str().unwrap(), "t", &[]), kind);
        assert_eq!((code, out.as_str()), (0, want), "{kind}");
    }

    // A memory limit is a cgroup limit: past it the kernel kills the container (exit 137).
    let hog = "head -c 200m /dev/zero | tail > /dev/null";
    let (pod, c) = restricted_pod(&["sh", "-c", hog], json!({"resources": {"limits": {"memory": "32Mi"}}}));
    let command = Some(vec!["sh".to_string(), "-c".to_string(), hog.to_string()]);
    let b = bundle::bundle(&pulled.config, &pulled.accounts, &pod, &c, &[], command, None).unwrap();
    assert_eq!(b.memory_limit, Some(32 * 1024 * 1024));
    let (code, _) = run(&bundle::runtime_spec(&b, pulled.rootfs.to_str().unwrap(), "t", &[]), "oom");
    assert_eq!(code, 137, "killed by the OOM killer at the memory limit");
    let (pod, c) = restricted_pod(&["sh", "-c", hog], json!({}));
    let command = Some(vec!["sh".to_string(), "-c".to_string(), hog.to_string()]);
    let b = bundle::bundle(&pulled.config, &pulled.accounts, &pod, &c, &[], command, None).unwrap();
    let (code, out) = run(&bundle::runtime_spec(&b, pulled.rootfs.to_str().unwrap(), "t", &[]), "no-limit");
    assert_eq!(code, 0, "the same command without the limit finishes: {out}");
}
