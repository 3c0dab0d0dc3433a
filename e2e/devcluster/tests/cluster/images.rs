//! The kubelet runs images: pulled from a registry by the OCI distribution API (the loopback test
//! registry, as the node's mirror of Docker Hub), run with runc under the Pod's security context and
//! limits, with the waiting and terminated reasons a real kubelet reports. Checked through kubectl
//! and kube-rs.

use std::io::BufRead as _;
use std::time::Duration;

use crate::common::{eventually, ok, test_registry, Dev};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use serde_json::{json, Value};

async fn dev() -> Dev {
    Dev::start_with(|c| {
        if let Some(k) = c.kubelet.as_mut() {
            k.backoff_base = Duration::from_millis(500);
        }
    })
    .await
}

async fn create(api: &Api<Pod>, v: Value) {
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap()).await.unwrap();
}

/// Waits until kubectl's jsonpath over the Pod gives `want` (one of them).
async fn wait_jsonpath(dev: &Dev, pod: &str, path: &str, want: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let out = dev.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
        let got = String::from_utf8_lossy(&out.stdout).to_string();
        if want.contains(&got.as_str()) {
            return got;
        }
        assert!(std::time::Instant::now() < deadline, "pod {pod}: {path} is {got:?}, want one of {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn finished(api: &Api<Pod>, name: &str) -> Pod {
    eventually(60, &format!("pod {name} finished"), || async {
        let p = api.get(name).await.ok()?;
        matches!(p.status.as_ref()?.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(p)
    })
    .await
}

async fn logs(api: &Api<Pod>, name: &str) -> String {
    api.logs(name, &LogParams::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_missing_from_the_registry_is_err_image_pull_then_image_pull_back_off() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "absent"}, "spec": {"containers": [{"name": "c", "image": "busybox:no-such-tag"}]}})).await;
    let waiting = "{.status.containerStatuses[0].state.waiting.reason}";
    wait_jsonpath(&dev, "absent", waiting, &["ErrImagePull", "ImagePullBackOff"]).await;
    wait_jsonpath(&dev, "absent", waiting, &["ImagePullBackOff"]).await;
    let p = pods.get("absent").await.unwrap();
    let st = p.status.unwrap();
    let w = st.container_statuses.unwrap()[0].state.clone().unwrap().waiting.unwrap();
    let msg = w.message.unwrap_or_default();
    // The registry's own answer, through the kubelet's wording.
    assert!(msg.starts_with("Back-off pulling image \"busybox:no-such-tag\": ErrImagePull: "), "{msg}");
    assert!(msg.to_lowercase().contains("manifest unknown"), "{msg}");
    assert_eq!(st.phase.as_deref(), Some("Pending"));

    // `Never` with an image the node does not have.
    create(
        &pods,
        json!({"metadata": {"name": "never"}, "spec": {"containers": [{"name": "c",
        "image": "busybox:never-pulled", "imagePullPolicy": "Never"}]}}),
    )
    .await;
    wait_jsonpath(&dev, "never", waiting, &["ErrImageNeverPull"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pulled_image_runs_with_its_digest_reported_as_image_id() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "id"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c",
        "image": "busybox", "command": ["sh", "-c", "cat /etc/hostname; grep -c id /etc/hosts; echo $PATH; echo $HOME"]}]}}))
    .await;
    let p = finished(&pods, "id").await;
    let st = &p.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert!(st.image_id.starts_with("docker.io/library/busybox@sha256:"), "{}", st.image_id);
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    // The image's PATH, the kubelet's /etc/hosts and hostname, HOME from the image's passwd.
    assert_eq!(logs(&pods, "id").await, "id\n1\n/bin\n/root\n");
    // The same image by the digest the node reported.
    let digest = st.image_id.rsplit('@').next().unwrap().to_string();
    create(
        &pods,
        json!({"metadata": {"name": "by-digest"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c",
        "image": format!("busybox@{digest}"), "command": ["true"]}]}}),
    )
    .await;
    let p = finished(&pods, "by-digest").await;
    assert_eq!(p.status.unwrap().container_statuses.unwrap()[0].image_id, st.image_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_that_allocates_past_its_memory_limit_is_oom_killed() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    let hog = "head -c 200m /dev/zero | tail > /dev/null";
    create(
        &pods,
        json!({"metadata": {"name": "hog"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c",
        "image": "busybox", "command": ["sh", "-c", hog],
        "resources": {"limits": {"memory": "32Mi", "cpu": "500m"}}}]}}),
    )
    .await;
    let p = finished(&pods, "hog").await;
    let status = p.status.unwrap();
    let t = status.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"), "limits alone default the requests");
    let reason =
        wait_jsonpath(&dev, "hog", "{.status.containerStatuses[0].state.terminated.reason}", &["OOMKilled"]).await;
    assert_eq!(reason, "OOMKilled");

    // Without the limit the same command finishes.
    create(
        &pods,
        json!({"metadata": {"name": "no-limit"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c",
        "image": "busybox", "command": ["sh", "-c", hog]}]}}),
    )
    .await;
    let p = finished(&pods, "no-limit").await;
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(p.status.unwrap().qos_class.as_deref(), Some("BestEffort"));
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_and_seccomp_refuse_chown_raw_sockets_unshare_and_mount() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    let probe = "chown 1 /tmp 2>/dev/null && echo chown || echo no-chown; \
        ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo raw-socket || echo no-raw-socket; \
        unshare -U true 2>/dev/null && echo unshare || echo no-unshare; \
        mount -t tmpfs t /tmp 2>/dev/null && echo mount || echo no-mount";
    // All as root (the image's user), so only capabilities and the filter differ.
    let cases = [
        ("unconfined", json!({"seccompProfile": {"type": "Unconfined"}}), "chown\nraw-socket\nunshare\nno-mount\n"),
        (
            "drop-all",
            json!({"capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Unconfined"}}),
            "no-chown\nno-raw-socket\nunshare\nno-mount\n",
        ),
        (
            "runtime-default",
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            "chown\nraw-socket\nno-unshare\nno-mount\n",
        ),
        (
            "privileged",
            json!({"privileged": true, "seccompProfile": {"type": "Unconfined"}}),
            "chown\nraw-socket\nunshare\nmount\n",
        ),
    ];
    for (name, sc, _) in &cases {
        create(
            &pods,
            json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c",
            "image": "busybox", "command": ["sh", "-c", probe], "securityContext": sc}]}}),
        )
        .await;
    }
    for (name, _, want) in &cases {
        finished(&pods, name).await;
        assert_eq!(&logs(&pods, name).await, want, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_as_non_root_refuses_an_image_whose_user_is_root() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(
        &pods,
        json!({"metadata": {"name": "rootimg"}, "spec": {"securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}),
    )
    .await;
    wait_jsonpath(
        &dev,
        "rootimg",
        "{.status.containerStatuses[0].state.waiting.reason}",
        &["CreateContainerConfigError"],
    )
    .await;
    let msg = ok(dev.kubectl(&[
        "get",
        "pod",
        "rootimg",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.message}",
    ]));
    assert!(msg.starts_with("container has runAsNonRoot and image will run as root (pod: \"rootimg_default("), "{msg}");
    // The same Pod with a non-root user runs.
    create(
        &pods,
        json!({"metadata": {"name": "nonroot"}, "spec": {"restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65534},
        "containers": [{"name": "c", "image": "busybox", "command": ["id", "-u"]}]}}),
    )
    .await;
    finished(&pods, "nonroot").await;
    assert_eq!(logs(&pods, "nonroot").await, "65534\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_missing_from_the_image_is_a_start_error() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(
        &pods,
        json!({"metadata": {"name": "nocmd"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["/no/such/program"]}]}}),
    )
    .await;
    let p = finished(&pods, "nocmd").await;
    let t = p.status.unwrap().container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("StartError"), 128));
    assert!(t.message.unwrap_or_default().contains("/no/such/program"));
    assert_eq!(logs(&pods, "nocmd").await, "", "runtime errors are not the container's output");
}

/// The Pod's first container waits on a pull the registry refused for its credentials.
fn assert_unauthorized(dev: &Dev, pod: &str) {
    let msg =
        ok(dev.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"]));
    let lower = msg.to_lowercase();
    assert!(lower.contains("not authorized") || lower.contains("unauthorized") || lower.contains("401"), "{msg}");
}

/// A registry gate wanting Basic credentials in front of the test registry; answers its `host:port`.
fn auth_registry(user: &str, password: &str) -> (std::process::Child, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/auth_registry.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args([&test_registry(), user, password])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, format!("127.0.0.1:{}", line.trim()))
}

#[tokio::test(flavor = "multi_thread")]
async fn image_pull_secrets_authenticate_pulls_from_a_private_registry() {
    let (mut gate, private) = auth_registry("ci-bot", "s3cret:with-colon");
    let p = private.clone();
    let dev = Dev::start_with(move |c| {
        if let Some(k) = c.kubelet.as_mut() {
            k.backoff_base = Duration::from_millis(500);
            k.registries.insecure.push(p);
        }
    })
    .await;
    let client = dev.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let image = format!("{private}/ephemera-test/busybox:1.35");
    create(
        &pods,
        json!({"metadata": {"name": "anon"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": image, "command": ["true"]}]}}),
    )
    .await;
    wait_jsonpath(
        &dev,
        "anon",
        "{.status.containerStatuses[0].state.waiting.reason}",
        &["ErrImagePull", "ImagePullBackOff"],
    )
    .await;
    assert_unauthorized(&dev, "anon");

    // The secret as `kubectl create secret docker-registry` makes it.
    ok(dev.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={private}"),
        "--docker-username=ci-bot",
        "--docker-password=s3cret:with-colon",
    ]));
    let kind = ok(dev.kubectl(&["get", "secret", "regcred", "-o", "jsonpath={.type}"]));
    assert_eq!(kind, "kubernetes.io/dockerconfigjson");
    create(
        &pods,
        json!({"metadata": {"name": "authed"}, "spec": {"restartPolicy": "Never",
        "imagePullSecrets": [{"name": "missing"}, {"name": "regcred"}],
        "containers": [{"name": "c", "image": image, "command": ["echo", "pulled"]}]}}),
    )
    .await;
    let p = finished(&pods, "authed").await;
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(logs(&pods, "authed").await, "pulled\n");
    // A wrong password is refused by the registry.
    let wrong =
        json!({"auths": {private.clone(): {"auth": base64::engine::general_purpose::STANDARD.encode("ci-bot:nope")}}});
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "wrong"}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(wrong.to_string())}}))
            .unwrap(),
        )
        .await
        .unwrap();
    create(&pods, json!({"metadata": {"name": "wrong"}, "spec": {"restartPolicy": "Never", "imagePullSecrets": [{"name": "wrong"}],
        // Always: the node has the image by now and would otherwise run it without asking.
        "containers": [{"name": "c", "image": image, "imagePullPolicy": "Always", "command": ["true"]}]}}))
    .await;
    wait_jsonpath(
        &dev,
        "wrong",
        "{.status.containerStatuses[0].state.waiting.reason}",
        &["ErrImagePull", "ImagePullBackOff"],
    )
    .await;
    assert_unauthorized(&dev, "wrong");
    let _ = gate.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_deleted_while_its_registry_stalls_goes_at_once() {
    // A registry that accepts connections and never answers.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = stalled.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = stalled.accept().await {
            conns.push(c);
        }
    });
    let h = host.clone();
    let dev = Dev::start_with(move |c| {
        if let Some(k) = c.kubelet.as_mut() {
            k.registries.insecure.push(h);
        }
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(
        &pods,
        json!({"metadata": {"name": "stuck"}, "spec": {"containers": [{"name": "c",
        "image": format!("{host}/ephemera-test/busybox:1.35")}]}}),
    )
    .await;
    wait_jsonpath(&dev, "stuck", "{.status.containerStatuses[0].state.waiting.reason}", &["ContainerCreating"]).await;
    let started = std::time::Instant::now();
    ok(dev.kubectl(&["delete", "pod", "stuck", "--wait=true", "--timeout=30s"]));
    assert!(started.elapsed() < Duration::from_secs(20), "the pull was abandoned, not waited out");
    held.abort();
}
