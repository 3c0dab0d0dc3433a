//! The chart installed for real into the local cluster: the operator and API server images built
//! from this checkout, Helm v4's engine (`charts/tests/release.py`) to install, upgrade and
//! uninstall releases, and the values a local node needs.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::stack::{repo, test_images};

/// The operator and API server images (dev profile, static) in the test registry, by digest, built
/// when missing or older than their sources: (operator, api).
pub fn component_images() -> (String, String) {
    let sources = ["operator", "api-server", "crds", "serve", "lifecycle", "webhooks", "images"];
    let images = test_images("helm-images.env", &["operator", "api"], &sources);
    (images[0].clone(), images[1].clone())
}

/// `repository` and `digest` of a `repo:tag@sha256:…` reference, as the chart's image values.
pub fn image_values(reference: &str) -> Value {
    let (name, digest) = reference.split_once('@').expect("a reference by digest");
    let repository = match name.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => name,
    };
    json!({"repository": repository, "digest": digest})
}

/// The Python with Helm's engine (`e2e/scripts/tools.sh need_chart_tools`).
pub fn chart_python() -> PathBuf {
    crate::tool_binary("CHART_PYTHON", "chart/bin/python", "need_chart_tools")
}

/// One `release.py` run; the release summary it prints, or Helm's message.
pub fn release(
    action: &str,
    kubeconfig: &std::path::Path,
    namespace: &str,
    name: &str,
    values: Option<&Value>,
) -> Result<Value, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(chart_python());
    cmd.arg(repo().join("charts/tests/release.py")).arg(action).arg("--kubeconfig").arg(kubeconfig).args([
        "--namespace",
        namespace,
        "--name",
        name,
        "--timeout",
        "240",
    ]);
    if let Some(v) = values {
        let file = dir.path().join("values.json");
        std::fs::write(&file, v.to_string()).expect("values file");
        cmd.arg("--values").arg(file);
    }
    let out = cmd.output().expect("release.py");
    if !out.status.success() {
        return Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("release.py printed no summary: {e}"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// Values for a release on the local node. Its Pods share the host's network, so each container
/// listens on a free port of its own and the Deployments roll out by Recreate (a surge Pod could
/// not bind its predecessor's ports); the edge runs outside the cluster.
pub fn local_values(
    operator_image: &str,
    api_image: &str,
    worker_image: &str,
    vault_addr: &str,
    vault_token_secret: &str,
) -> Value {
    json!({
        "operator": {
            "image": image_values(operator_image),
            "workerImage": image_values(worker_image),
            "defaultTaskImage": "busybox",
            "podStartTimeoutSeconds": 60,
            "terminationGraceSeconds": 2,
            "containerPorts": {"metrics": free_port(), "handoff": free_port()},
            "strategy": {"type": "Recreate"},
        },
        "apiServer": {
            "replicaCount": 1,
            "image": image_values(api_image),
            "containerPorts": {"http": free_port(), "metrics": free_port()},
            "strategy": {"type": "Recreate"},
            // The edge in front runs on the host (loopback).
            "trustedProxies": ["127.0.0.1/32"],
        },
        "edge": {"enabled": false},
        "vault": {"addr": vault_addr, "auth": "token", "tokenSecret": vault_token_secret},
    })
}
