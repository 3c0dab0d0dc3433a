//! Real payloads, not hand-made ones: every GitHub example payload of `@octokit/webhooks-examples`
//! (captured from GitHub's deliveries), every GitLab webhook payload of GitLab's Go client's test
//! data, and Standard Webhooks messages signed by the official `standardwebhooks` library. The
//! recipe in `e2e/payloads` fetches them (`need_payloads` in e2e/scripts/tools.sh); the test
//! command exports `EPHEMERA_PAYLOADS_DIR`.
//!
//! Each payload is delivered signed as its provider signs it, and the outcome is predicted from the
//! payload by this file's own reading of it (not by the server's CEL): a Task with exactly the
//! params the rule names, or a 200 "ignored". Never a 4xx or 5xx for a genuine delivery.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use ephemera_crds::Task;
use kube::api::Api;
use serde_json::{json, Value};

use ephemera_e2e::stack::stack;

use super::webhooks::{secret, server, sign, trigger, until_known, Hook, SECRET};

fn payloads_dir() -> PathBuf {
    let dir = std::env::var_os("EPHEMERA_PAYLOADS_DIR").map(PathBuf::from).expect(
        "EPHEMERA_PAYLOADS_DIR is not set: run ./e2e/scripts/test.sh, or `source e2e/scripts/tools.sh && \
         need_payloads` and export EPHEMERA_PAYLOADS_DIR=$PAYLOADS_DIR",
    );
    assert!(dir.is_dir(), "{} does not exist (need_payloads fetches it)", dir.display());
    dir
}

/// What a delivery should produce: a Task with these params, or nothing.
#[derive(Debug, PartialEq)]
enum Expect {
    Task(&'static str, Vec<(&'static str, String)>),
    Ignored,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Posts `body` with `headers`; answers the status and the JSON body.
async fn post(hook: &Hook, trigger: &str, headers: Vec<(&str, String)>, body: Vec<u8>) -> (u16, Value) {
    let mut req = hook
        .http
        .post(format!("{}/webhooks/default/{trigger}", hook.url))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// Delivers every case and checks each answer and each created Task against its expectation.
async fn check_all(tasks: &Api<Task>, outcomes: Vec<(String, Expect, u16, Value)>) -> (usize, usize) {
    let (mut created, mut ignored) = (0, 0);
    for (what, expect, status, body) in outcomes {
        match expect {
            Expect::Task(rule, params) => {
                assert_eq!(status, 202, "{what}: {body}");
                let task = tasks.get(body["task"].as_str().unwrap()).await.unwrap();
                let labels = task.metadata.labels.clone().unwrap_or_default();
                assert_eq!(labels.get("ephemera.dev/trigger-rule").map(String::as_str), Some(rule), "{what}");
                let got: Vec<(String, String)> = task.spec.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let mut want: Vec<(String, String)> = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                want.sort();
                assert_eq!(got, want, "{what}");
                created += 1;
            }
            Expect::Ignored => {
                assert_eq!(status, 200, "{what}: {body}");
                assert!(body["ignored"].is_string(), "{what}: {body}");
                ignored += 1;
            }
        }
    }
    (created, ignored)
}

/// The GitHub rules a team would write: branch pushes, pull requests that change code, releases.
fn github_expectation(event: &str, p: &Value) -> Expect {
    match event {
        "push" if p["ref"].as_str().unwrap_or("").starts_with("refs/heads/") && p["deleted"] != true => Expect::Task(
            "branch-push",
            vec![
                ("repo", text(&p["repository"]["full_name"])),
                ("sha", text(&p["after"])),
                ("pusher", text(&p["pusher"]["name"])),
            ],
        ),
        "pull_request" if ["opened", "synchronize", "reopened"].contains(&p["action"].as_str().unwrap_or("")) => {
            Expect::Task(
                "pull-request",
                vec![
                    ("number", text(&p["number"])),
                    ("head", text(&p["pull_request"]["head"]["sha"])),
                    ("base", text(&p["pull_request"]["base"]["ref"])),
                ],
            )
        }
        "release" if p["action"] == "published" => {
            Expect::Task("release", vec![("tag", text(&p["release"]["tag_name"]))])
        }
        _ => Expect::Ignored,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_github_example_payload_is_verified_and_routed_by_its_rules() {
    let index = payloads_dir().join("node_modules/@octokit/webhooks-examples/api.github.com/index.json");
    let events: Vec<Value> = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    ephemera_e2e::tls();
    let s = stack().await;
    secret(&s, "gh-hook", SECRET).await;
    let task = json!({"image": "busybox", "command": ["true"]});
    trigger(
        &s,
        json!({"name": "gh-real", "spec": {"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"},
        "rateLimit": {"requestsPerSecond": 10000, "burst": 100000},
        "rules": [
            {"name": "branch-push", "events": ["push"], "filter": "body.ref.startsWith('refs/heads/') && !body.deleted",
             "params": {"repo": "body.repository.full_name", "sha": "body.after", "pusher": "body.pusher.name"}, "task": task},
            {"name": "pull-request", "events": ["pull_request"], "filter": "body.action in ['opened', 'synchronize', 'reopened']",
             "params": {"number": "body.number", "head": "body.pull_request.head.sha", "base": "body.pull_request.base.ref"},
             "task": task},
            {"name": "release", "events": ["release"], "filter": "body.action == 'published'",
             "params": {"tag": "body.release.tag_name"}, "task": task}
        ]}}),
    )
    .await;
    let hook = server(&s).await;
    until_known(&hook, "gh-real").await;
    let mut outcomes = Vec::new();
    for (e, event) in events.iter().enumerate() {
        let name = event["name"].as_str().unwrap();
        for (i, payload) in event["examples"].as_array().unwrap().iter().enumerate() {
            let body = serde_json::to_vec(payload).unwrap();
            let headers = vec![
                ("x-github-event", name.to_string()),
                ("x-github-delivery", format!("8f3c2a10-{e:04x}-{i:04x}-8000-000000000000")),
                ("x-github-hook-id", "292435614".to_string()),
                ("user-agent", "GitHub-Hookshot/044aadd".to_string()),
                ("x-hub-signature-256", sign(SECRET, &body)),
            ];
            let (status, answer) = post(&hook, "gh-real", headers, body).await;
            outcomes.push((format!("{name} example {i}"), github_expectation(name, payload), status, answer));
        }
    }
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let total = outcomes.len();
    let (created, ignored) = check_all(&tasks, outcomes).await;
    eprintln!("GitHub: {total} real payloads of {} events: {created} Tasks, {ignored} ignored", events.len());
    assert!(total >= 300 && created >= 10, "the examples package shrank: {total} payloads, {created} Tasks");
}

/// `X-Gitlab-Event` for a payload, as GitLab's webhook documentation names each event.
fn gitlab_event(p: &Value) -> &'static str {
    match (p["object_kind"].as_str(), p["event_name"].as_str()) {
        (Some("push"), _) => "Push Hook",
        (Some("tag_push"), _) => "Tag Push Hook",
        (Some("issue"), _) => "Issue Hook",
        (Some("note"), _) => "Note Hook",
        (Some("merge_request"), _) => "Merge Request Hook",
        (Some("wiki_page"), _) => "Wiki Page Hook",
        (Some("pipeline"), _) => "Pipeline Hook",
        (Some("build"), _) => "Job Hook",
        (Some("deployment"), _) => "Deployment Hook",
        (Some("feature_flag"), _) => "Feature Flag Hook",
        (Some("release"), _) => "Release Hook",
        (Some("access_token"), _) => "Resource Access Token Hook",
        (_, Some(e)) if e.starts_with("user_") => "Member Hook",
        (_, Some(e)) if e.starts_with("subgroup_") => "Subgroup Hook",
        other => panic!("a GitLab payload of an unknown kind: {other:?}"),
    }
}

fn gitlab_expectation(event: &str, p: &Value) -> Expect {
    match event {
        "Push Hook" => Expect::Task(
            "push",
            vec![("project", text(&p["project"]["path_with_namespace"])), ("sha", text(&p["checkout_sha"]))],
        ),
        "Merge Request Hook"
            if ["open", "update", "reopen"].contains(&p["object_attributes"]["action"].as_str().unwrap_or("")) =>
        {
            Expect::Task(
                "merge-request",
                vec![
                    ("iid", text(&p["object_attributes"]["iid"])),
                    ("source", text(&p["object_attributes"]["source_branch"])),
                ],
            )
        }
        "Tag Push Hook" => Expect::Task("tag", vec![("tag", text(&p["ref"]))]),
        _ => Expect::Ignored,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_gitlab_test_payload_is_verified_and_routed_by_its_rules() {
    let dir = payloads_dir().join("gitlab");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    ephemera_e2e::tls();
    let s = stack().await;
    secret(&s, "gl-hook", SECRET).await;
    let task = json!({"image": "busybox", "command": ["true"]});
    trigger(
        &s,
        json!({"name": "gl-real", "spec": {"source": "gitlab", "secretRef": {"name": "gl-hook", "key": "secret"},
        "rateLimit": {"requestsPerSecond": 10000, "burst": 100000},
        "rules": [
            {"name": "push", "events": ["Push Hook"],
             "params": {"project": "body.project.path_with_namespace", "sha": "body.checkout_sha"}, "task": task},
            {"name": "merge-request", "events": ["Merge Request Hook"],
             "filter": "has(body.object_attributes.action) && body.object_attributes.action in ['open', 'update', 'reopen']",
             "params": {"iid": "body.object_attributes.iid", "source": "body.object_attributes.source_branch"}, "task": task},
            {"name": "tag", "events": ["Tag Push Hook"], "params": {"tag": "body.ref"}, "task": task}
        ]}}),
    )
    .await;
    let hook = server(&s).await;
    until_known(&hook, "gl-real").await;
    let mut outcomes = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let body = std::fs::read(file).unwrap();
        let payload: Value = serde_json::from_slice(&body).unwrap();
        let event = gitlab_event(&payload);
        let headers = vec![
            ("x-gitlab-event", event.to_string()),
            ("x-gitlab-token", SECRET.to_string()),
            ("x-gitlab-event-uuid", format!("13792a34-cac6-4fda-95a8-c58e{i:08x}")),
            ("idempotency-key", format!("f5b8e0c4-2d3a-4f6e-9b1a-7c2d{i:08x}")),
            ("x-gitlab-instance", "https://gitlab.example.com".to_string()),
            ("user-agent", "GitLab/17.5.0".to_string()),
        ];
        // The bytes as GitLab's test data has them, not re-serialized.
        let (status, answer) = post(&hook, "gl-real", headers, body).await;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        outcomes.push((format!("{name} ({event})"), gitlab_expectation(event, &payload), status, answer));
    }
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let total = outcomes.len();
    let (created, ignored) = check_all(&tasks, outcomes).await;
    eprintln!("GitLab: {total} real payloads: {created} Tasks, {ignored} ignored");
    assert!(total >= 15 && created >= 3, "the GitLab test data shrank: {total} payloads, {created} Tasks");
}

/// Signs messages with the official Standard Webhooks library (node, e2e/payloads).
fn official_signatures(messages: &Value) -> Vec<Value> {
    use std::io::Write as _;
    let dir = payloads_dir();
    let mut child = std::process::Command::new("node")
        .arg(dir.join("sign-standard-webhook.cjs"))
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node (Node.js) runs the official Standard Webhooks signer");
    child.stdin.take().unwrap().write_all(messages.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the signer failed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_webhooks_signed_by_the_official_library_are_accepted_within_the_window_only() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let current = format!("whsec_{}", b64(b"the current 32-byte signing key!"));
    let previous = format!("whsec_{}", b64(b"the previous signing key, rotated"));
    ephemera_e2e::tls();
    let s = stack().await;
    secret(&s, "sw-now", &current).await;
    secret(&s, "sw-old", &previous).await;
    trigger(
        &s,
        json!({"name": "sw-real", "spec": {"source": "standard-webhooks", "secretRef": {"name": "sw-now", "key": "secret"},
        "previousSecretRef": {"name": "sw-old", "key": "secret"},
        "rules": [{"name": "deploy", "events": ["deploy.requested"], "params": {"org": "body.data.org"},
                   "task": {"image": "busybox", "command": ["true"]}}]}}),
    )
    .await;
    let hook = server(&s).await;
    until_known(&hook, "sw-real").await;
    let payload =
        json!({"type": "deploy.requested", "timestamp": "2026-12-01T10:00:00Z", "data": {"org": "uat"}}).to_string();
    let now = jiff::Timestamp::now().as_second();
    let msg = |id: &str, ts: i64, key: &str| json!({"secret": key, "id": id, "timestamp": ts, "payload": payload});
    let signed = official_signatures(&json!([
        msg("msg_current", now, &current),
        msg("msg_previous", now, &previous),
        msg("msg_stale", now - 600, &current),
        msg("msg_future", now + 600, &current),
        msg("msg_stranger", now, "whsec_c29tZW9uZSBlbHNlJ3Mga2V5IGFsdG9nZXRoZXI="),
    ]));
    let headers = |h: &Value| -> Vec<(&'static str, String)> {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .map(|k| (k, h[k].as_str().unwrap().to_string()))
            .to_vec()
    };
    let send = |h: Vec<(&'static str, String)>| post(&hook, "sw-real", h, payload.clone().into_bytes());
    let (st, b) = send(headers(&signed[0])).await;
    assert_eq!(st, 202, "signed with the current secret: {b}");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    assert_eq!(tasks.get(b["task"].as_str().unwrap()).await.unwrap().spec.params["org"], "uat");
    assert_eq!(send(headers(&signed[0])).await.1["redelivered"], true, "the same webhook-id is a redelivery");
    assert_eq!(send(headers(&signed[1])).await.0, 202, "signed with the previous secret during a rotation");
    assert_eq!(send(headers(&signed[2])).await.0, 401, "ten minutes old: outside the replay window");
    assert_eq!(send(headers(&signed[3])).await.0, 401, "ten minutes ahead: outside the replay window");
    let (st, b) = send(headers(&signed[4])).await;
    assert_eq!(st, 401, "another key: {b}");
    assert!(!b.to_string().contains("whsec"), "no secret material in the answer: {b}");
    // A sender mid-rotation signs with both keys: one space-separated header, either one verifying.
    let mut both = headers(&signed[4]);
    both[2].1 = format!(
        "{} {}",
        signed[4]["webhook-signature"].as_str().unwrap(),
        signed[0]["webhook-signature"].as_str().unwrap()
    );
    both[0].1 = "msg_current".into();
    both[1].1 = signed[0]["webhook-timestamp"].as_str().unwrap().into();
    assert_eq!(send(both).await.1["redelivered"], true, "a list with one good signature verifies");
}
