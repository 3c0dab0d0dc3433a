//! The dev cluster driven through the real kubectl binary, as users and scripts do.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{ok, Dev, WIDGET_CRD};

const GADGET: &str = "apiVersion: test.ephemera.dev/v1\nkind: Gadget\nmetadata:\n  name: k1\nspec:\n  size: 3\n";

async fn with_crd() -> Dev {
    let dev = Dev::start().await;
    let out = ok(dev.kubectl_stdin(&["apply", "--server-side", "-f", "-"], WIDGET_CRD));
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/gadgets.test.ephemera.dev serverside-applied"),
        "{out}"
    );
    ok(dev.kubectl(&["wait", "--for=condition=Established", "crd/gadgets.test.ephemera.dev", "--timeout=10s"]));
    dev
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_get_patch_delete_round_trip() {
    let dev = with_crd().await;
    let out = ok(dev.kubectl_stdin(&["apply", "--server-side", "-f", "-"], GADGET));
    assert!(out.contains("gadget.test.ephemera.dev/k1 serverside-applied"), "{out}");

    // Printer columns from the CRD, through the short name too.
    let table = ok(dev.kubectl(&["get", "gadgets"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "SIZE", "PHASE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("k1"), "{table}");
    assert!(ok(dev.kubectl(&["get", "gd"])).contains("k1"));

    let json: serde_json::Value =
        serde_json::from_str(&ok(dev.kubectl(&["get", "gadget", "k1", "-o", "json"]))).unwrap();
    assert_eq!(json["spec"]["color"], "green");
    assert_eq!(json["kind"], "Gadget");

    let out = ok(dev.kubectl(&["patch", "gadget", "k1", "--type", "merge", "-p", r#"{"spec":{"size":7}}"#]));
    assert!(out.contains("gadget.test.ephemera.dev/k1 patched"), "{out}");
    assert_eq!(ok(dev.kubectl(&["get", "gadget", "k1", "-o", "jsonpath={.spec.size}"])), "7");

    // Client-side apply (the default) of a changed manifest.
    let changed = GADGET.replace("size: 3", "size: 4");
    let out = ok(dev.kubectl_stdin(&["apply", "-f", "-"], &changed));
    assert!(out.contains("gadget.test.ephemera.dev/k1"), "{out}");
    assert_eq!(ok(dev.kubectl(&["get", "gadget", "k1", "-o", "jsonpath={.spec.size}"])), "4");

    let out = ok(dev.kubectl(&["delete", "gadget", "k1"]));
    assert!(out.contains("gadget.test.ephemera.dev \"k1\" deleted"), "{out}");
    let gone = dev.kubectl(&["get", "gadget", "k1"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_objects_get_readable_errors() {
    let dev = with_crd().await;
    let bad = GADGET.replace("size: 3", "size: 30\n  colour: red");
    let out = dev.kubectl_stdin(&["apply", "-f", "-"], &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl asks for strict field validation, so the unknown field is reported by the server.
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    let bad = GADGET.replace("size: 3", "size: 30");
    let err = String::from_utf8_lossy(&dev.kubectl_stdin(&["apply", "-f", "-"], &bad).stderr).to_string();
    assert!(
        err.contains("spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_jsonpath_and_watch_see_changes() {
    let dev = with_crd().await;
    ok(dev.kubectl_stdin(&["apply", "--server-side", "-f", "-"], GADGET));

    // `kubectl get -w` prints the change as it happens.
    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", &dev.kubeconfig)
        .args(["get", "gadgets", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("watch header");
    assert!(first.contains("NAME"), "{first}");
    let added = rx.recv_timeout(Duration::from_secs(10)).expect("initial event");
    assert!(added.contains("ADDED") && added.contains("k1"), "{added}");

    let waiter = {
        let kubeconfig = dev.kubeconfig.clone();
        std::thread::spawn(move || {
            Command::new("kubectl")
                .env("KUBECONFIG", kubeconfig)
                .args(["wait", "gadget/k1", "--for=jsonpath={.status.phase}=Ready", "--timeout=20s"])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    ok(dev.kubectl(&[
        "patch",
        "gadget",
        "k1",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ]));
    let waited = waiter.join().unwrap();
    assert!(waited.status.success(), "wait failed: {}", String::from_utf8_lossy(&waited.stderr));
    assert!(String::from_utf8_lossy(&waited.stdout).contains("condition met"));

    let modified = rx.recv_timeout(Duration::from_secs(10)).expect("modified event");
    assert!(modified.contains("MODIFIED") && modified.contains("Ready"), "{modified}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_kinds_work_through_kubectl() {
    let dev = Dev::start().await;
    ok(dev.kubectl(&["create", "namespace", "team-a"]));
    ok(dev.kubectl(&["-n", "team-a", "create", "configmap", "cfg", "--from-literal=a=1"]));
    ok(dev.kubectl(&["-n", "team-a", "create", "secret", "generic", "s", "--from-literal=password=x"]));
    let cms = ok(dev.kubectl(&["-n", "team-a", "get", "configmaps"]));
    assert!(cms.contains("cfg"), "{cms}");
    let sa = ok(dev.kubectl(&["-n", "team-a", "create", "token", "default", "--audience", "ephemera"]));
    assert_eq!(sa.trim().split('.').count(), 3, "a JWT");
    let out = ok(dev.kubectl(&["-n", "team-a", "label", "configmap", "cfg", "tier=web"]));
    assert!(out.contains("labeled"), "{out}");
    assert!(ok(dev.kubectl(&["-n", "team-a", "get", "cm", "-l", "tier=web", "-o", "name"])).contains("configmap/cfg"));
    ok(dev.kubectl(&["delete", "namespace", "team-a", "--wait=true", "--timeout=20s"]));
    let whoami = ok(dev.kubectl(&["auth", "whoami"]));
    assert!(whoami.contains("admin") && whoami.contains("system:masters"), "{whoami}");
    assert_eq!(ok(dev.kubectl(&["auth", "can-i", "delete", "pods"])).trim(), "yes");
    let refused = dev.kubectl(&["delete", "namespace", "default"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("this namespace may not be deleted"));
}
