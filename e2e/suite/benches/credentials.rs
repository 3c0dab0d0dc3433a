//! What just-in-time credentials cost. Two measurements, each beside its baseline in the same run:
//! 1. the Vault handshake of one attempt (operator: policy check + wrapped token; worker: wrapping
//!    lookup + unwrap + KV read + revoke-self; operator: revoke by accessor) against a single KV read
//!    with a long-lived token (what a worker holding a static Vault token would do);
//! 2. the handshake of an attempt that signs one RS256 assertion: with the key in Vault Transit (the
//!    worker asks Transit to sign) against the legacy flow (the key read from KV, signed in the worker);
//! 3. Tasks end to end on the local cluster (create → Succeeded, 40 at once) with one static credential
//!    (which now includes the Pod's claim at the operator's hand-off) against the same Tasks without
//!    credentials: after a warm-up of each, in rounds ordered plain, credential, credential, plain
//!    (`BENCH_TASK_ROUNDS`, 2), percentiles over every Task of every round.
//!
//! Run: `cargo bench -p ephemera-e2e --bench credentials` (`BENCH_TASKS`, `BENCH_ROUNDS`,
//! `BENCH_TASK_ROUNDS` change sizes).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ephemera_crds::{Credential, Task, TaskPhase};
use ephemera_devcluster::testing::{bench_result, percentile_ms as pct};
use ephemera_e2e::openbao::OpenBao;
use ephemera_e2e::stack::{config, operator_with, stack};
use ephemera_operator::vault::{Attempt, Issuer, VaultAuth, VaultConfig};
use ephemera_worker::vault::AttemptIdentity;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn handshake(bao: &OpenBao, issuer: &Issuer, cred: &Credential, rounds: usize) -> Vec<Duration> {
    let worker = ephemera_worker::vault::Vault::new(&bao.addr).expect("vault");
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        let policy = issuer.ensure_policy(cred).await.expect("policy");
        let attempt = i32::try_from(i).unwrap_or(0);
        let who = Attempt { namespace: "bench", task: "t", task_uid: "u", attempt };
        let minted = issuer.mint(&who, &[policy], 2, Duration::from_secs(600)).await.expect("mint");
        let me = AttemptIdentity { namespace: "bench".into(), task: "t".into(), task_uid: "u".into(), attempt };
        let token =
            worker.unwrap(&minted.wrapping_token, "auth/token/create/ephemera-task", Some(&me)).await.expect("unwrap");
        let client = worker.with_token(&token).expect("client");
        worker.read(&client, "secret", "bench/static").await.expect("read");
        worker.revoke_self(&client).await.expect("revoke-self");
        issuer.revoke(&minted.accessor, &who).await.expect("revoke");
        times.push(t.elapsed());
    }
    times
}

/// One attempt that signs an assertion: mint (read + sign + revoke-self), unwrap, read KV, sign
/// (Transit, or locally with the KV key), revoke-self, revoke by accessor.
async fn signing_handshake(
    bao: &OpenBao,
    issuer: &Issuer,
    cred: &Credential,
    transit: bool,
    rounds: usize,
) -> Vec<Duration> {
    use ephemera_worker::jwt::{RsaSigner, Signer};
    let worker = ephemera_worker::vault::Vault::new(&bao.addr).expect("vault");
    let claims =
        json!({"iss": "3MVG9bench", "sub": "ci@acme.com", "aud": "https://login.salesforce.com", "exp": 4102444800i64});
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        let policy = issuer.ensure_policy(cred).await.expect("policy");
        let attempt = i32::try_from(i).unwrap_or(0);
        let who = Attempt { namespace: "bench", task: "s", task_uid: "u", attempt };
        let uses = ephemera_operator::vault::uses_for(std::slice::from_ref(cred));
        let minted = issuer.mint(&who, &[policy], uses, Duration::from_secs(600)).await.expect("mint");
        let me = AttemptIdentity { namespace: "bench".into(), task: "s".into(), task_uid: "u".into(), attempt };
        let token =
            worker.unwrap(&minted.wrapping_token, "auth/token/create/ephemera-task", Some(&me)).await.expect("unwrap");
        let client = worker.with_token(&token).expect("client");
        let kv = worker.read(&client, "secret", &cred.spec.vault_path).await.expect("read");
        let jwt = match (&cred.spec.signing_key, transit) {
            (Some(key), true) => Signer::Transit { vault: &worker, token: &token, key }.sign(&claims).await,
            _ => {
                let pem = secrecy::ExposeSecret::expose_secret(&kv["private_key"]).to_string();
                Signer::Local(Box::new(RsaSigner::from_pem(&pem).expect("key"))).sign(&claims).await
            }
        };
        assert!(jwt.expect("signed").split('.').count() == 3);
        worker.revoke_self(&client).await.expect("revoke-self");
        issuer.revoke(&minted.accessor, &who).await.expect("revoke");
        times.push(t.elapsed());
    }
    times
}

async fn plain_reads(bao: &OpenBao, rounds: usize) -> Vec<Duration> {
    let worker = ephemera_worker::vault::Vault::new(&bao.addr).expect("vault");
    let client = worker.with_token(&secrecy::SecretString::from(bao.root_token.clone())).expect("client");
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        worker.read(&client, "secret", "bench/static").await.expect("read");
        times.push(t.elapsed());
    }
    times
}

/// Creates `n` Tasks at once and returns each one's create → Succeeded time.
async fn run_tasks(tasks: &Api<Task>, prefix: &str, n: usize, credentials: &[&str]) -> Vec<Duration> {
    let mut created = HashMap::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let t: Task = serde_json::from_value(
            json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "metadata": {"name": name},
            "spec": {"image": "busybox", "command": ["true"], "credentials": credentials}}),
        )
        .expect("task");
        created.insert(name, Instant::now());
        tasks.create(&PostParams::default(), &t).await.expect("create");
    }
    let mut done = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.len() < n && Instant::now() < deadline {
        for t in tasks.list(&ListParams::default()).await.expect("list") {
            let name = t.metadata.name.clone().unwrap_or_default();
            let phase = t.status.as_ref().map(|s| s.phase).unwrap_or_default();
            if let (Some(start), true) = (created.get(&name), phase.is_terminal()) {
                assert_eq!(phase, TaskPhase::Succeeded, "{name}: {:?}", t.status);
                done.entry(name).or_insert_with(|| start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done.len(), n, "not every Task finished");
    let mut v: Vec<Duration> = done.into_values().collect();
    v.sort();
    v
}

#[tokio::main]
async fn main() {
    let rounds = env("BENCH_ROUNDS", 200);
    let n = env("BENCH_TASKS", 40);
    ephemera_e2e::tls();
    let bao = OpenBao::start().await;
    bao.put("bench/static", &json!({"TOKEN": "bench-value-123456"}).as_object().cloned().unwrap_or_default()).await;
    let cred: Credential = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Credential",
        "metadata": {"name": "bench"}, "spec": {"provider": "static", "vaultPath": "bench/static", "namespaces": ["*"]}}))
    .expect("credential");
    let mut vcfg = VaultConfig::new(&bao.addr, VaultAuth::TokenFile(bao.operator_token_file.clone()));
    vcfg.wrap_ttl = Duration::from_secs(60);
    let issuer = Issuer::new(vcfg.clone()).expect("issuer");

    let mut base = plain_reads(&bao, rounds).await;
    let mut full = handshake(&bao, &issuer, &cred, rounds).await;
    base.sort();
    full.sort();
    println!(
        "vault handshake per attempt ({rounds} rounds): p50 {:.2} ms p99 {:.2} ms",
        pct(&full, 0.5),
        pct(&full, 0.99)
    );
    println!("baseline single KV read:                   p50 {:.2} ms p99 {:.2} ms", pct(&base, 0.5), pct(&base, 0.99));
    println!("ratio p50 {:.1}x", pct(&full, 0.5) / pct(&base, 0.5));
    let result = |metric: &str, ours: f64, base: f64| bench_result("credentials", metric, ours, Some(base));
    result("Vault handshake per attempt p50 (ms), vs one KV read", pct(&full, 0.5), pct(&base, 0.5));

    // The same with one RS256 signature: the key in Transit against the legacy key in KV.
    let key = ephemera_e2e::fakes::jwt::generate_key();
    bao.import_key("bench-sf", &key);
    bao.put(
        "bench/sf-transit",
        &json!({"client_id": "3MVG9bench", "username": "ci@acme.com"}).as_object().cloned().unwrap_or_default(),
    )
    .await;
    bao.put(
        "bench/sf-kv",
        &json!({"client_id": "3MVG9bench", "username": "ci@acme.com", "private_key": key})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .await;
    let signing = |name: &str, path: &str, transit: bool| -> Credential {
        let mut spec = json!({"provider": "salesforce", "vaultPath": path, "namespaces": ["*"]});
        if transit {
            spec["signingKey"] = json!({"name": "bench-sf"});
        }
        serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Credential", "metadata": {"name": name}, "spec": spec}))
            .expect("credential")
    };
    let mut legacy = signing_handshake(&bao, &issuer, &signing("bench-kv", "bench/sf-kv", false), false, rounds).await;
    let mut transit =
        signing_handshake(&bao, &issuer, &signing("bench-transit", "bench/sf-transit", true), true, rounds).await;
    legacy.sort();
    transit.sort();
    println!(
        "handshake with one RS256 signature ({rounds} rounds): Transit p50 {:.2} ms p99 {:.2} ms, legacy KV key p50 {:.2} ms p99 {:.2} ms, ratio p50 {:.2}x",
        pct(&transit, 0.5),
        pct(&transit, 0.99),
        pct(&legacy, 0.5),
        pct(&legacy, 0.99),
        pct(&transit, 0.5) / pct(&legacy, 0.5)
    );
    result("handshake with an RS256 signature p50 (ms), Transit vs key in KV", pct(&transit, 0.5), pct(&legacy, 0.5));

    let s = stack().await;
    let creds: Api<Credential> = Api::all(s.client.clone());
    creds.create(&PostParams::default(), &cred).await.expect("credential");
    let mut cfg = config("bench");
    cfg.vault = Some(vcfg);
    let op = operator_with(&s.client, cfg);
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    // A warm-up of each kind (image pulls, first Vault policy, connections), then rounds in the
    // order plain, credential, credential, plain, so neither side always runs on a warmer cluster.
    run_tasks(&tasks, "warm-plain", 4, &[]).await;
    run_tasks(&tasks, "warm-cred", 4, &["bench"]).await;
    let rounds = env("BENCH_TASK_ROUNDS", 2);
    let (mut plain_runs, mut with_runs) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let plain_first = r % 2 == 0;
        if plain_first {
            plain_runs.push(run_tasks(&tasks, &format!("plain{r}"), n, &[]).await);
        }
        with_runs.push(run_tasks(&tasks, &format!("cred{r}"), n, &["bench"]).await);
        if !plain_first {
            plain_runs.push(run_tasks(&tasks, &format!("plain{r}"), n, &[]).await);
        }
    }
    for (i, (p, w)) in plain_runs.iter().zip(&with_runs).enumerate() {
        println!(
            "  round {i}: with a credential vs without: p50 {:.0} vs {:.0} ms, p99 {:.0} vs {:.0} ms",
            pct(w, 0.5),
            pct(p, 0.5),
            pct(w, 0.99),
            pct(p, 0.99)
        );
    }
    // Every Task of every round together: the median and tail over all of them.
    let mut plain: Vec<Duration> = plain_runs.concat();
    let mut with: Vec<Duration> = with_runs.concat();
    plain.sort();
    with.sort();
    println!("{n} Tasks at once, {rounds} rounds each, create -> Succeeded:");
    println!("  with a credential:    p50 {:.0} ms p99 {:.0} ms", pct(&with, 0.5), pct(&with, 0.99));
    println!("  without (baseline):   p50 {:.0} ms p99 {:.0} ms", pct(&plain, 0.5), pct(&plain, 0.99));
    println!("  ratio p50 {:.2}x p99 {:.2}x", pct(&with, 0.5) / pct(&plain, 0.5), pct(&with, 0.99) / pct(&plain, 0.99));
    result(
        &format!("{n} Tasks, create -> Succeeded p50 (ms), with a credential vs without"),
        pct(&with, 0.5),
        pct(&plain, 0.5),
    );
    result(
        &format!("{n} Tasks, create -> Succeeded p99 (ms), with a credential vs without"),
        pct(&with, 0.99),
        pct(&plain, 0.99),
    );
    assert!(bao.live_task_tokens().await.is_empty(), "every token revoked");
    op.abort();
}
