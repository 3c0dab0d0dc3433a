//! Webhook deliveries against the local cluster, the operator and two API server replicas: signed as
//! GitHub signs them (by `ring`, not the server's own code), they become Tasks with the rule's queue,
//! priority and params; redeliveries and a delivery to both replicas at once make one Task; forged,
//! stale-secret, oversize, mistyped and malformed deliveries are refused with problem documents; the
//! rate limit answers 429; a rotation accepts both secrets; concurrency keys cancel the previous Task;
//! and the trigger's status logs it all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use ephemera_api::auth::oidc::OidcConfig;
use ephemera_api::limits::RateLimiter;
use ephemera_api::stream::hub::Limits;
use ephemera_crds::{Task, TaskPhase, TaskTrigger};
use ephemera_devcluster::testing::eventually;
use ephemera_e2e::api::{ApiServer, Live};
use ephemera_e2e::stack::{operator, stack, Stack};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};
use sha2::Digest as _;

pub(crate) const SECRET: &str = "a webhook secret nobody guesses";

/// A push as GitHub documents its fields (the ones rules read, and some they do not).
pub(crate) fn push(r#ref: &str, after: &str) -> Value {
    json!({
        "ref": r#ref, "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "after": after,
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...0d1a26e67d8f",
        "commits": [{"id": after, "message": "Update README.md", "distinct": true,
            "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com", "username": "Codertocat"}}],
        "repository": {"id": 186853002, "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=", "name": "Hello-World",
            "full_name": "Codertocat/Hello-World", "private": false, "default_branch": "master"},
        "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
        "sender": {"login": "Codertocat", "id": 21031067, "type": "User"}
    })
}

/// `sha256=<hex>` as GitHub computes it.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

pub(crate) struct Hook {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

impl Hook {
    pub(crate) async fn send(
        &self,
        path: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<String>,
        ct: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", ct)
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("user-agent", "GitHub-Hookshot/044aadd")
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn github(
        &self,
        trigger: &str,
        event: &str,
        delivery: &str,
        payload: &Value,
        secret: &str,
    ) -> (u16, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        let (s, _, b) = self
            .send(
                &format!("/webhooks/default/{trigger}"),
                event,
                delivery,
                &body,
                Some(sign(secret, &body)),
                "application/json",
            )
            .await;
        (s, b)
    }
}

pub(crate) async fn secret(s: &Stack, name: &str, value: &str) {
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), "default");
    let sec: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"secret": value}})).unwrap();
    let _ = secrets.delete(name, &Default::default()).await;
    secrets.create(&PostParams::default(), &sec).await.unwrap();
}

pub(crate) async fn trigger(s: &Stack, spec: Value) -> TaskTrigger {
    let api: Api<TaskTrigger> = Api::namespaced(s.client.clone(), "default");
    let name = spec["name"].as_str().unwrap().to_string();
    let t: TaskTrigger = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "TaskTrigger",
        "metadata": {"name": name}, "spec": spec["spec"]}))
    .unwrap();
    api.create(&PostParams::default(), &t).await.unwrap()
}

/// The key the replicas share (the Helm chart generates one); it keys webhook Task names.
pub(crate) const SHARED_KEY: &[u8] = b"the replicas' shared key, 32+ bytes long";

pub(crate) async fn server(s: &Stack) -> Hook {
    let live = Live { key: SHARED_KEY.to_vec(), ring: 100, limits: Limits::default(), send_buffer: None };
    let api = ApiServer::start_live(s, OidcConfig::default(), RateLimiter::new(1000, 1000.0), Some(live)).await;
    Hook { url: api.url, http: reqwest::Client::new() }
}

fn gh_spec(name: &str, extra: Value) -> Value {
    let mut spec = json!({"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"}, "rules": [{
        "name": "branch-push", "events": ["push"], "filter": "body.ref.startsWith('refs/heads/')",
        "queue": "default", "priority": 20,
        "params": {"repo": "body.repository.full_name", "sha": "body.after"},
        "task": {"image": "busybox", "command": ["sh", "-c", "echo \"$EPHEMERA_PARAM_REPO@$EPHEMERA_PARAM_SHA\" > \"$EPHEMERA_RESULT_FILE\""]}
    }]});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"name": name, "spec": spec})
}

/// Waits until the API server replica's trigger cache has the trigger.
pub(crate) async fn until_known(hook: &Hook, trigger: &str) {
    eventually(10, "the replica knows the trigger", || async {
        let (s, _, _) =
            hook.send(&format!("/webhooks/default/{trigger}"), "ping", "probe", b"{}", None, "application/json").await;
        (s != 404).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_push_becomes_one_task_however_often_and_wherever_it_is_delivered() {
    ephemera_e2e::tls();
    let s = stack().await;
    let op = operator(&s.client, "op-hooks");
    secret(&s, "gh-hook", SECRET).await;
    trigger(&s, gh_spec("gh", json!({}))).await;
    let (a, b) = (server(&s).await, server(&s).await);
    until_known(&a, "gh").await;
    until_known(&b, "gh").await;
    let payload = push("refs/heads/main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    let (status, body) = a.github("gh", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let name = body["task"].as_str().unwrap().to_string();
    assert_eq!(body["namespace"], "default");
    assert_eq!(body["delivery"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(body["url"], format!("/api/v1/namespaces/default/tasks/{name}"));
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let t = tasks.get(&name).await.unwrap();
    assert_eq!((t.spec.queue.as_str(), t.spec.priority), ("default", 20));
    assert_eq!(t.spec.params["repo"], "Codertocat/Hello-World");
    assert_eq!(t.spec.params["sha"], "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    let o = t.spec.origin.clone().unwrap();
    assert_eq!((o.source.as_str(), o.trigger.as_str(), o.event.as_str()), ("webhook", "gh", "push"));
    assert_eq!(t.metadata.labels.clone().unwrap()["ephemera.dev/trigger"], "gh");
    // GitHub redelivers with the same delivery id: to the other replica, and to both at once.
    let (status, again) = b.github("gh", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &payload, SECRET).await;
    assert_eq!(
        (status, again["task"].as_str(), again["redelivered"].as_bool()),
        (200, Some(name.as_str()), Some(true)),
        "{again}"
    );
    let other = push("refs/heads/main", "1111111111111111111111111111111111111111");
    let (x, y) = tokio::join!(
        a.github("gh", "push", "9a9a9a9a-0000-11e3-81ab-4c9367dc0958", &other, SECRET),
        b.github("gh", "push", "9a9a9a9a-0000-11e3-81ab-4c9367dc0958", &other, SECRET)
    );
    let mut statuses = [x.0, y.0];
    statuses.sort();
    assert_eq!(statuses, [200, 202], "one replica created it, the other found it: {x:?} {y:?}");
    assert_eq!(x.1["task"], y.1["task"]);
    let made = tasks.list(&ListParams::default().labels("ephemera.dev/trigger=gh")).await.unwrap();
    assert_eq!(made.items.len(), 2, "two deliveries, two Tasks");
    // The Task runs with its params.
    let done = eventually(60, "the Task succeeded", || async {
        let t = tasks.get(&name).await.ok()?;
        t.status.filter(|st| st.phase == TaskPhase::Succeeded)
    })
    .await;
    assert_eq!(done.result.trim(), "Codertocat/Hello-World@0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    // Tags and pings are acknowledged and ignored.
    let (status, body) = a.github("gh", "push", "tag-1", &push("refs/tags/v1.0", "22"), SECRET).await;
    assert_eq!((status, body["ignored"].as_str()), (200, Some("no rule matched")), "{body}");
    let (status, body) =
        a.github("gh", "ping", "ping-1", &json!({"zen": "Speak like a human.", "hook_id": 1}), SECRET).await;
    assert_eq!((status, body["ignored"].as_str()), (200, Some("ping")), "{body}");
    // The delivery log.
    let triggers: Api<TaskTrigger> = Api::namespaced(s.client.clone(), "default");
    let st = eventually(10, "the delivery log", || async {
        let st = triggers.get("gh").await.ok()?.status?;
        let n = |o: &str| st.counters.get(o).copied().unwrap_or_default();
        // Both replicas' batches are in (each writes its own, independently).
        (n("Created") == 2 && n("Ignored") == 2 && n("Redelivered") == 2).then_some(st)
    })
    .await;
    assert_eq!(st.deliveries[0].event, "ping", "newest first: {:?}", st.deliveries);
    assert!(st.deliveries.iter().any(|d| d.task == name && d.outcome == "Created"));
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_mistyped_and_malformed_deliveries_are_refused_with_problems() {
    ephemera_e2e::tls();
    let s = stack().await;
    secret(&s, "gh-hook", SECRET).await;
    trigger(&s, gh_spec("gh", json!({}))).await;
    let hook = server(&s).await;
    until_known(&hook, "gh").await;
    let body = serde_json::to_vec(&push("refs/heads/main", "33")).unwrap();
    let path = "/webhooks/default/gh";
    let problem = |h: &reqwest::header::HeaderMap, b: &Value, kind: &str| {
        assert_eq!(h["content-type"], "application/problem+json", "{b}");
        assert_eq!(b["type"], format!("https://ephemera.dev/problems/{kind}"), "{b}");
        let text = b.to_string();
        assert!(!text.contains(SECRET) && !text.contains("gh-hook"), "nothing about the secret: {text}");
    };
    let (st, h, b) = hook.send(path, "push", "d1", &body, Some(sign("a guess", &body)), "application/json").await;
    assert_eq!(st, 401);
    problem(&h, &b, "unauthorized");
    let (st, h, b) = hook.send(path, "push", "d2", &body, None, "application/json").await;
    assert_eq!(st, 401);
    problem(&h, &b, "unauthorized");
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (st, _, _) = hook.send(path, "push", "d3", &tampered, Some(sign(SECRET, &body)), "application/json").await;
    assert_eq!(st, 401, "the signature covers every byte");
    let (st, h, b) = hook.send(path, "push", "d4", &body, Some(sign(SECRET, &body)), "text/plain").await;
    assert_eq!(st, 415);
    problem(&h, &b, "unsupported-media-type");
    let junk = b"{\"ref\": ";
    let (st, h, b) = hook.send(path, "push", "d5", junk, Some(sign(SECRET, junk)), "application/json").await;
    assert_eq!(st, 400);
    problem(&h, &b, "bad-request");
    let (st, h, b) =
        hook.send("/webhooks/default/nope", "push", "d6", &body, Some(sign(SECRET, &body)), "application/json").await;
    assert_eq!(st, 404);
    problem(&h, &b, "not-found");
    let (st, _, _) =
        hook.send("/webhooks/other/gh", "push", "d7", &body, Some(sign(SECRET, &body)), "application/json").await;
    assert_eq!(st, 404, "a trigger is found in its own namespace only");
    // Larger than the REST API's 64 KiB, within GitHub's 25 MiB: accepted.
    let mut big = push("refs/heads/main", "55");
    big["commits"][0]["message"] = json!("x".repeat(300 * 1024));
    let big = serde_json::to_vec(&big).unwrap();
    let (st, _, b) = hook.send(path, "push", "d-big", &big, Some(sign(SECRET, &big)), "application/json").await;
    assert_eq!(st, 202, "{b}");
    let huge = vec![b' '; 26 * 1024 * 1024];
    let (st, _, _) = hook.send(path, "push", "d8", &huge, Some(sign(SECRET, &huge)), "application/json").await;
    assert_eq!(st, 413);
    // GitHub's form encoding carries the same JSON.
    let form = format!("payload={}", url_encode(&String::from_utf8(body.clone()).unwrap()));
    let (st, _, b) = hook
        .send(
            path,
            "push",
            "d9",
            form.as_bytes(),
            Some(sign(SECRET, form.as_bytes())),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(st, 202, "{b}");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let made = tasks.list(&ListParams::default().labels("ephemera.dev/trigger=gh")).await.unwrap();
    assert_eq!(made.items.len(), 2, "only the genuine deliveries made Tasks");
    // Refusals are counted and the newest is kept with its reason, outside the delivery log.
    let triggers_api: Api<TaskTrigger> = Api::namespaced(s.client.clone(), "default");
    let st = eventually(10, "refusals counted", || async {
        let st = triggers_api.get("gh").await.ok()?.status?;
        (st.counters.get("Refused").copied().unwrap_or_default() >= 4 && st.last_refused.is_some()).then_some(st)
    })
    .await;
    assert!(st.deliveries.iter().all(|d| d.outcome != "Refused"), "{st:?}");
    assert!(!st.last_refused.unwrap().reason.is_empty());
    // A rule that does not compile, or a Secret that is missing, is on the trigger before any delivery.
    let mut bad = gh_spec("bad-cel", json!({}));
    bad["spec"]["rules"][0]["filter"] = json!("body.ref.startsWith(");
    trigger(&s, bad).await;
    trigger(&s, gh_spec("no-secret", json!({"secretRef": {"name": "absent", "key": "secret"}}))).await;
    let triggers: Api<TaskTrigger> = Api::namespaced(s.client.clone(), "default");
    let ready = |name: &'static str| {
        let triggers = triggers.clone();
        async move {
            eventually(10, "the Ready condition", || async {
                let st = triggers.get(name).await.ok()?.status?;
                st.conditions.into_iter().find(|c| c.type_ == "Ready")
            })
            .await
        }
    };
    let c = ready("bad-cel").await;
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "RuleInvalid"));
    assert!(c.message.contains("branch-push") && c.message.contains("filter"), "{c:?}");
    let c = ready("no-secret").await;
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "SecretMissing"), "{c:?}");
    assert_eq!(ready("gh").await.status, "True");
    let (st, h, b) = hook
        .send("/webhooks/default/no-secret", "push", "n1", &body, Some(sign(SECRET, &body)), "application/json")
        .await;
    assert_eq!(st, 503);
    problem(&h, &b, "unavailable");
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_rotation_failing_rules_and_concurrency_keys() {
    ephemera_e2e::tls();
    let s = stack().await;
    let op = operator(&s.client, "op-hooks-2");
    secret(&s, "gh-hook", SECRET).await;
    secret(&s, "gh-hook-old", "the old secret").await;
    trigger(&s, gh_spec("limited", json!({"rateLimit": {"requestsPerSecond": 1, "burst": 2}}))).await;
    trigger(&s, gh_spec("rotating", json!({"previousSecretRef": {"name": "gh-hook-old", "key": "secret"}}))).await;
    trigger(
        &s,
        json!({"name": "failing", "spec": {"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"},
        "rules": [{"name": "pr", "filter": "body.pull_request.number > 0", "task": {"command": ["true"]}}]}}),
    )
    .await;
    trigger(
        &s,
        json!({"name": "prs", "spec": {"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"},
        "rules": [{"name": "pr", "events": ["pull_request"], "params": {"pr": "body.number"},
            "concurrency": {"key": "body.repository.full_name + '#' + string(body.number)"},
            "task": {"image": "busybox", "command": ["sh", "-c", "sleep 60"]}}]}}),
    )
    .await;
    let hook = server(&s).await;
    for t in ["limited", "rotating", "failing", "prs"] {
        until_known(&hook, t).await;
    }
    // A burst of 2, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let body = serde_json::to_vec(&push("refs/heads/main", &format!("{i}"))).unwrap();
        let (st, h, _) = hook
            .send(
                "/webhooks/default/limited",
                "push",
                &format!("r{i}"),
                &body,
                Some(sign(SECRET, &body)),
                "application/json",
            )
            .await;
        if st == 429 {
            assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(st);
    }
    assert_eq!(statuses, [202, 202, 429]);
    // During a rotation both secrets verify; a third does not.
    let p = push("refs/heads/main", "44");
    assert_eq!(hook.github("rotating", "push", "rot-1", &p, SECRET).await.0, 202);
    let (st, b) = hook.github("rotating", "push", "rot-2", &push("refs/heads/main", "45"), "the old secret").await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(hook.github("rotating", "push", "rot-3", &push("refs/heads/main", "46"), "neither").await.0, 401);
    // A filter that fails on a delivery refuses it; the trigger keeps working.
    let (st, b) = hook.github("failing", "push", "f-1", &p, SECRET).await;
    assert_eq!(st, 422, "{b}");
    assert!(!b.to_string().contains("pull_request.number"), "the expression is not shown to the sender: {b}");
    let pr = |n: i64, head: &str| {
        json!({"action": "synchronize", "number": n, "pull_request": {"head": {"sha": head}},
            "repository": {"full_name": "Codertocat/Hello-World"}})
    };
    let fine = json!({"pull_request": {"number": 1}});
    assert_eq!(hook.github("failing", "pull_request", "f-2", &fine, SECRET).await.0, 202, "the next delivery is fine");
    // A newer push to the same pull request cancels the Task of the older one; another PR is left alone.
    let (_, first) = hook.github("prs", "pull_request", "pr-1", &pr(7, "a1"), SECRET).await;
    let (_, other) = hook.github("prs", "pull_request", "pr-2", &pr(8, "b1"), SECRET).await;
    let (_, second) = hook.github("prs", "pull_request", "pr-3", &pr(7, "a2"), SECRET).await;
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let first = first["task"].as_str().unwrap().to_string();
    let t = eventually(30, "the older Task cancelled", || async {
        let t = tasks.get(&first).await.ok()?;
        t.status.filter(|st| st.phase == TaskPhase::Cancelled)
    })
    .await;
    assert_eq!(t.reason, "Cancelled");
    for name in [other["task"].as_str().unwrap(), second["task"].as_str().unwrap()] {
        assert!(!tasks.get(name).await.unwrap().spec.cancel, "{name} keeps running");
    }
    // The log says why the failing delivery was refused.
    let triggers: Api<TaskTrigger> = Api::namespaced(s.client.clone(), "default");
    let st = eventually(10, "the failed delivery logged", || async {
        let st = triggers.get("failing").await.ok()?.status?;
        st.deliveries.iter().find(|d| d.id == "f-1").cloned()
    })
    .await;
    assert_eq!((st.outcome.as_str(), st.rule.as_str()), ("Failed", "pr"));
    assert!(st.reason.starts_with("filter:"), "{st:?}");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_salesforce_outbound_message_makes_a_task_per_matching_notification_and_is_acked() {
    ephemera_e2e::tls();
    let s = stack().await;
    secret(&s, "sf-token", SECRET).await;
    trigger(&s, json!({"name": "sf", "spec": {"source": "salesforce", "secretRef": {"name": "sf-token", "key": "secret"},
        "allowedOrgIds": ["00D5e000000K1uK"], "rules": [{
        "name": "won", "events": ["Opportunity"],
        "filter": "body.notification.sObject.fields.StageName == 'Closed Won'",
        "params": {"opportunity": "body.notification.sObject.fields.Id", "name": "body.notification.sObject.fields.Name"},
        "task": {"image": "busybox", "command": ["true"]}}]}}))
    .await;
    let hook = server(&s).await;
    until_known(&hook, "sf").await;
    let message =
        std::fs::read(ephemera_e2e::stack::repo().join("e2e/examples/salesforce-outbound-message.xml")).unwrap();
    // The endpoint URL an admin gives Salesforce carries the token (Salesforce signs nothing).
    let token: String = SECRET
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let send_to = |query: String, body: Vec<u8>| {
        let http = hook.http.clone();
        let url = format!("{}/webhooks/default/sf{query}", hook.url);
        async move {
            let resp = http
                .post(url)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"\"")
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, ct) = (resp.status().as_u16(), resp.headers()["content-type"].to_str().unwrap().to_string());
            (status, ct, resp.text().await.unwrap())
        }
    };
    let send = |body: Vec<u8>| send_to(format!("?token={token}"), body);
    let (st, ct, text) = send(message.clone()).await;
    assert_eq!((st, ct.as_str()), (200, "text/xml; charset=utf-8"), "{text}");
    assert!(text.contains("<Ack>true</Ack>"), "{text}");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let made = tasks.list(&ListParams::default().labels("ephemera.dev/trigger=sf")).await.unwrap();
    assert_eq!(made.items.len(), 1, "one notification is Closed Won");
    let t = &made.items[0];
    assert_eq!(
        (t.spec.params["opportunity"].as_str(), t.spec.params["name"].as_str()),
        ("0065e00000G7VhYAAV", "Renewal 2027")
    );
    let o = t.spec.origin.clone().unwrap();
    assert_eq!((o.event.as_str(), o.delivery.as_str()), ("Opportunity", "04l5e00000Aq2xKAAR"));
    assert!(
        !serde_json::to_string(&t.spec).unwrap().contains("live_session"),
        "the Salesforce session never reaches a Task"
    );
    // Salesforce redelivers until acked, out of order: nothing new is made.
    let (st, _, text) = send(message.clone()).await;
    assert!(st == 200 && text.contains("<Ack>true</Ack>"));
    assert_eq!(tasks.list(&ListParams::default().labels("ephemera.dev/trigger=sf")).await.unwrap().items.len(), 1);
    // Another org, or no XML, is refused.
    let other = String::from_utf8(message.clone()).unwrap().replace("00D5e000000K1uKEAS", "00D5e000000XXXXEAS");
    assert_eq!(send(other.into_bytes()).await.0, 401);
    assert_eq!(send(b"{\"not\": \"soap\"}".to_vec()).await.0, 400);
    // Knowing an org id is not enough: without the URL's token nothing is parsed or made.
    assert_eq!(send_to(String::new(), message.clone()).await.0, 401);
    assert_eq!(send_to("?token=guess".into(), message).await.0, 401);
}

/// HMAC-SHA256 by `ring`.
pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_bitbucket_azure_devops_and_standard_webhooks_are_each_verified_their_way() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    ephemera_e2e::tls();
    let s = stack().await;
    secret(&s, "hook", SECRET).await;
    // Standard Webhooks secrets are `whsec_<base64 key>`.
    let whsec_key = b"a 24-byte signing key!!!";
    secret(&s, "whsec", &format!("whsec_{}", b64(whsec_key))).await;
    let rule = |events: Value, param: &str| json!([{"name": "r", "events": events, "params": {"p": param}, "task": {"command": ["true"]}}]);
    let secret_ref = json!({"name": "hook", "key": "secret"});
    trigger(&s, json!({"name": "gl", "spec": {"source": "gitlab", "secretRef": secret_ref, "rules": rule(json!(["Push Hook"]), "body.project.path_with_namespace")}})).await;
    trigger(&s, json!({"name": "bb", "spec": {"source": "bitbucket", "secretRef": secret_ref, "rules": rule(json!(["repo:push"]), "body.repository.full_name")}})).await;
    trigger(&s, json!({"name": "az", "spec": {"source": "azure-devops", "secretRef": secret_ref, "azure": {"basicUsername": "azdo"},
        "rules": rule(json!(["git.push"]), "body.resource.repository.name")}})).await;
    trigger(
        &s,
        json!({"name": "sw", "spec": {"source": "standard-webhooks", "secretRef": {"name": "whsec", "key": "secret"},
        "rules": rule(json!(["deploy.requested"]), "body.data.org")}}),
    )
    .await;
    let hook = server(&s).await;
    for t in ["gl", "bb", "az", "sw"] {
        until_known(&hook, t).await;
    }
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: Value| {
        let http = hook.http.clone();
        let url = format!("{}/webhooks/default/{path}", hook.url);
        async move {
            let mut req =
                http.post(url).header("content-type", "application/json").body(serde_json::to_vec(&body).unwrap());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let param = |name: String| {
        let tasks = tasks.clone();
        async move { tasks.get(&name).await.unwrap().spec.params["p"].clone() }
    };
    // GitLab: the token as it is; Idempotency-Key is the same on retries.
    let gl = json!({"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": "acme/app"}});
    let gl_headers = |token: &str| {
        vec![
            ("x-gitlab-event", "Push Hook".to_string()),
            ("x-gitlab-token", token.to_string()),
            ("idempotency-key", "gl-1".to_string()),
        ]
    };
    // A hostile Task author who guesses the next idempotency key creates a Task under the name a
    // plain hash of the trigger's uid and the delivery id would give, labelled and with an origin as
    // if the trigger had made it for that delivery.
    let gl_uid =
        Api::<TaskTrigger>::namespaced(s.client.clone(), "default").get("gl").await.unwrap().metadata.uid.unwrap();
    let plain: String =
        sha2::Sha256::digest(format!("{gl_uid}/gl-1")).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let squatted = format!("gl-{plain}");
    let decoy: Task = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": squatted, "labels": {"ephemera.dev/trigger": "gl", "ephemera.dev/trigger-rule": "r"}},
        "spec": {"image": "busybox", "command": ["sh", "-c", "echo pwned"],
            "origin": {"source": "webhook", "requester": "trigger:default/gl", "trigger": "gl", "event": "Push Hook", "delivery": "gl-1"}}}))
    .unwrap();
    tasks.create(&PostParams::default(), &decoy).await.unwrap();
    let (st, b) = post("gl", gl_headers(SECRET), gl.clone()).await;
    assert_eq!(st, 202, "{b}");
    assert_ne!(b["task"], json!(squatted), "the delivery gets its own Task, not the decoy");
    assert_eq!(param(b["task"].as_str().unwrap().into()).await, "acme/app");
    assert_eq!(post("gl", gl_headers(SECRET), gl.clone()).await.1["redelivered"], true);
    assert_eq!(post("gl", gl_headers("wrong"), gl).await.0, 401);
    // Bitbucket Cloud: sha256=<hex> in X-Hub-Signature; X-Request-UUID across attempts.
    let bb = json!({"push": {"changes": []}, "repository": {"full_name": "acme/app", "type": "repository"}});
    let bb_body = serde_json::to_vec(&bb).unwrap();
    let bb_headers = |sig: String| {
        vec![
            ("x-event-key", "repo:push".to_string()),
            ("x-request-uuid", "{b6f1}".to_string()),
            ("x-attempt-number", "1".to_string()),
            ("x-hub-signature", sig),
        ]
    };
    let (st, b) =
        post("bb", bb_headers(format!("sha256={}", hex(&mac(SECRET.as_bytes(), &[&bb_body])))), bb.clone()).await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(param(b["task"].as_str().unwrap().into()).await, "acme/app");
    assert_eq!(post("bb", bb_headers(format!("sha256={}", hex(&mac(b"wrong", &[&bb_body])))), bb).await.0, 401);
    // Azure DevOps: basic authentication; the subscription and notification ids dedupe.
    let az = json!({"subscriptionId": "6f8d2b1e-0000-4000-8000-000000000000", "notificationId": 4, "id": "e1a2b3c4",
        "eventType": "git.push", "publisherId": "tfs", "resource": {"repository": {"name": "app"}}});
    let basic = |pw: &str| vec![("authorization", format!("Basic {}", b64(format!("azdo:{pw}").as_bytes())))];
    let (st, b) = post("az", basic(SECRET), az.clone()).await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(param(b["task"].as_str().unwrap().into()).await, "app");
    assert_eq!(post("az", basic(SECRET), az.clone()).await.1["redelivered"], true);
    assert_eq!(post("az", basic("guess"), az).await.0, 401);
    // Standard Webhooks: v1 signatures over id.timestamp.body, within the replay window.
    let sw = json!({"type": "deploy.requested", "timestamp": "2026-12-01T10:00:00Z", "data": {"org": "uat"}});
    let sw_body = serde_json::to_vec(&sw).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let sw_headers = |ts: i64, key: &[u8]| {
        let sig =
            b64(&mac(key, &[b"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", b".", ts.to_string().as_bytes(), b".", &sw_body]));
        vec![
            ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", format!("v1,{sig}")),
        ]
    };
    let (st, b) = post("sw", sw_headers(now, whsec_key), sw.clone()).await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(param(b["task"].as_str().unwrap().into()).await, "uat");
    assert_eq!(post("sw", sw_headers(now - 600, whsec_key), sw.clone()).await.0, 401, "outside the replay window");
    assert_eq!(post("sw", sw_headers(now, b"another key"), sw).await.0, 401);
}
