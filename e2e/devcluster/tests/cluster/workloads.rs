//! Deployments, ReplicaSets and Services on the local node, as `kubectl` users see them: a
//! Deployment rolls out (and rolls again when its template changes), its Service gets a ClusterIP
//! and the ready Pods as endpoints, the ClusterIP forwards to them, and Pods reach the Service by
//! its DNS name.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use crate::common::{eventually, ok, Dev};

/// A free port below the kernel's ephemeral range (32768-60999), for a container to bind seconds
/// later: a port from `bind(0)` can be handed to another test's `bind(0)` or outgoing connection
/// in between, and the probe then talks to that stranger instead.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919);
    for _ in 0..12_000 {
        let port = 20_000 + (seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000);
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999")
}

fn manifests(port: u16, greeting: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  replicas: 1
  strategy: {{type: Recreate}}
  # httpd is PID 1 and ignores SIGTERM: no need to wait the default 30 s for it.
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        command: [sh, -c, 'mkdir -p /tmp/www && echo "$GREETING" > /tmp/www/index.html && exec httpd -f -p {port} -h /tmp/www']
        env: [{{name: GREETING, value: {greeting}}}]
        ports: [{{name: http, containerPort: {port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

/// GET / through the Service's ClusterIP, from the host.
async fn through_cluster_ip(ip: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect((ip, 80)).await.ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n").await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_rolls_out_behind_its_service_and_rolls_again_on_a_new_template() {
    let dev = Dev::start().await;
    let port = free_port();
    ok(dev.kubectl_stdin(&["apply", "-f", "-"], &manifests(port, "v1")));
    ok(dev.kubectl(&["rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s"]));

    // Every namespace gets the cluster's CA, as Pods projecting kube-root-ca.crt expect.
    let ca =
        ok(dev.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "shop", "-o", "jsonpath={.data.ca\\.crt}"]));
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");

    let ip = ok(dev.kubectl(&["get", "service", "web", "-n", "shop", "-o", "jsonpath={.spec.clusterIP}"]));
    assert!(ip.starts_with("127.96."), "{ip}");
    let endpoints =
        ok(dev.kubectl(&["get", "endpoints", "web", "-n", "shop", "-o", "jsonpath={.subsets[0].ports[0].port}"]));
    assert_eq!(endpoints, port.to_string());
    let body = eventually(30, "the ClusterIP answers", || {
        let ip = ip.clone();
        async move { through_cluster_ip(&ip).await.filter(|b| !b.is_empty()) }
    })
    .await;
    assert_eq!(body, "v1");

    // A Pod reaches the Service by its DNS name.
    ok(dev.kubectl(&[
        "run",
        "client",
        "-n",
        "shop",
        "--image=busybox",
        "--restart=Never",
        "--",
        "wget",
        "-qO-",
        "http://web.shop.svc.cluster.local/",
    ]));
    eventually(30, "the client Pod succeeds", || async {
        let phase = ok(dev.kubectl(&["get", "pod", "client", "-n", "shop", "-o", "jsonpath={.status.phase}"]));
        (phase == "Succeeded").then_some(())
    })
    .await;
    assert_eq!(ok(dev.kubectl(&["logs", "client", "-n", "shop"])).trim(), "v1");

    // A new template is a new ReplicaSet; the old one is scaled to zero and kept as history. (Applied
    // server-side, as Helm 4 does: the defaulted fields the manifest leaves out come back.)
    ok(dev.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &manifests(port, "v2")));
    ok(dev.kubectl(&["rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s"]));
    let sets = ok(dev.kubectl(&[
        "get", "replicasets", "-n", "shop", "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.deployment\\.kubernetes\\.io/revision}={.spec.replicas} {end}",
    ]));
    let mut sets: Vec<&str> = sets.split_whitespace().collect();
    sets.sort_unstable();
    assert_eq!(sets, vec!["1=0", "2=1"]);
    let body = eventually(30, "the ClusterIP serves the new Pod", || {
        let ip = ip.clone();
        async move { through_cluster_ip(&ip).await.filter(|b| b == "v2") }
    })
    .await;
    assert_eq!(body, "v2");
    let history = ok(dev.kubectl(&["rollout", "history", "deployment/web", "-n", "shop"]));
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Deleting the Deployment takes its ReplicaSets and Pods with it.
    ok(dev.kubectl(&["delete", "deployment", "web", "-n", "shop", "--wait=true"]));
    eventually(60, "the Deployment's Pods are gone", || async {
        let left = ok(dev.kubectl(&["get", "pods", "-n", "shop", "-l", "app=web", "-o", "name"]));
        left.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ok(dev.kubectl(&["get", "replicasets", "-n", "shop", "-o", "name"])), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_hold_readiness_until_they_pass_and_restart_a_failing_container() {
    let dev = Dev::start().await;
    let (web, closed) = (free_port(), free_port());
    let pods = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: slow}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    # `mkdir` before the `&`: `a && b &` backgrounds both, and httpd then races the mkdir.
    command: [sh, -c, 'mkdir -p /w; (sleep 8; touch /w/ok) & exec httpd -f -p {web} -h /w']
    ports: [{{name: http, containerPort: {web}}}]
    readinessProbe: {{httpGet: {{path: /ok, port: http}}, periodSeconds: 1, failureThreshold: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stuck}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: busybox
    command: [sleep, '3600']
    livenessProbe: {{tcpSocket: {{port: {closed}}}, periodSeconds: 1, failureThreshold: 2}}
"#
    );
    ok(dev.kubectl_stdin(&["apply", "-f", "-"], &pods));
    let ready = |name: &'static str| {
        let dev = &dev;
        async move {
            ok(dev.kubectl(&[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.phase}/{.status.conditions[?(@.type==\"Ready\")].status}",
            ]))
        }
    };
    // Running but not Ready while /ok is missing, then Ready once it answers.
    eventually(30, "slow is running", || async { (ready("slow").await == "Running/False").then_some(()) }).await;
    eventually(30, "slow becomes ready", || async { (ready("slow").await == "Running/True").then_some(()) }).await;

    // The liveness probe fails twice in a row, so the container is killed and restarted.
    let restarted = eventually(60, "stuck is restarted", || async {
        let n: u32 =
            ok(dev.kubectl(&["get", "pod", "stuck", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]))
                .parse()
                .unwrap_or(0);
        (n >= 1).then_some(n)
    })
    .await;
    assert!(restarted >= 1);
    let last = ok(dev.kubectl(&[
        "get",
        "pod",
        "stuck",
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    ]));
    assert!(last == "143" || last == "137", "killed by SIGTERM or SIGKILL: {last}");
}
