//! The `ephemera` CLI as a CI step runs it, against the API server, the operator and worker Pods:
//! `run --follow` exits with the Task's own exit code (0, 3), with 124 when it timed out and 125
//! when it was cancelled, with 64 when refused and 69 when the server is unreachable; a CI job's
//! retried step gets the Task it started; `watch` across the loss of an API replica shows every
//! event exactly once; `-o json` parses; completion scripts generate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemera_api::auth::oidc::{OidcConfig, Rule};
use ephemera_api::auth::Verb;
use ephemera_api::limits::RateLimiter;
use ephemera_api::stream::hub::Limits;
use ephemera_devcluster::testing::eventually;
use ephemera_e2e::api::{api_token, ApiServer, Live};
use ephemera_e2e::fakes::oidc::FakeIssuer;
use ephemera_e2e::stack::{cli_binary, config, operator_with, stack, Stack};
use serde_json::Value;

fn key() -> Vec<u8> {
    b"the CLI test's shared progress key, 32+ bytes".to_vec()
}

async fn replica(s: &Stack) -> ApiServer {
    let live = Live { key: key(), ring: 100, limits: Limits::default(), send_buffer: None };
    ApiServer::start_live(s, OidcConfig::default(), RateLimiter::new(10_000, 10_000.0), Some(live)).await
}

fn operator(s: &Stack, id: &str, progress_url: &str) -> tokio::task::JoinHandle<()> {
    let mut cfg = config(id);
    cfg.progress =
        Some(ephemera_operator::ProgressConfig { url: progress_url.into(), key: std::sync::Arc::new(key().into()) });
    operator_with(&s.client, cfg)
}

/// The CLI with `args`, in a clean environment (no CI variables, no config file) plus `env`; no
/// `--token` when `token` is empty.
fn ephemera(server: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let home = std::env::temp_dir().join("ephemera-cli-test-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = tokio::process::Command::new(cli_binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("EPHEMERA_CONFIG", home.join("config.yaml"))
        .args(["--server", server])
        .args(if token.is_empty() { vec![] } else { vec!["--token", token] })
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: tokio::process::Command) -> (i32, String, String) {
    let out: Output =
        tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("the CLI hung").unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    (out.status.code().unwrap_or(-1), o, e)
}

async fn known(api: &ApiServer, token: &str) {
    let http = reqwest::Client::new();
    eventually(10, "token known", || async {
        let r = http.get(format!("{}/api/v1/queues", api.url)).bearer_auth(token).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_follow_exits_as_the_task_did_and_says_why() {
    ephemera_e2e::tls();
    let s = stack().await;
    let api = replica(&s).await;
    let op = operator(&s, "op-cli", &api.url);
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read, Verb::Cancel, Verb::Delete], 1).await;
    known(&api, &token).await;
    let run = |args: &[&str]| {
        ephemera(&api.url, &token, &[&["run", "--image", "busybox", "--follow"][..], args].concat(), &[])
    };

    // Succeeding: its output on stdout, progress and the end on stderr, exit 0.
    let script = "echo hello from the task; echo '::progress pct=50 msg=half way'; sleep 1; echo done";
    let (code, out, err) = output(run(&["--", "sh", "-c", script])).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("hello from the task") && out.contains("done"), "the logs on stdout: {out:?}");
    assert_eq!(out.matches("hello from the task").count(), 1, "each line once: {out:?}");
    assert!(err.contains("50% half way"), "plain progress lines off a terminal: {err}");
    assert!(err.contains("Succeeded"), "{err}");

    // Failing: the Task's own exit code.
    let (code, out, err) = output(run(&["--name", "cli-fails", "--", "sh", "-c", "echo about to fail; exit 3"])).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("about to fail"), "{out}");
    assert!(err.contains("Failed") && err.contains("exit code 3"), "{err}");

    // Timed out: 124.
    let (code, _, err) = output(run(&["--timeout", "3", "--", "sh", "-c", "sleep 60"])).await;
    assert_eq!(code, 124, "{err}");
    assert!(err.contains("TimedOut"), "{err}");

    // Cancelled while followed: 125.
    let follower = run(&["--name", "cli-cancel-me", "--", "sh", "-c", "echo waiting; sleep 120"]).output();
    let canceller = async {
        let http = reqwest::Client::new();
        eventually(60, "cli-cancel-me running", || async {
            let t: Value = http
                .get(format!("{}/api/v1/namespaces/default/tasks/cli-cancel-me", api.url))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (t["phase"] == "Running").then_some(())
        })
        .await;
        output(ephemera(&api.url, &token, &["cancel", "cli-cancel-me"], &[])).await
    };
    let (followed, cancelled) = tokio::join!(tokio::time::timeout(Duration::from_secs(120), follower), canceller);
    assert_eq!(cancelled.0, 0, "{}", cancelled.2);
    let followed = followed.expect("the follower hung").unwrap();
    let err = String::from_utf8_lossy(&followed.stderr);
    assert_eq!(followed.status.code(), Some(125), "{err}");
    assert!(err.contains("Cancelled"), "{err}");

    // Refused (a bad body, a bad token): 64 with the server's problem detail, no stack trace.
    let (code, _, err) = output(run(&["--priority", "99999999", "--", "true"])).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("priority"), "the field named: {err}");
    let (code, _, err) = output(ephemera(&api.url, "eph_not-a-token", &["list"], &[])).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("401") || err.to_lowercase().contains("unauthori"), "{err}");
    assert!(err.contains("--token"), "says which credential was refused: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    // Unreachable: 69.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, err) = output(ephemera(&format!("http://{closed}"), &token, &["list"], &[])).await;
    assert_eq!(code, 69, "{err}");

    // A retried CI step gets the Task it started, not a second one.
    let gha = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_RUN_ID", "7001"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_JOB", "deploy"),
        ("GITHUB_ACTION", "__run_2"),
    ];
    let first =
        output(ephemera(&api.url, &token, &["run", "--image", "busybox", "--", "sh", "-c", "echo ci"], &gha)).await;
    let again =
        output(ephemera(&api.url, &token, &["run", "--image", "busybox", "--", "sh", "-c", "echo ci"], &gha)).await;
    assert_eq!((first.0, again.0), (0, 0), "{}\n{}", first.2, again.2);
    assert_eq!(first.1.trim(), again.1.trim(), "the same Task: {} / {}", first.1, again.1);
    assert!(again.2.contains("already created"), "{}", again.2);
    let other = [("GITHUB_RUN_ATTEMPT", "2"), gha[0], gha[1], gha[3], gha[4]];
    let rerun =
        output(ephemera(&api.url, &token, &["run", "--image", "busybox", "--", "sh", "-c", "echo ci"], &other)).await;
    assert_ne!(rerun.1.trim(), first.1.trim(), "a re-run of the workflow starts a new Task");

    // -o json parses, and is the server's document.
    let (code, out, err) = output(ephemera(&api.url, &token, &["get", first.1.trim(), "-o", "json"], &[])).await;
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).expect("get -o json is JSON");
    assert_eq!(doc["name"], first.1.trim());
    let (_, out, _) = output(ephemera(&api.url, &token, &["list", "--all", "--limit", "2", "-o", "json"], &[])).await;
    let list: Value = serde_json::from_str(&out).expect("list -o json is JSON");
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"cli-cancel-me") && names.len() >= 6, "every page: {names:?}");
    let (code, out, _) = output(ephemera(&api.url, &token, &["list", "--phase", "Failed"], &[])).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME") && out.lines().count() == 2, "one Failed Task: {out}");
    let (code, out, err) = output(ephemera(&api.url, &token, &["logs", "cli-fails"], &[])).await;
    assert_eq!((code, out.trim()), (0, "about to fail"), "{err}");
    let (code, out, err) = output(ephemera(&api.url, &token, &["result", "cli-fails", "-o", "json"], &[])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["exitCode"], 3);
    op.abort();
}

/// A TCP relay the CLI talks to, forwarding each new connection to whichever replica is current.
struct Relay {
    url: String,
    target: Arc<Mutex<String>>,
    connections: Arc<Mutex<u32>>,
}

async fn relay(first: &str) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let target = Arc::new(Mutex::new(first.trim_start_matches("http://").to_string()));
    let connections = Arc::new(Mutex::new(0));
    let (t, c) = (target.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = t.lock().unwrap().clone();
            *c.lock().unwrap() += 1;
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    Relay { url, target, connections }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_across_the_loss_of_a_replica_shows_every_event_exactly_once() {
    ephemera_e2e::tls();
    let s = stack().await;
    let (a, b) = (replica(&s).await, replica(&s).await);
    // The workers report to the replica that stays; the CLI reaches A first, then B.
    let op = operator(&s, "op-cli-watch", &b.url);
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 1).await;
    known(&a, &token).await;
    known(&b, &token).await;
    let relay = relay(&a.url).await;

    let script =
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"::progress pct=$((i*8)) msg=step $i\"; sleep 0.7; done";
    let (code, name, err) =
        output(ephemera(&b.url, &token, &["run", "--image", "busybox", "--", "sh", "-c", script], &[])).await;
    assert_eq!(code, 0, "{err}");
    let name = name.trim().to_string();
    let watch = ephemera(&relay.url, &token, &["watch", &name, "-o", "json"], &[]).output();
    let failover = async {
        // Let the watch see a few events through A, then drain A away.
        tokio::time::sleep(Duration::from_secs(4)).await;
        *relay.target.lock().unwrap() = b.url.trim_start_matches("http://").to_string();
        let _ = a.stop.send(true);
    };
    let (watched, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(120), watch), failover);
    let watched = watched.expect("watch hung").unwrap();
    let (out, err) = (String::from_utf8_lossy(&watched.stdout), String::from_utf8_lossy(&watched.stderr));
    assert_eq!(watched.status.code(), Some(0), "{err}");
    assert!(*relay.connections.lock().unwrap() >= 2, "the watch reconnected (through B)");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let seqs: Vec<i64> = lines.iter().filter_map(|l| l["event"]["seq"].as_i64()).collect();
    let want: Vec<i64> = (1..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, want, "every event once, in order, nothing lost: {out}");
    assert!(lines.iter().all(|l| l.get("gap").is_none()), "no gap: {out}");
    assert_eq!(lines.iter().filter(|l| l.get("end").is_some()).count(), 1, "{out}");
    let steps = lines.iter().filter(|l| l["event"]["message"].as_str().is_some_and(|m| m.starts_with("step "))).count();
    assert_eq!(steps, 12, "every progress line: {out}");
    op.abort();
}

/// GitHub's ID token service as a job sees it: a bearer-protected GET that mints a token for the
/// `audience` asked for.
async fn github_token_service(issuer: Arc<FakeIssuer>) -> String {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/_apis/token",
        axum::routing::get(move |headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| {
            let issuer = issuer.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer job-request-token") {
                    return Err(StatusCode::FORBIDDEN);
                }
                let now = jiff::Timestamp::now().as_second();
                let claims = serde_json::json!({"sub": "repo:acme/app:ref:refs/heads/main", "aud": q.get("audience"),
                    "repository": "acme/app", "iat": now, "exp": now + 300});
                Ok(axum::Json(serde_json::json!({"value": issuer.token(claims)})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/_apis/token?api-version=2.0", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ci_job_runs_with_its_own_oidc_token_and_no_stored_secret() {
    ephemera_e2e::tls();
    let s = stack().await;
    let issuer = Arc::new(FakeIssuer::start().await);
    let rule = Rule {
        matches: [("repository".to_string(), "acme/app".to_string())].into(),
        namespaces: vec!["default".into()],
        verbs: vec![Verb::Create, Verb::Read],
    };
    let live = Live { key: key(), ring: 100, limits: Limits::default(), send_buffer: None };
    let api = ApiServer::start_live(&s, issuer.config(rule), RateLimiter::new(10_000, 10_000.0), Some(live)).await;
    let op = operator(&s, "op-cli-oidc", &api.url);
    let service = github_token_service(issuer.clone()).await;
    let gha = |request_token: &'static str| {
        vec![
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_JOB", "deploy"),
            ("GITHUB_ACTION", "__run"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", service.as_str()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token),
        ]
    };
    let run = ["run", "--image", "busybox", "-F", "--", "sh", "-c", "echo ran as the CI job"];
    let (code, out, err) = output(ephemera(&api.url, "", &run, &gha("job-request-token"))).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ran as the CI job"), "{out}");
    let (_, list, _) = output(ephemera(&api.url, "", &["list", "-o", "json"], &gha("job-request-token"))).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let by = list["items"][0]["requestedBy"].as_str().unwrap().to_string();
    assert!(by.starts_with("oidc:"), "the Task is the job's: {by}");

    // A job without `id-token: write` (GitHub refuses its request): said, exit 69.
    let (code, _, err) = output(ephemera(&api.url, "", &["list"], &gha("wrong"))).await;
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("id-token: write"), "{err}");

    // GitLab and others hand the token over in EPHEMERA_ID_TOKEN.
    let now = jiff::Timestamp::now().as_second();
    let token = issuer.token(serde_json::json!({"sub": "project_path:acme/app", "aud": "ephemera", "repository": "acme/app", "iat": now, "exp": now + 300}));
    let (code, out, err) = output(ephemera(
        &api.url,
        "",
        &["list", "-o", "json"],
        &[("GITLAB_CI", "true"), ("CI_JOB_ID", "9"), ("EPHEMERA_ID_TOKEN", &token)],
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(serde_json::from_str::<Value>(&out).unwrap()["items"].as_array().is_some_and(|i| !i.is_empty()));
    // A token that does not match the issuer's rule is refused by the server: 64, naming the source.
    let other = issuer.token(
        serde_json::json!({"sub": "x", "aud": "ephemera", "repository": "evil/fork", "iat": now, "exp": now + 300}),
    );
    let (code, _, err) = output(ephemera(&api.url, "", &["list"], &[("EPHEMERA_ID_TOKEN", &other)])).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("OIDC"), "{err}");
    op.abort();
}

#[test]
fn completion_scripts_generate_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = std::process::Command::new(cli_binary()).args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ephemera") && text.contains("watch") && text.len() > 1000, "{shell}: {text}");
    }
    let help = std::process::Command::new(cli_binary()).args(["run", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
