//! RBAC enforced for ServiceAccount identities, observed the way users observe it: kubectl with a
//! ServiceAccount token, `kubectl auth can-i` (impersonation and access reviews), and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Output;

use serde_json::Value;

use crate::common::{ok, Dev};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn audit_events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_can_do_only_what_its_bindings_grant() {
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_log = audit_dir.path().join("audit.log");
    let log = audit_log.clone();
    let dev = Dev::start_with(move |c| {
        c.kubelet = None;
        c.audit_log = Some(log);
    })
    .await;
    ok(dev.kubectl(&["create", "namespace", "team"]));
    ok(dev.kubectl(&["create", "serviceaccount", "bot", "-n", "team"]));
    let token = ok(dev.kubectl(&["create", "token", "bot", "-n", "team"])).trim().to_string();
    let as_bot = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str()];
        all.extend_from_slice(args);
        dev.kubectl(&all)
    };
    let bot = "system:serviceaccount:team:bot";

    // A fresh ServiceAccount may do nothing but discovery and self-reviews.
    let can = dev.kubectl(&["auth", "can-i", "list", "pods", "-n", "team", "--as", bot]);
    assert_eq!((stdout(&can).as_str(), can.status.code()), ("no", Some(1)), "{}", stderr(&can));
    let denied = as_bot(&["get", "pods", "-n", "team"]);
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains(
            "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:team:bot\" cannot list resource \"pods\" in API group \"\" in the namespace \"team\""
        ),
        "{}",
        stderr(&denied)
    );
    assert_eq!(stdout(&as_bot(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])), bot);

    // A Role bound in one namespace grants there and nowhere else.
    ok(dev.kubectl(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "team"]));
    ok(dev.kubectl(&[
        "create",
        "rolebinding",
        "bot-reads",
        "--role=pod-reader",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]));
    let can = dev.kubectl(&["auth", "can-i", "list", "pods", "-n", "team", "--as", bot]);
    assert_eq!(stdout(&can), "yes", "{}", stderr(&can));
    assert_eq!(stdout(&dev.kubectl(&["auth", "can-i", "delete", "pods", "-n", "team", "--as", bot])), "no");
    assert_eq!(stdout(&dev.kubectl(&["auth", "can-i", "list", "pods", "-n", "default", "--as", bot])), "no");
    let listed = as_bot(&["get", "pods", "-n", "team"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(!as_bot(&["get", "pods", "-n", "default"]).status.success());
    let rules = ok(as_bot(&["auth", "can-i", "--list", "-n", "team"]));
    assert!(rules.lines().any(|l| l.starts_with("pods ") && l.contains("[get list]")), "{rules}");

    // resourceNames rules cover a list that selects the one name by field, as upstream.
    ok(dev.kubectl(&[
        "create",
        "role",
        "one-config",
        "--verb=get,list",
        "--resource=configmaps",
        "--resource-name=settings",
        "-n",
        "team",
    ]));
    ok(dev.kubectl(&[
        "create",
        "rolebinding",
        "bot-one-config",
        "--role=one-config",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]));
    let one = as_bot(&["get", "configmaps", "-n", "team", "--field-selector", "metadata.name=settings"]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(!as_bot(&["get", "configmaps", "-n", "team"]).status.success(), "listing all needs a rule without names");

    // An apply that would create needs `create`, not only `patch`.
    ok(dev.kubectl(&["create", "role", "patcher", "--verb=patch", "--resource=secrets", "-n", "team"]));
    ok(dev.kubectl(&[
        "create",
        "rolebinding",
        "bot-patches",
        "--role=patcher",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]));
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: planted, namespace: team}\nstringData: {k: v}\n";
    let planted = dev.kubectl_stdin(&["--token", token.as_str(), "apply", "--server-side", "-f", "-"], secret);
    assert!(
        stderr(&planted).contains("secrets \"planted\" is forbidden: User \"system:serviceaccount:team:bot\" cannot create resource \"secrets\""),
        "{}",
        stderr(&planted)
    );
    assert!(!dev.kubectl(&["get", "secret", "planted", "-n", "team"]).status.success());

    // Only an identity allowed to impersonate may act as another.
    let escalate = as_bot(&["get", "pods", "-n", "team", "--as", "admin"]);
    assert!(
        stderr(&escalate).contains("users \"admin\" is forbidden: User \"system:serviceaccount:team:bot\" cannot impersonate resource \"users\""),
        "{}",
        stderr(&escalate)
    );

    // A binding cannot be pointed at another role.
    let moved = dev.kubectl(&[
        "patch",
        "rolebinding",
        "bot-reads",
        "-n",
        "team",
        "--type",
        "merge",
        "-p",
        r#"{"roleRef":{"name":"admin"}}"#,
    ]);
    assert!(
        stderr(&moved).contains("roleRef: Invalid value") && stderr(&moved).contains("cannot change roleRef"),
        "{}",
        stderr(&moved)
    );

    // The audit log shows both of the bot's pod lists, with their decisions and codes.
    let lists: Vec<(String, u64, String)> = audit_events(&audit_log)
        .iter()
        .filter(|e| e["user"]["username"] == bot && e["verb"] == "list" && e["objectRef"]["resource"] == "pods")
        .map(|e| {
            (
                e["objectRef"]["namespace"].as_str().unwrap_or_default().to_string(),
                e["responseStatus"]["code"].as_u64().unwrap_or_default(),
                e["annotations"]["authorization.k8s.io/decision"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        lists,
        vec![
            ("team".to_string(), 403, "forbid".to_string()),
            ("team".to_string(), 200, "allow".to_string()),
            ("default".to_string(), 403, "forbid".to_string()),
        ]
    );
}
