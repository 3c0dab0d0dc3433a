//! The kubelet's Pod lifecycle: Pods created through the API run (busybox from the test registry,
//! under runc) with the lifecycle and status a real kubelet reports, checked through kube-rs and
//! kubectl. Image and runtime specifics are in `images.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use crate::common::{eventually, ok, Dev};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::json;

async fn dev() -> Dev {
    Dev::start_with(|c| {
        if let Some(k) = c.kubelet.as_mut() {
            k.backoff_base = Duration::from_millis(500);
        }
    })
    .await
}

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

async fn create(api: &Api<Pod>, v: serde_json::Value) -> Pod {
    api.create(&PostParams::default(), &pod(v)).await.unwrap()
}

/// Waits until the Pod's phase is one of `phases`.
async fn phase(api: &Api<Pod>, name: &str, phases: &[&str]) -> Pod {
    eventually(30, &format!("pod {name} in {phases:?}"), || {
        let api = api.clone();
        let name = name.to_string();
        let phases: Vec<String> = phases.iter().map(|p| p.to_string()).collect();
        async move {
            let p = api.get(&name).await.ok()?;
            let ph = p.status.as_ref()?.phase.clone()?;
            phases.contains(&ph).then_some(p)
        }
    })
    .await
}

fn terminated(p: &Pod, i: usize) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    p.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[i]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .expect("terminated state")
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_pod_reports_exit_code_and_logs() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "hi"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi; exit 3"]}]}})).await;
    let p = phase(&pods, "hi", &["Failed"]).await;
    let t = terminated(&p, 0);
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert_eq!(ok(dev.kubectl(&["logs", "hi"])), "hi\n");
    let conds: Vec<(String, String)> =
        p.status.unwrap().conditions.unwrap().into_iter().map(|c| (c.type_, c.status)).collect();
    assert!(
        conds.contains(&("PodScheduled".into(), "True".into())) && conds.contains(&("Ready".into(), "False".into())),
        "{conds:?}"
    );
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("devcluster-node"));
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_process_as_files_and_env() {
    let dev = dev().await;
    let client = dev.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret", "user": "bob"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create(&pods, json!({"metadata": {"name": "s"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox:1.35",
            "command": ["sh", "-c", "cat /etc/creds/password; echo; echo user=$USER_NAME; stat -c %a /etc/creds/password; cat /etc/creds/sub/pw"],
            "env": [{"name": "USER_NAME", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}],
            "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": true}]}],
        "volumes": [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400, "items": [{"key": "password", "path": "password"}, {"key": "password", "path": "sub/pw"}]}}]}})).await;
    let p = phase(&pods, "s", &["Succeeded", "Failed"]).await;
    let logs = pods.logs("s", &LogParams::default()).await.unwrap();
    assert_eq!(logs, "s3cret\nuser=bob\n400\ns3cret", "phase {:?}", p.status.unwrap().phase);
    assert!(!std::path::Path::new("/etc/creds/password").exists(), "the mount is private to the container");

    // With an fsGroup, a non-root process reads a 0400 key: the kubelet gives the group read (0440).
    create(
        &pods,
        json!({"metadata": {"name": "g"}, "spec": {"restartPolicy": "Never",
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
        "containers": [{"name": "c", "image": "busybox:1.35",
            "command": ["sh", "-c", "stat -c '%a %g' /etc/creds/password; cat /etc/creds/password"],
            "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": true}]}],
        "volumes": [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}]}}),
    )
    .await;
    phase(&pods, "g", &["Succeeded", "Failed"]).await;
    assert_eq!(pods.logs("g", &LogParams::default()).await.unwrap(), "440 2000\ns3cret");
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_with_the_same_mount_path_are_isolated() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    for (name, word) in [("a", "apple"), ("b", "banana")] {
        create(&pods, json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", format!("echo {word} > /scratch/file; sleep 1; ls /scratch; cat /scratch/file")],
                "volumeMounts": [{"name": "s", "mountPath": "/scratch"}]}],
            "volumes": [{"name": "s", "emptyDir": {}}]}})).await;
    }
    for (name, word) in [("a", "apple"), ("b", "banana")] {
        phase(&pods, name, &["Succeeded"]).await;
        assert_eq!(pods.logs(name, &LogParams::default()).await.unwrap(), format!("file\n{word}\n"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn active_deadline_fails_the_pod_at_the_deadline_then_stops_its_containers_with_their_grace() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "slow"}, "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 1, "terminationGracePeriodSeconds": 8,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}]}})).await;
    // The phase and reason come at the deadline, while the container (ignoring SIGTERM) still runs.
    let p = phase(&pods, "slow", &["Failed"]).await;
    let st = p.status.clone().unwrap();
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    let c = &st.container_statuses.clone().unwrap()[0];
    assert!(c.state.as_ref().unwrap().running.is_some(), "still in its grace period: {c:?}");
    let p = eventually(30, "the container killed after its grace", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("slow").await.ok()?;
            let st = p.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.terminated.clone();
            st.map(|_| p)
        }
    })
    .await;
    assert_eq!(terminated(&p, 0).exit_code, 137, "sleep ignores SIGTERM as PID 1, so it is killed");
    assert_eq!(p.status.unwrap().reason.as_deref(), Some("DeadlineExceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_running_pod_sends_sigterm_first() {
    use futures::StreamExt;
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "t"}, "spec": {"terminationGracePeriodSeconds": 20,
        "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "trap 'echo got TERM > /dev/termination-log; exit 0' TERM; echo up; while true; do sleep 0.1; done"]}]}})).await;
    let running = phase(&pods, "t", &["Running"]).await;
    eventually(10, "container output", || {
        let pods = pods.clone();
        async move { pods.logs("t", &LogParams::default()).await.ok().filter(|l| l.contains("up")) }
    })
    .await;
    let rv = running.metadata.resource_version.clone().unwrap();
    let mut events = pods
        .watch(&kube::api::WatchParams::default().fields("metadata.name=t").timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    pods.delete("t", &DeleteParams::default()).await.unwrap();
    let marked = pods.get("t").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "graceful deletion keeps the object until the kubelet is done"
    );
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(20));
    // The last state the kubelet reports before removing the Pod shows the process handled SIGTERM.
    let mut last_terminated = None;
    while let Some(Ok(ev)) = events.next().await {
        match ev {
            kube::api::WatchEvent::Modified(p) => {
                if let Some(t) = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .and_then(|c| c[0].state.clone())
                    .and_then(|s| s.terminated)
                {
                    last_terminated = Some(t);
                }
            }
            kube::api::WatchEvent::Deleted(_) => break,
            _ => {}
        }
    }
    let t = last_terminated.expect("a terminated state before deletion");
    assert_eq!((t.exit_code, t.message.as_deref()), (0, Some("got TERM\n")));
    assert!(pods.get_opt("t").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn projected_service_account_token_passes_token_review() {
    let dev = dev().await;
    let client = dev.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create(&pods, json!({"metadata": {"name": "tok"}, "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "cat /var/run/tok/token; echo; test -e /var/run/secrets/kubernetes.io/serviceaccount/token && echo mounted || echo none"],
            "volumeMounts": [{"name": "tok", "mountPath": "/var/run/tok"}]}],
        "volumes": [{"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}}]}}]}})).await;
    phase(&pods, "tok", &["Succeeded"]).await;
    let out = pods.logs("tok", &LogParams::default()).await.unwrap();
    let mut lines = out.lines();
    let token = lines.next().unwrap().to_string();
    assert_eq!(lines.next(), Some("none"), "automount disabled: no default token mounted");
    let reviews: Api<TokenReview> = Api::all(client);
    let review =
        TokenReview { spec: TokenReviewSpec { token, audiences: Some(vec!["vault".into()]) }, ..Default::default() };
    let status = reviews.create(&PostParams::default(), &review).await.unwrap().status.unwrap();
    assert_eq!(status.authenticated, Some(true), "{:?}", status.error);
    let user = status.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:serviceaccount:default:default"));
    assert_eq!(user.extra.unwrap()["authentication.kubernetes.io/pod-name"], vec!["tok".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn init_containers_run_first_and_in_order() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "init"}, "spec": {"restartPolicy": "Never",
        "initContainers": [
            {"name": "one", "image": "busybox", "command": ["sh", "-c", "echo one >> /w/order"], "volumeMounts": [{"name": "w", "mountPath": "/w"}]},
            {"name": "two", "image": "busybox", "command": ["sh", "-c", "echo two >> /w/order"], "volumeMounts": [{"name": "w", "mountPath": "/w"}]}],
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo main >> /w/order; cat /w/order"], "volumeMounts": [{"name": "w", "mountPath": "/w"}]}],
        "volumes": [{"name": "w", "emptyDir": {}}]}})).await;
    let p = phase(&pods, "init", &["Succeeded"]).await;
    assert_eq!(
        pods.logs("init", &LogParams { container: Some("main".into()), ..Default::default() }).await.unwrap(),
        "one\ntwo\nmain\n"
    );
    let inits = p.status.unwrap().init_container_statuses.unwrap();
    assert!(inits
        .iter()
        .all(|s| s.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref() == Some("Completed")));
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_reasons_match_the_kubelet() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "img"}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}))
        .await;
    create(
        &pods,
        json!({"metadata": {"name": "cfg"}, "spec": {"containers": [{"name": "c", "image": "busybox",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]}]}}),
    )
    .await;
    let waiting = |name: &'static str, want: &'static [&'static str]| {
        let pods = pods.clone();
        async move {
            eventually(20, &format!("{name} waiting with {want:?}"), || {
                let pods = pods.clone();
                async move {
                    let p = pods.get(name).await.ok()?;
                    let w = p.status?.container_statuses?.first()?.state.clone()?.waiting?;
                    let r = w.reason?;
                    want.contains(&r.as_str()).then_some((r, w.message.unwrap_or_default()))
                }
            })
            .await
        }
    };
    let (_, msg) = waiting("img", &["ErrImagePull", "ImagePullBackOff"]).await;
    assert!(msg.contains("nginx:1.27"), "{msg}");
    waiting("img", &["ImagePullBackOff"]).await;
    let (_, msg) = waiting("cfg", &["CreateContainerConfigError"]).await;
    assert_eq!(msg, "secret \"absent\" not found");
    assert_eq!(pods.get("img").await.unwrap().status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_policies_restart_with_backoff_and_keep_termination_messages() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    // The counter lives in an emptyDir: it survives container restarts, as on a real node.
    create(&pods, json!({"metadata": {"name": "flaky"}, "spec": {"restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "busybox", "terminationMessagePolicy": "FallbackToLogsOnError",
            "command": ["sh", "-c", "echo x >> /state/runs; n=$(wc -l < /state/runs); if [ $n -lt 3 ]; then echo failing run $n; exit 1; fi; echo finished > /dev/termination-log"],
            "volumeMounts": [{"name": "state", "mountPath": "/state"}]}],
        "volumes": [{"name": "state", "emptyDir": {}}]}})).await;
    let p = phase(&pods, "flaky", &["Succeeded"]).await;
    let st = &p.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert_eq!(st.restart_count, 2);
    assert_eq!(terminated(&p, 0).message.as_deref(), Some("finished\n"));
    let last = st.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (last.exit_code, last.message.as_deref()),
        (1, Some("failing run 2\n")),
        "logs stand in for an empty message on error"
    );
    let previous = pods.logs("flaky", &LogParams { previous: true, ..Default::default() }).await.unwrap();
    assert_eq!(previous, "failing run 2\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_follow_streams_until_the_container_ends() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "f"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done"]}]}})).await;
    phase(&pods, "f", &["Running", "Succeeded"]).await;
    let out = ok(dev.kubectl(&["logs", "-f", "f"]));
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    let tail = ok(dev.kubectl(&["logs", "f", "--tail=1", "--timestamps"]));
    assert!(tail.ends_with(" line 3\n") && tail.starts_with("20"), "{tail}");
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_with_data_dir_does_not_leave_phantom_running_pods() {
    let data = tempfile::tempdir().unwrap();
    let (kubeconfig, port) = {
        let dev = Dev::start_with(|c| c.data_dir = Some(data.path().to_path_buf())).await;
        let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
        create(
            &pods,
            json!({"metadata": {"name": "long"}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}]}}),
        )
        .await;
        phase(&pods, "long", &["Running"]).await;
        (std::fs::read_to_string(&dev.kubeconfig).unwrap(), dev.cluster.addr().port())
    };
    let _ = kubeconfig;
    // Same data directory, new process-equivalent: the old container is gone.
    let dev = Dev::start_with(|c| {
        c.data_dir = Some(data.path().to_path_buf());
        c.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    let p = pods.get("long").await.unwrap();
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    assert_eq!(terminated(&p, 0).reason.as_deref(), Some("ContainerStatusUnknown"));
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_have_their_own_hostname_and_process_tree() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    create(&pods, json!({"metadata": {"name": "ns-check"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "hostname; cat /proc/1/comm; test $(ls /proc | grep -c '^[0-9]') -lt 10 && echo few-processes"]}]}})).await;
    phase(&pods, "ns-check", &["Succeeded"]).await;
    assert_eq!(pods.logs("ns-check", &LogParams::default()).await.unwrap(), "ns-check\nsh\nfew-processes\n");
    let wide = ok(dev.kubectl(&["get", "pod", "ns-check", "-o", "wide", "--no-headers"]));
    assert!(wide.contains("127.0.0.1") && wide.contains("devcluster-node"), "{wide}");
}

#[tokio::test(flavor = "multi_thread")]
async fn container_writes_stay_in_the_container_and_security_context_applies() {
    let dev = dev().await;
    let pods: Api<Pod> = Api::namespaced(dev.client().await, "default");
    let leak = format!("/tmp/ephemera-leak-{}", std::process::id());
    create(&pods, json!({"metadata": {"name": "w"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", format!("echo x > {leak} && cat {leak}")]}]}})).await;
    phase(&pods, "w", &["Succeeded"]).await;
    assert_eq!(pods.logs("w", &LogParams::default()).await.unwrap(), "x\n");
    assert!(!std::path::Path::new(&leak).exists(), "the write went to the container's own layer");

    create(&pods, json!({"metadata": {"name": "ro"}, "spec": {"restartPolicy": "Never",
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": true},
        "containers": [{"name": "c", "image": "busybox",
            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
            "command": ["sh", "-c", "id -u; id -g; touch /root-file 2>/dev/null && echo wrote-root || echo read-only; touch /scratch/f && echo wrote-scratch"],
            "volumeMounts": [{"name": "s", "mountPath": "/scratch"}]}],
        "volumes": [{"name": "s", "emptyDir": {}}]}})).await;
    let p = phase(&pods, "ro", &["Succeeded", "Failed"]).await;
    assert_eq!(
        pods.logs("ro", &LogParams::default()).await.unwrap(),
        "1000\n3000\nread-only\nwrote-scratch\n",
        "{:?}",
        p.status
    );
}
