//! The chart installed for real into the local cluster: the operator and API server images built
//! from this checkout, Helm v4's engine (`charts/tests/release.py`) to install, upgrade and
//! uninstall releases, and the values a local node needs.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::stack::{repo, stale};

/// The operator and API server images (dev profile, static) in the test registry, by digest, built
/// when missing or older than their sources: (operator, api).
pub fn component_images() -> (String, String) {
    let env_file = repo().join("target/images/helm-images.env");
    if stale(&env_file, &["operator", "api-server", "crds", "serve", "lifecycle", "webhooks", "images"]) {
        let registry = ephemera_devcluster::testing::test_registry();
        let status = Command::new("flock")
            .arg(repo().join("target/images.lock"))
            .arg(repo().join("images/build.sh"))
            .args(["--profile", "dev", "--component", "operator", "--component", "api", "--tag", "test", "--registry"])
            .arg(format!("{registry}/ephemera-dev"))
            .arg("--env-file")
            .arg(&env_file)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("images/build.sh");
        assert!(status.success(), "could not build the operator and API server images");
    }
    let text = std::fs::read_to_string(&env_file).expect("the Helm test images' env file");
    let find = |var: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(var))
            .map(|r| r.trim().to_string())
            .unwrap_or_else(|| panic!("{var} in {}", env_file.display()))
    };
    (find("EPHEMERA_OPERATOR_IMAGE="), find("EPHEMERA_API_IMAGE="))
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
