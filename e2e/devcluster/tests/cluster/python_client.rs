//! The official Python client (`kubernetes` on PyPI) against the local cluster: its typed models
//! leave `kind` and `apiVersion` unset for built-in kinds, as its own examples do, and kube-apiserver
//! defaults both from the URL. The steps are in python_client.py; the test command installs the
//! client (`need_python_kubernetes` in e2e/scripts/tools.sh) and exports its interpreter as
//! `EPHEMERA_PYTHON_KUBERNETES`.

use std::path::Path;
use std::process::Command;

use crate::common::{install_gadget_crd, Dev};

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_client_works_the_way_its_examples_use_it() {
    let python = std::env::var("EPHEMERA_PYTHON_KUBERNETES").expect(
        "EPHEMERA_PYTHON_KUBERNETES is not set: run ./e2e/scripts/test.sh, or `source e2e/scripts/tools.sh && \
         need_python_kubernetes` and export EPHEMERA_PYTHON_KUBERNETES=$PYTHON_KUBERNETES",
    );
    let dev = Dev::start().await;
    install_gadget_crd(&dev.client().await).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/python_client.py");
    let kubeconfig = dev.kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || Command::new(python).arg(script).arg(kubeconfig).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client failed after:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok namespace deleted"), "{stdout}");
}
