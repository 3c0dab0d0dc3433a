//! The REST API against the local cluster and the operator: every endpoint, both authentication
//! paths, idempotent creation under concurrent retries, paging while Tasks are being created, log
//! following, and problem documents for every error.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use ephemera_api::auth::oidc::{OidcConfig, Rule};
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_crds::Task;
use ephemera_devcluster::testing::eventually;
use ephemera_e2e::api::{api_token, ApiServer};
use ephemera_e2e::fakes::oidc::FakeIssuer;
use ephemera_e2e::stack::{operator, stack, Stack};
use kube::api::Api;
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Api_ {
    url: String,
    metrics_url: String,
    http: reqwest::Client,
}

async fn serve(s: &Stack, oidc: OidcConfig, limiter: RateLimiter) -> Api_ {
    let server = ApiServer::start(s, oidc, limiter).await;
    Api_ { url: server.url, metrics_url: server.metrics_url, http: reqwest::Client::new() }
}

async fn token(s: &Stack, namespaces: &[&str], verbs: &[Verb], hours: i64) -> String {
    api_token(s, namespaces, verbs, hours).await
}

impl Api_ {
    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn is_problem(h: &reqwest::header::HeaderMap, body: &Value, kind: &str) {
    assert_eq!(h.get("content-type").unwrap(), "application/problem+json", "{body}");
    assert_eq!(body["type"], format!("https://ephemera.dev/problems/{kind}"), "{body}");
    assert!(body["title"].is_string() && body["status"].is_number() && body["detail"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_end_to_end_with_api_tokens() {
    ephemera_e2e::tls();
    let s = stack().await;
    let op = operator(&s.client, "op-1");
    let api = serve(&s, OidcConfig::default(), RateLimiter::new(1000, 1000.0)).await;
    let full = token(&s, &["default"], &[Verb::Create, Verb::Read, Verb::Cancel, Verb::Delete], 1).await;
    let reader = token(&s, &["default"], &[Verb::Read], 1).await;
    let elsewhere = token(&s, &["other"], &[Verb::Create, Verb::Read], 1).await;
    let expired = token(&s, &["*"], &[Verb::Create, Verb::Read], -1).await;
    let base = "/api/v1/namespaces/default/tasks";
    // Token Secrets are watched: wait until the new ones are known.
    eventually(10, "tokens known", || async {
        (api.call("GET", base, Some(&full), None).await.0 == 200).then_some(())
    })
    .await;

    // Authentication and authorisation.
    let (st, h, b) = api.call("GET", base, None, None).await;
    assert_eq!(st, 401);
    assert!(h.get("www-authenticate").is_some());
    is_problem(&h, &b, "unauthorized");
    for bad in [expired.as_str(), "eph_0000_nope", "not-a-jwt"] {
        let (st, h, b) = api.call("GET", base, Some(bad), None).await;
        assert_eq!(st, 401, "{bad}: {b}");
        is_problem(&h, &b, "unauthorized");
    }
    let hello = json!({"command": ["sh", "-c", "echo one; sleep 1; echo two; echo fine > \"$EPHEMERA_RESULT_FILE\""], "image": "busybox", "labels": {"app": "web"}});
    let (st, h, b) = api.call("POST", base, Some(&reader), Some(hello.clone())).await;
    assert_eq!(st, 403, "wrong verb: {b}");
    is_problem(&h, &b, "forbidden");
    assert_eq!(api.call("POST", base, Some(&elsewhere), Some(hello.clone())).await.0, 403, "wrong namespace");

    // Bad input.
    let (st, h, b) =
        api.call("POST", base, Some(&full), Some(json!({"command": [], "env": {"HOME": "/"}, "priority": 9999}))).await;
    assert_eq!(st, 422);
    is_problem(&h, &b, "validation-failed");
    assert!(b["errors"].as_array().unwrap().len() >= 3, "{b}");
    let raw = |ct: &'static str, body: Vec<u8>| {
        let (http, url, full) = (api.http.clone(), format!("{}{base}", api.url), full.clone());
        async move { http.post(url).bearer_auth(full).header("content-type", ct).body(body).send().await.unwrap().status() }
    };
    assert_eq!(raw("text/plain", b"{}".to_vec()).await, 415);
    assert_eq!(raw("application/json", b"{not json".to_vec()).await, 400);
    assert_eq!(raw("application/json", vec![b' '; 200 * 1024]).await, 413);
    assert_eq!(api.call("GET", "/api/v1/nowhere", Some(&full), None).await.0, 404);

    // Create, get, logs (following), result.
    let (st, h, b) = api.call("POST", base, Some(&full), Some(hello.clone())).await;
    assert_eq!(st, 201, "{b}");
    let name = b["name"].as_str().unwrap().to_string();
    assert_eq!(h.get("location").unwrap().to_str().unwrap(), format!("{base}/{name}"));
    assert!(b["requestedBy"].as_str().unwrap().starts_with("token:"), "attributed: {b}");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let t = tasks.get(&name).await.unwrap();
    let finalizers = t.metadata.finalizers.clone().unwrap_or_default();
    assert_eq!(
        finalizers,
        [ephemera_crds::CLEANUP_FINALIZER],
        "created with the finalizer: the operator needs no write to add it"
    );
    assert_eq!(t.spec.origin.unwrap().requester, b["requestedBy"].as_str().unwrap(), "the Task records who asked");
    let (st, h, b) = api.call("GET", &format!("{base}/{name}/result"), Some(&reader), None).await;
    if st == 409 {
        is_problem(&h, &b, "task-not-finished");
    }
    let logs = eventually(30, "logs", || async {
        let r = api
            .http
            .get(format!("{}{base}/{name}/logs?follow=true", api.url))
            .bearer_auth(&reader)
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(r)
    })
    .await;
    let text = logs.text().await.unwrap();
    assert!(text.contains("one\n") && text.contains("two\n"), "followed to the end: {text:?}");
    let b = eventually(30, "result", || async {
        let (st, _, b) = api.call("GET", &format!("{base}/{name}/result"), Some(&reader), None).await;
        (st == 200).then_some(b)
    })
    .await;
    assert_eq!(
        (b["phase"].as_str(), b["exitCode"].as_i64(), b["result"].as_str()),
        (Some("Succeeded"), Some(0), Some("fine\n"))
    );
    let (st, _, b) = api.call("GET", &format!("{base}/{name}"), Some(&reader), None).await;
    assert_eq!((st.as_u16(), b["phase"].as_str()), (200, Some("Succeeded")));

    // Cancel a running Task; cancelling a finished one conflicts.
    let (_, _, b) =
        api.call("POST", base, Some(&full), Some(json!({"command": ["sleep", "60"], "image": "busybox"}))).await;
    let long = b["name"].as_str().unwrap().to_string();
    let (st, _, b) = api.call("POST", &format!("{base}/{long}/cancel"), Some(&full), None).await;
    assert_eq!((st.as_u16(), b["cancelRequested"].as_bool()), (202, Some(true)));
    eventually(30, "cancelled", || async {
        (api.call("GET", &format!("{base}/{long}"), Some(&reader), None).await.2["phase"] == "Cancelled").then_some(())
    })
    .await;
    let (st, h, b) = api.call("POST", &format!("{base}/{name}/cancel"), Some(&full), None).await;
    assert_eq!(st, 409);
    is_problem(&h, &b, "task-finished");

    // Idempotent creation under concurrent retries: exactly one Task.
    let body = json!({"command": ["true"], "image": "busybox"});
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (http, url, full, body) = (api.http.clone(), format!("{}{base}", api.url), full.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(full)
                .header("Idempotency-Key", "deploy-42")
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap()["name"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(st, _)| *st == 201).count(), 1, "{results:?}");
    assert!(results.iter().all(|(st, n)| (*st == 200 || *st == 201) && *n == results[0].1), "{results:?}");
    let (st, h, b) = api.call("POST", base, Some(&full), Some(json!({"command": ["false"]}))).await;
    assert_eq!(st, 201, "a request without a key always creates: {b}");
    let _ = h;
    let r = api
        .http
        .post(format!("{}{base}", api.url))
        .bearer_auth(&full)
        .header("Idempotency-Key", "deploy-42")
        .json(&json!({"command": ["other"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "same key, different request");

    // Filters and paging while Tasks are being created: no duplicates, nothing missed.
    let (_, _, b) = api.call("GET", &format!("{base}?labelSelector=app%3Dweb"), Some(&reader), None).await;
    assert_eq!(b["items"].as_array().unwrap().len(), 1, "{b}");
    let (st, _, _) = api.call("GET", &format!("{base}?phase=Bogus"), Some(&reader), None).await;
    assert_eq!(st, 400);
    let (_, _, b) = api.call("GET", &format!("{base}?phase=Cancelled"), Some(&reader), None).await;
    assert_eq!(b["items"][0]["name"], long.as_str());
    for i in 0..10 {
        api.call(
            "POST",
            base,
            Some(&full),
            Some(json!({"name": format!("page-{i}"), "command": ["true"], "image": "busybox"})),
        )
        .await;
    }
    let before: Vec<String> =
        tasks.list(&Default::default()).await.unwrap().items.iter().map(|t| t.metadata.name.clone().unwrap()).collect();
    let writer = {
        let (http, url, full) = (api.http.clone(), format!("{}{base}", api.url), full.clone());
        tokio::spawn(async move {
            for i in 0..10 {
                let _ = http
                    .post(&url)
                    .bearer_auth(&full)
                    .json(&json!({"name": format!("late-{i}"), "command": ["true"], "image": "busybox"}))
                    .send()
                    .await;
            }
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (st, _, b) = api.call("GET", &format!("{base}?limit=3{q}"), Some(&reader), None).await;
        assert_eq!(st, 200, "{b}");
        seen.extend(b["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()));
        match b["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    writer.await.unwrap();
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates across pages");
    assert!(before.iter().all(|n| seen.contains(n)), "every Task that existed before paging was listed");

    // Queues, delete, OpenAPI, metrics.
    let (st, _, b) = api.call("GET", "/api/v1/queues", Some(&reader), None).await;
    assert_eq!(st, 200);
    assert!(b.as_array().unwrap().iter().any(|q| q["name"] == "default"), "{b}");
    let (st, _, _) = api.call("DELETE", &format!("{base}/{name}"), Some(&full), None).await;
    assert_eq!(st, 202);
    eventually(30, "deleted", || async {
        (api.call("GET", &format!("{base}/{name}"), Some(&reader), None).await.0 == 404).then_some(())
    })
    .await;
    let (st, _, doc) = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!((st.as_u16(), doc["openapi"].as_str()), (200, Some("3.1.0")));
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/tasks"]["post"].is_object());
    // Metrics are on their own listener, not the public port.
    let m = reqwest::get(format!("{}/metrics", api.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(m.contains("ephemera_api_tasks_created_total"), "{m}");
    assert_eq!(api.call("GET", "/metrics", None, None).await.0.as_u16(), 404, "not served to every client");

    // Revoking a token (what `ephemera-api token revoke <id>` does) takes effect without a restart.
    let id = reader.split('_').nth(1).unwrap().to_string();
    ephemera_api::auth::tokens::revoke(s.client.clone(), "default", &id).await.unwrap();
    eventually(10, "the revoked token refused", || async {
        (api.call("GET", base, Some(&reader), None).await.0 == 401).then_some(())
    })
    .await;
    assert_eq!(api.call("GET", base, Some(&full), None).await.0, 200, "other tokens still work");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_tokens_and_rate_limits() {
    ephemera_e2e::tls();
    let s = stack().await;
    let issuer = FakeIssuer::start().await;
    let oidc = issuer.config(Rule {
        matches: [
            ("repository".to_string(), "acme/app".to_string()),
            ("ref".to_string(), "refs/heads/main".to_string()),
        ]
        .into(),
        namespaces: vec!["default".into()],
        verbs: vec![Verb::Create, Verb::Read],
    });
    let api = serve(&s, oidc, RateLimiter::new(5, 0.2)).await;
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"sub": "repo:acme/app:ref:refs/heads/main", "aud": "ephemera", "repository": "acme/app", "ref": "refs/heads/main", "iat": now, "nbf": now - 5, "exp": now + 300});
    let base = "/api/v1/namespaces/default/tasks";
    let (st, _, b) =
        api.call("POST", base, Some(&issuer.token(claims.clone())), Some(json!({"command": ["true"]}))).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["requestedBy"], format!("oidc:{}#repo:acme/app:ref:refs/heads/main", issuer.url));
    let mut variants = Vec::new();
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    variants.push(("wrong audience", issuer.token(wrong_aud), 401, "audience is not this server"));
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 600);
    variants.push(("expired", issuer.token(expired), 401, "has expired"));
    let mut early = claims.clone();
    early["nbf"] = json!(now + 600);
    variants.push(("not valid yet", issuer.token(early), 401, "not valid yet"));
    let mut unknown = claims.clone();
    unknown["iss"] = json!("https://token.actions.githubusercontent.com");
    variants.push(("unknown issuer", issuer.token(unknown), 401, "unknown token issuer"));
    let forged = FakeIssuer::start().await.token(json!({"iss": issuer.url, "sub": "x", "aud": "ephemera", "repository": "acme/app", "ref": "refs/heads/main", "exp": now + 300}));
    variants.push(("bad signature", forged, 401, "invalid token signature"));
    let mut no_aud = claims.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    variants.push(("no audience", issuer.token(no_aud), 401, "lacks exp, iss or aud"));
    // An attacker's choice of algorithm (HS256 keyed with the public key, or none) is refused before
    // any key is looked at.
    let good_token = issuer.token(claims.clone());
    let body = good_token.split('.').nth(1).unwrap();
    for alg in ["HS256", "none"] {
        use base64::Engine as _;
        let header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        variants.push(("algorithm confusion", format!("{header}.{body}.c2ln"), 401, "only RS256"));
    }
    let mut branch = claims.clone();
    branch["ref"] = json!("refs/heads/feature");
    variants.push(("no rule matches", issuer.token(branch.clone()), 403, "matches no rule"));
    let no_rule = issuer.token(branch.clone());
    for (what, tok, want, why) in variants {
        let (st, h, b) = api.call("GET", base, Some(&tok), None).await;
        assert_eq!(st.as_u16(), want, "{what}: {b}");
        assert!(b["detail"].as_str().unwrap_or_default().contains(why), "{what}: the answer says why: {b}");
        is_problem(&h, &b, if want == 401 { "unauthorized" } else { "forbidden" });
    }
    // A token that matches no rule gets nothing anywhere: no queue listing, no stream ticket, no
    // stream connection slot.
    for (method, path) in [("GET", "/api/v1/queues"), ("POST", "/api/v1/stream/tickets")] {
        let (st, _, b) = api.call(method, path, Some(&no_rule), None).await;
        assert_eq!(st.as_u16(), 403, "{method} {path}: {b}");
    }
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut ws = format!("{}/api/v1/stream", api.url.replace("http://", "ws://")).into_client_request().unwrap();
    ws.headers_mut().insert("authorization", format!("Bearer {no_rule}").parse().unwrap());
    match tokio_tungstenite::connect_async(ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 403),
        other => panic!("a stream connection for a token that grants nothing: {:?}", other.map(|_| ())),
    }
    // 5 requests at once, then 429 with Retry-After for this identity only.
    let good = issuer.token(claims);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (st, h, b) = api.call("GET", base, Some(&good), None).await;
        if st == 429 {
            assert!(h.get("retry-after").unwrap().to_str().unwrap().parse::<u64>().unwrap() >= 1);
            is_problem(&h, &b, "rate-limited");
        }
        statuses.push(st.as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}
