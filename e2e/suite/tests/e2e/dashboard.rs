//! The dashboard in a real browser (Debian's Chromium driven by playwright-core,
//! `e2e/dashboard/dashboard.test.mjs`) against the API server, the operator and worker Pods: sign-in
//! (a wrong token shows the 401 problem), the Task list following Tasks live without a reload, a Task
//! page with its progress, logs and result, cancelling (refused for a token without the verb), a Task
//! started from a template's form (a bad param named next to its field), queues, triggers with their
//! deliveries, schedules suspended and resumed, a 360 px wide screen, and the keyboard. Screenshots of
//! each step go to `target/e2e-artifacts/dashboard/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;

use ephemera_api::auth::oidc::OidcConfig;
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::stream::hub::Limits;
use ephemera_devcluster::testing::{eventually, ok};
use ephemera_e2e::api::{api_token, ApiServer, Live};
use ephemera_e2e::stack::{config, operator_with, queue, repo, stack};

use crate::webhooks::{push, secret, trigger, until_known, Hook, SECRET};

fn key() -> Vec<u8> {
    b"the dashboard test's shared key, 32+ bytes".to_vec()
}

/// `e2e/dashboard` with its `node_modules` (`EPHEMERA_DASHBOARD_DIR`, else the repository's own),
/// installed by `need_playwright` in e2e/scripts/tools.sh when missing.
fn dashboard_dir() -> PathBuf {
    let dir =
        std::env::var_os("EPHEMERA_DASHBOARD_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("e2e/dashboard"));
    if !dir.join("node_modules/playwright-core/package.json").exists() {
        let script = format!("source {}/e2e/scripts/tools.sh && need_playwright", repo().display());
        let done = std::process::Command::new("bash").arg("-c").arg(script).status().expect("bash");
        assert!(done.success(), "could not install playwright-core (e2e/scripts/tools.sh need_playwright)");
    }
    dir
}

/// Debian's Chromium (`EPHEMERA_CHROMIUM`, else `/usr/bin/chromium`, which `need_playwright` installs).
fn chromium() -> PathBuf {
    let bin = std::env::var_os("EPHEMERA_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(bin.exists(), "{} not found: `source e2e/scripts/tools.sh && need_playwright` installs it", bin.display());
    bin
}

/// A team's own template with the parameter types the greet example lacks (a boolean, a pattern).
const NOTE_TEMPLATE: &str = r#"
apiVersion: ephemera.dev/v1alpha1
kind: TaskTemplate
metadata: {name: release-note, namespace: default}
spec:
  description: Writes a release note.
  params:
    - {name: title, description: "The note's title (letters and spaces).", required: true, pattern: "[A-Za-z ]+"}
    - {name: draft, description: Only a draft., type: boolean, default: "true"}
    - {name: channel, description: Where it goes., type: enum, values: [email, chat]}
  task:
    image: busybox
    command: [sh, -c, 'echo "note: $EPHEMERA_PARAM_TITLE"; printf "%s" "$EPHEMERA_PARAM_TITLE/$EPHEMERA_PARAM_DRAFT" > "$EPHEMERA_RESULT_FILE"']
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_follows_cancels_and_starts_tasks_in_a_real_browser() {
    ephemera_e2e::tls();
    let (dir, chromium) = (dashboard_dir(), chromium());
    let s = stack().await;
    let live = Live { key: key(), ring: 100, limits: Limits::default(), send_buffer: None };
    let api = ApiServer::start_live(&s, OidcConfig::default(), RateLimiter::new(10_000, 10_000.0), Some(live)).await;
    let mut cfg = config("op-dashboard");
    cfg.progress =
        Some(ephemera_operator::ProgressConfig { url: api.url.clone(), key: std::sync::Arc::new(key().into()) });
    let op = operator_with(&s.client, cfg);
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read, Verb::Cancel, Verb::Delete], 1).await;
    let reader = api_token(&s, &["default"], &[Verb::Read], 1).await;
    queue(&s.client, "batch", 1).await;

    // Templates: the greet example (cluster-wide) and a team's own.
    ok(s.dev.kubectl(&["apply", "-f", repo().join("e2e/examples/template-greet.yaml").to_str().unwrap()]));
    let yaml = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(yaml.path(), NOTE_TEMPLATE).unwrap();
    ok(s.dev.kubectl(&["apply", "-f", yaml.path().to_str().unwrap()]));

    // A trigger with one delivery in its log (the Task it made is linked from the dashboard).
    secret(&s, "gh-hook", SECRET).await;
    let rule = serde_json::json!({"name": "branch-push", "events": ["push"], "filter": "body.ref.startsWith('refs/heads/')",
        "params": {"sha": "body.after"},
        "task": {"image": "busybox", "command": ["sh", "-c", "echo \"built $EPHEMERA_PARAM_SHA\""]}});
    let spec =
        serde_json::json!({"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"}, "rules": [rule]});
    trigger(&s, serde_json::json!({"name": "gh-push", "spec": spec})).await;
    let hook = Hook { url: api.url.clone(), http: reqwest::Client::new() };
    until_known(&hook, "gh-push").await;
    let payload = push("refs/heads/main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    let (status, body) = hook.github("gh-push", "push", "dashboard-delivery-1", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");

    // Token Secrets are watched: wait until the new ones are known.
    let http = reqwest::Client::new();
    for t in [&token, &reader] {
        eventually(10, "tokens known", || async {
            let r = http.get(format!("{}/api/v1/queues", api.url)).bearer_auth(t).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    if std::env::var_os("DASHBOARD_HOLD").is_some() {
        let env = format!("export DASHBOARD_URL={} DASHBOARD_TOKEN={token} DASHBOARD_READER_TOKEN={reader}\n", api.url);
        std::fs::write("/tmp/dev/env.sh", env).unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let artifacts = repo().join("target/e2e-artifacts/dashboard");
    // Only this run's screenshots (an earlier failure's would mislead).
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(dir.join("dashboard.test.mjs"))
        .current_dir(&dir)
        .env("DASHBOARD_URL", &api.url)
        .env("DASHBOARD_TOKEN", &token)
        .env("DASHBOARD_READER_TOKEN", &reader)
        .env("DASHBOARD_NAMESPACE", "default")
        .env("DASHBOARD_ARTIFACTS", &artifacts)
        .env("DASHBOARD_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    // The script bounds each of its waits; this only stops a browser that hangs altogether.
    let out = tokio::time::timeout(Duration::from_secs(600), run).await.expect("the browser test hung").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the browser test failed ({}; screenshots in {}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        artifacts.display()
    );
    eprintln!("{stdout}");
    op.abort();
}
