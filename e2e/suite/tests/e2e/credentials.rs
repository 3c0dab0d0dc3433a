//! The credential flow end to end: local cluster + operator + worker Pods + a real OpenBao + the
//! Salesforce and GitHub test doubles. Every test ends by scanning everything a user or an attacker
//! with read access could see (Task status, Events, Pod specs and termination messages, container
//! logs, the operator's own log) for the secret values involved.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ephemera_crds::worker::CredentialRef;
use ephemera_crds::{Credential, Task, TaskPhase};
use ephemera_devcluster::testing::eventually;
use ephemera_e2e::fakes::github::{FakeGithub, Installation};
use ephemera_e2e::fakes::jwt;
use ephemera_e2e::fakes::salesforce::{ConnectedApp, FakeSalesforce};
use ephemera_e2e::openbao::OpenBao;
use ephemera_e2e::stack::{config, create, operator_with, phase, stack_with, Stack, OPERATOR_NAMESPACE};
use ephemera_operator::vault::{VaultAuth, VaultConfig};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};

const SF_USER: &str = "ci@acme.com";
const SF_CLIENT_ID: &str = "3MVG9fakeConsumerKey";
const GH_APP_ID: &str = "123456";
const GH_INSTALLATION: u64 = 42;

/// The operator's log lines (tracing output of this test process).
fn operator_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("debug,hyper=info,h2=info,tower=info,rustls=info,kube_client=info")
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything a credential test needs, with the secret values it must never find anywhere.
struct World {
    s: Stack,
    bao: OpenBao,
    sf: FakeSalesforce,
    gh: FakeGithub,
    secrets: Vec<String>,
    npm_token: String,
    /// The Salesforce and GitHub App private keys (PEM), now inside Transit.
    keys: [String; 2],
}

fn vault_config(bao: &OpenBao) -> VaultConfig {
    let mut v = VaultConfig::new(&bao.addr, VaultAuth::TokenFile(bao.operator_token_file.clone()));
    v.wrap_ttl = Duration::from_secs(60);
    v
}

fn map(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn credential(s: &Stack, name: &str, spec: Value) {
    let creds: Api<Credential> = Api::all(s.client.clone());
    let c: Credential = serde_json::from_value(
        json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Credential", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap();
    creds.create(&PostParams::default(), &c).await.unwrap();
}

async fn world() -> World {
    world_with(None).await
}

/// The world on a node whose first pull of each Task image takes `slow_pull`.
async fn world_with(slow_pull: Option<Duration>) -> World {
    operator_log();
    let s = stack_with(slow_pull).await;
    let bao = OpenBao::start().await;
    let (sf_key, gh_key) = (jwt::generate_key(), jwt::generate_key());
    // A sandbox org: the JWT audience is test.salesforce.com whatever the login URL.
    let sf = FakeSalesforce::start(
        "https://test.salesforce.com",
        vec![ConnectedApp {
            client_id: SF_CLIENT_ID.into(),
            username: SF_USER.into(),
            public_key: jwt::public_key(&sf_key),
        }],
    )
    .await;
    let gh = FakeGithub::start(vec![Installation {
        id: GH_INSTALLATION,
        app_id: GH_APP_ID.into(),
        public_key: jwt::public_key(&gh_key),
        repositories: vec!["ephemera".into(), "infra".into()],
        permissions: [("contents".to_string(), "write".to_string()), ("pull_requests".into(), "write".into())].into(),
    }])
    .await;
    let npm_token = jwt::random_token("npm_");
    // The keys live in Transit (imported as an admin would); KV keeps only the non-secret settings.
    bao.import_key("sf-uat", &sf_key);
    bao.import_key("gh-acme", &gh_key);
    bao.put(
        "ephemera/salesforce/uat",
        &map(json!({"client_id": SF_CLIENT_ID, "username": SF_USER, "login_url": sf.url, "audience": "https://test.salesforce.com"})),
    )
    .await;
    bao.put(
        "ephemera/github/acme",
        &map(json!({"app_id": GH_APP_ID, "installation_id": GH_INSTALLATION.to_string(), "api_url": gh.url})),
    )
    .await;
    bao.put("ephemera/npm", &map(json!({"NPM_TOKEN": npm_token}))).await;
    credential(
        &s,
        "uat-org",
        json!({"provider": "salesforce", "vaultPath": "ephemera/salesforce/uat", "namespaces": ["default"],
               "signingKey": {"name": "sf-uat"}}),
    )
    .await;
    credential(
        &s,
        "acme-repo",
        json!({"provider": "github-app", "vaultPath": "ephemera/github/acme", "namespaces": ["*"],
               "signingKey": {"name": "gh-acme"},
               "github": {"repositories": ["ephemera"], "permissions": {"contents": "read"}}}),
    )
    .await;
    credential(&s, "npm", json!({"provider": "static", "vaultPath": "ephemera/npm", "namespaces": ["default"]})).await;
    credential(
        &s,
        "npm-files",
        json!({"provider": "static", "vaultPath": "ephemera/npm", "namespaces": ["default"], "files": true}),
    )
    .await;
    let mut secrets = vec![
        npm_token.clone(),
        bao.root_token.clone(),
        std::fs::read_to_string(&bao.operator_token_file).unwrap().trim().to_string(),
    ];
    for key in [&sf_key, &gh_key] {
        secrets.extend(key.lines().filter(|l| l.len() >= 16 && !l.starts_with("-----")).map(String::from));
    }
    World { s, bao, sf, gh, secrets, npm_token, keys: [sf_key, gh_key] }
}

impl World {
    fn operator(&self, identity: &str) -> tokio::task::JoinHandle<()> {
        self.operator_tweaked(identity, |_, _| {})
    }

    /// An operator whose settings and Vault settings `tweak` adjusts first.
    fn operator_tweaked(
        &self,
        identity: &str,
        tweak: impl FnOnce(&mut ephemera_operator::Config, &mut VaultConfig),
    ) -> tokio::task::JoinHandle<()> {
        self.operator_serving(identity, tweak).0
    }

    /// An operator (as [`World::operator_tweaked`]) and the URL of its credential hand-off.
    fn operator_serving(
        &self,
        identity: &str,
        tweak: impl FnOnce(&mut ephemera_operator::Config, &mut VaultConfig),
    ) -> (tokio::task::JoinHandle<()>, String) {
        let mut cfg = config(identity);
        let mut vault = vault_config(&self.bao);
        tweak(&mut cfg, &mut vault);
        cfg.vault = Some(vault);
        let url = cfg.handoff_url.clone().unwrap_or_default();
        (operator_with(&self.s.client, cfg), url)
    }

    /// Waits for the first attempt's record of `task` to hold its token and its Pod's uid (the
    /// window in which the token waits to be claimed).
    async fn recorded(&self, task: &str) -> Secret {
        eventually(30, "the attempt's token minted and its Pod recorded", || async {
            let r = self.record(task, 1).await?;
            r.metadata.annotations.as_ref()?.get("ephemera.dev/pod-uid").map(|_| r.clone())
        })
        .await
    }

    /// The operator's attempt record of `task`'s `attempt` (admin view; no tenant can read it).
    async fn record(&self, task: &str, attempt: i32) -> Option<Secret> {
        let uid = self.tasks().get(task).await.ok()?.metadata.uid?;
        let records: Api<Secret> = Api::namespaced(self.s.client.clone(), OPERATOR_NAMESPACE);
        records.get_opt(&format!("attempt-{uid}-{attempt}")).await.ok().flatten()
    }

    fn tasks(&self) -> Api<Task> {
        Api::namespaced(self.s.client.clone(), "default")
    }

    /// Every provider token issued so far (they are secrets too).
    fn all_secrets(&self) -> Vec<String> {
        let mut all = self.secrets.clone();
        all.extend(self.sf.issued().into_iter().map(|t| t.token));
        all.extend(self.gh.issued().into_iter().map(|t| t.token));
        all
    }

    async fn no_task_token_left_in_vault(&self) {
        eventually(20, "every per-attempt Vault token revoked", || async {
            self.bao.live_task_tokens().await.is_empty().then_some(())
        })
        .await;
        let records: Api<Secret> = Api::namespaced(self.s.client.clone(), OPERATOR_NAMESPACE);
        eventually(20, "attempt records deleted", || {
            let records = records.clone();
            async move { records.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(()) }
        })
        .await;
        let secrets: Api<Secret> = Api::namespaced(self.s.client.clone(), "default");
        eventually(20, "per-attempt Secrets deleted", || {
            let secrets = secrets.clone();
            async move {
                let left = secrets
                    .list(&ListParams::default().labels("app.kubernetes.io/managed-by=ephemera-operator"))
                    .await
                    .ok()?;
                left.items.is_empty().then_some(())
            }
        })
        .await;
    }

    /// Scans status, Events, Pods (spec and termination messages), their logs, the operator log and
    /// `also` (e.g. logs of Pods that are gone by now).
    async fn assert_no_secret_leaked(&self, also: &str) {
        let mut seen = also.to_string();
        let tasks: Api<Task> = Api::all(self.s.client.clone());
        for t in tasks.list(&ListParams::default()).await.unwrap() {
            seen.push_str(&serde_json::to_string(&t).unwrap());
        }
        let events: Api<Event> = Api::all(self.s.client.clone());
        for e in events.list(&ListParams::default()).await.unwrap() {
            seen.push_str(&serde_json::to_string(&e).unwrap());
        }
        let pods: Api<Pod> = Api::all(self.s.client.clone());
        let mut logs = 0;
        for p in pods.list(&ListParams::default()).await.unwrap() {
            seen.push_str(&serde_json::to_string(&p).unwrap());
            let ns = p.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.s.client.clone(), &ns);
            for c in ["install-worker", "credentials", "task"] {
                let lp = LogParams { container: Some(c.into()), ..Default::default() };
                if let Ok(l) = api.logs(&p.name_any(), &lp).await {
                    logs += 1;
                    seen.push_str(&l);
                }
            }
        }
        assert!(logs > 0 || !also.is_empty(), "no logs were scanned");
        seen.push_str(&String::from_utf8_lossy(&operator_log().lock().unwrap()));
        let all = self.all_secrets();
        assert!(all.len() > 3);
        for secret in &all {
            assert!(
                !seen.contains(secret.as_str()),
                "a secret value leaked into status, events, Pods, logs or the operator log"
            );
        }
    }
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

async fn logs(w: &World, pod: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(w.s.client.clone(), "default");
    pods.logs(pod, &LogParams { container: Some("task".into()), ..Default::default() }).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_github_and_static_tasks_get_working_credentials_and_everything_is_revoked() {
    let w = world().await;
    let op = w.operator("op-1");
    let tasks = w.tasks();
    create(
        &tasks,
        "sf-deploy",
        json!({"image": "busybox", "credentials": ["uat-org"], "command": ["sh", "-c",
            "wget -q -O- --header \"Authorization: Bearer $SF_ACCESS_TOKEN\" \"$SF_INSTANCE_URL/services/oauth2/userinfo\" | grep -q ci@acme.com \
             && [ ! -e /var/run/ephemera/attempt/wrapping-token ] && [ ! -e /var/run/ephemera/secrets/.handoff ] && [ -z \"$EPHEMERA_VAULT_ADDR\" ] \
             && [ ! -e /var/run/ephemera/identity ] && ! grep -rqs 'PRIVATE KEY' /var/run/ephemera /home/task /tmp /work && ! env | grep -q 'PRIVATE KEY' \
             && echo \"printing the token: $SF_ACCESS_TOKEN\" && echo '::progress pct=100 msg=deployed' && echo sf-ok > \"$EPHEMERA_RESULT_FILE\""]}),
    )
    .await;
    create(
        &tasks,
        "gh-release",
        json!({"image": "busybox", "credentials": ["acme-repo"], "env": [{"name": "GH_API", "value": w.gh.url}], "command": ["sh", "-c",
            "wget -q -O /tmp/r --header \"Authorization: Bearer $GITHUB_TOKEN\" \"$GH_API/installation/repositories\" && grep -q '\"ephemera\"' /tmp/r \
             && ! grep -q infra /tmp/r && [ \"$GH_TOKEN\" = \"$GITHUB_TOKEN\" ] && echo gh-ok > \"$EPHEMERA_RESULT_FILE\""]}),
    )
    .await;
    create(
        &tasks,
        "npm-publish",
        json!({"image": "busybox", "credentials": ["npm", "npm-files"], "env": [{"name": "WANT", "value": hex_sha256(&w.npm_token)}], "command": ["sh", "-c",
            "[ \"$(printf %s \"$NPM_TOKEN\" | sha256sum | cut -d' ' -f1)\" = \"$WANT\" ] \
             && [ \"$(cat \"$EPHEMERA_SECRETS_NPM_FILES/NPM_TOKEN\" | sha256sum | cut -d' ' -f1)\" = \"$WANT\" ] \
             && echo \"leaking on purpose: $NPM_TOKEN\" && echo \"$NPM_TOKEN\" > \"$EPHEMERA_RESULT_FILE\""]}),
    )
    .await;
    for (name, result) in [("sf-deploy", "sf-ok\n"), ("gh-release", "gh-ok\n"), ("npm-publish", "***\n")] {
        let t = phase(&tasks, name, TaskPhase::Succeeded).await;
        let st = t.status.unwrap();
        assert_eq!(st.result, result, "{name}: the result is the task's own, masked");
        let issued = st.conditions.iter().find(|c| c.type_ == "CredentialsIssued").unwrap();
        assert_eq!(issued.status, "True");
    }
    assert!(logs(&w, "sf-deploy-1").await.contains("printing the token: ***"), "output is masked");
    // Vault and the private keys stay in the `credentials` init container (the operator's image):
    // the task container, whose image the Task author chose, never gets the wrapping token.
    let pods: Api<Pod> = Api::namespaced(w.s.client.clone(), "default");
    let pod = pods.get("sf-deploy-1").await.unwrap();
    let spec = serde_json::to_value(pod.spec.unwrap()).unwrap();
    let task_container = spec["containers"].as_array().unwrap().iter().find(|c| c["name"] == "task").unwrap();
    let vault_env = task_container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("EPHEMERA_VAULT") || n == "EPHEMERA_HANDOFF_URL"))
        .all(|e| e["value"] == "");
    assert!(!task_container["volumeMounts"].to_string().contains("identity") && vault_env, "{task_container}");
    let step = spec["initContainers"].as_array().unwrap().iter().find(|c| c["name"] == "credentials").unwrap();
    assert!(!step.to_string().contains("busybox"), "the credentials step runs the operator's worker image");
    assert!(logs(&w, "npm-publish-1").await.contains("leaking on purpose: ***"));

    let sf = w.sf.issued();
    assert_eq!(sf.len(), 1, "one Salesforce token per attempt");
    assert!(sf[0].used >= 1, "the task's Salesforce token worked");
    let gh = w.gh.issued();
    assert_eq!(gh.len(), 1);
    assert!(gh[0].used >= 1, "the task's GitHub token worked");
    assert_eq!(gh[0].repositories, vec!["ephemera".to_string()], "scoped to the Credential's repositories");
    assert_eq!(gh[0].permissions, [("contents".to_string(), "read".to_string())].into());
    eventually(20, "every provider token revoked", || async {
        (w.sf.issued().iter().all(|t| t.revoked) && w.gh.issued().iter().all(|t| t.revoked)).then_some(())
    })
    .await;
    w.no_task_token_left_in_vault().await;
    assert!(
        w.sf.rejections().is_empty() && w.gh.rejections().is_empty(),
        "{:?} {:?}",
        w.sf.rejections(),
        w.gh.rejections()
    );
    w.assert_no_secret_leaked("").await;
    op.abort();
}

/// A claim at the operator's hand-off for `task`'s first attempt, with `identity` as the bearer token.
async fn claim(w: &World, url: &str, task: &str, identity: Option<&str>) -> (u16, Value) {
    let t = w.tasks().get(task).await.unwrap();
    let body = ephemera_crds::worker::HandoffRequest {
        namespace: "default".into(),
        task: task.into(),
        task_uid: t.metadata.uid.unwrap_or_default(),
        attempt: 1,
    };
    let mut req = reqwest::Client::new().post(format!("{url}/v1/handoff")).json(&body);
    if let Some(token) = identity {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// A ServiceAccount token for `default/default` from the TokenRequest API (audience of the hand-off),
/// bound to `pod` when given.
async fn minted_identity(w: &World, pod: Option<&str>) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::namespaced(w.s.client.clone(), "default");
    let mut spec = json!({"audiences": [ephemera_crds::worker::HANDOFF_AUDIENCE], "expirationSeconds": 600});
    if let Some(p) = pod {
        let pods: Api<Pod> = Api::namespaced(w.s.client.clone(), "default");
        let uid = pods.get(p).await.unwrap().metadata.uid.unwrap_or_default();
        spec["boundObjectRef"] = json!({"kind": "Pod", "apiVersion": "v1", "name": p, "uid": uid});
    }
    let req: TokenRequest = serde_json::from_value(json!({"spec": spec})).unwrap();
    let out = sas.create_token_request("default", &PostParams::default(), &req).await.unwrap();
    out.status.unwrap().token.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_who_reads_every_secret_and_runs_pods_with_the_same_service_account_gets_no_token() {
    // The Task's image takes 8 s to pull: its attempt's token waits in the operator's record meanwhile.
    let w = world_with(Some(Duration::from_secs(8))).await;
    let (op, url) = w.operator_serving("op-1", |cfg, _| cfg.pod_start_timeout = Duration::from_secs(60));
    let tasks = w.tasks();
    create(
        &tasks,
        "guarded",
        json!({"image": "busybox", "credentials": ["uat-org"], "command": ["sh", "-c", "[ -n \"$SF_ACCESS_TOKEN\" ]"]}),
    )
    .await;
    let record = w.recorded("guarded").await;
    let wrapping = String::from_utf8(record.data.unwrap()["wrapping-token"].0.clone()).unwrap();
    // 1. Every Secret of the Task's namespace, as the tenant reads them: nothing unwrappable.
    let vault = ephemera_worker::vault::Vault::new(&w.bao.addr).unwrap();
    let secrets: Api<Secret> = Api::namespaced(w.s.client.clone(), "default");
    let mut values = 0;
    for sec in secrets.list(&ListParams::default()).await.unwrap() {
        for v in sec.data.unwrap_or_default().into_values() {
            let v = String::from_utf8_lossy(&v.0).trim().to_string();
            assert_ne!(v, wrapping, "the wrapping token sits in the tenant's namespace");
            let token = secrecy::SecretString::from(v);
            assert!(vault.unwrap(&token, "auth/token/create/ephemera-task", None).await.is_err());
            values += 1;
        }
    }
    // (Without live progress the namespace holds no Secret of the operator's at all.)
    let _ = values;
    // 2. A Pod of the tenant's, same ServiceAccount, with a hand-off-audience token of its own.
    let pods: Api<Pod> = Api::namespaced(w.s.client.clone(), "default");
    let thief: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "thief"},
        // Another repository than the Task's (not behind the slow first pull).
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c",
            "image": format!("{}/ephemera-test/busybox:1.35", ephemera_devcluster::testing::test_registry()),
            "command": ["sh", "-c", "cat /var/run/id/token; echo; sleep 60"],
            "volumeMounts": [{"name": "id", "mountPath": "/var/run/id"}]}],
        "volumes": [{"name": "id", "projected": {"sources": [{"serviceAccountToken": {
            "audience": ephemera_crds::worker::HANDOFF_AUDIENCE, "expirationSeconds": 600, "path": "token"}}]}}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &thief).await.unwrap();
    let stolen_identity = eventually(30, "the thief Pod's token", || async {
        let l = pods.logs("thief", &LogParams::default()).await.ok()?;
        Some(l.trim().to_string()).filter(|t| t.len() > 20)
    })
    .await;
    assert_eq!(claim(&w, &url, "guarded", Some(&stolen_identity)).await.0, 403, "another Pod of the namespace");
    assert_eq!(claim(&w, &url, "guarded", None).await.0, 401, "no identity");
    assert_eq!(claim(&w, &url, "guarded", Some("not-a-token")).await.0, 401, "a made-up identity");
    let unbound = minted_identity(&w, None).await;
    assert_eq!(claim(&w, &url, "guarded", Some(&unbound)).await.0, 403, "a token bound to no Pod");
    // 3. Nothing of that reached the attempt: its own Pod claims the token and the Task succeeds.
    let st = phase(&tasks, "guarded", TaskPhase::Succeeded).await.status.unwrap();
    assert_eq!(st.attempt, 1);
    assert_eq!(w.sf.issued().len(), 1);
    pods.delete("thief", &Default::default()).await.unwrap();
    w.no_task_token_left_in_vault().await;
    w.assert_no_secret_leaked("").await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_claimed_before_the_worker_fails_the_task_as_possible_interception() {
    // Someone who may mint ServiceAccount tokens bound to the attempt's own Pod (`serviceaccounts/token`
    // in the namespace) can claim first; the worker then finds it gone and raises the alarm.
    let w = world_with(Some(Duration::from_secs(8))).await;
    let (op, url) = w.operator_serving("op-1", |cfg, _| cfg.pod_start_timeout = Duration::from_secs(60));
    let tasks = w.tasks();
    create(
        &tasks,
        "intercepted",
        json!({"image": "busybox", "credentials": ["npm"], "command": ["true"],
        "retry": {"maxAttempts": 3, "backoffSeconds": 1, "retryOn": ["Infrastructure", "ExitCode"]}}),
    )
    .await;
    w.recorded("intercepted").await;
    let identity = minted_identity(&w, Some("intercepted-1")).await;
    let (code, body) = claim(&w, &url, "intercepted", Some(&identity)).await;
    assert_eq!(code, 200, "{body}");
    let wrapping = secrecy::SecretString::from(body["wrappingToken"].as_str().unwrap().to_string());
    assert_eq!(claim(&w, &url, "intercepted", Some(&identity)).await.0, 409, "released once");
    let vault = ephemera_worker::vault::Vault::new(&w.bao.addr).unwrap();
    let child = vault.unwrap(&wrapping, "auth/token/create/ephemera-task", None).await.unwrap();
    let st = phase(&tasks, "intercepted", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(
        (st.reason.as_str(), st.attempt),
        ("CredentialUnwrapFailed", 1),
        "not retried, whatever the retry policy"
    );
    assert!(st.message.contains("possible credential interception"), "{}", st.message);
    let events: Api<Event> = Api::namespaced(w.s.client.clone(), "default");
    let list = events.list(&ListParams::default().fields("involvedObject.name=intercepted")).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("CredentialUnwrapFailed") && e.type_.as_deref() == Some("Warning")),
        "a Warning event says so"
    );
    // The token the interceptor got is dead: the operator revoked it by accessor.
    let thief = vault.with_token(&child).unwrap();
    eventually(20, "the intercepted token revoked", || {
        let thief = &thief;
        async move { vaultrs::token::lookup_self(thief).await.is_err().then_some(()) }
    })
    .await;
    w.no_task_token_left_in_vault().await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_secret_never_makes_the_operator_revoke_someone_elses_vault_token() {
    let w = world().await;
    let op = w.operator("op-1");
    let tasks = w.tasks();
    // Someone else's live Vault token, and a Secret planted where the old operator kept its records.
    let victim = vaultrs::token::new(&w.bao.root(), None).await.unwrap();
    let t = create(&tasks, "planted", json!({"image": "busybox", "credentials": ["npm"], "command": ["true"]})).await;
    let secrets: Api<Secret> = Api::namespaced(w.s.client.clone(), "default");
    let planted: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "planted-1-attempt",
            "labels": {"app.kubernetes.io/managed-by": "ephemera-operator", "ephemera.dev/task": "planted", "ephemera.dev/attempt": "1"},
            "ownerReferences": [{"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task", "name": "planted",
                "uid": t.metadata.uid.clone().unwrap(), "controller": true}]},
        "stringData": {"accessor": victim.accessor.clone(), "wrapping-token": "hvs.planted"}}))
    .unwrap();
    secrets.create(&PostParams::default(), &planted).await.unwrap();
    phase(&tasks, "planted", TaskPhase::Succeeded).await;
    eventually(20, "every per-attempt Vault token revoked", || async {
        w.bao.live_task_tokens().await.is_empty().then_some(())
    })
    .await;
    let victim_client = w.bao.root();
    let info = vaultrs::token::lookup_accessor(&victim_client, &victim.accessor).await;
    assert!(info.is_ok(), "the victim's token is still alive: {:?}", info.err());
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn private_keys_never_reach_the_hand_off_and_kv_keys_are_refused_unless_the_admin_allows_them() {
    let w = world().await;
    // The credentials step's hand-off, as the task container's worker would read it: only tokens.
    let http = reqwest::Client::new();
    let root = secrecy::SecretString::from(w.bao.root_token.clone());
    let vault = ephemera_worker::vault::Vault::new(&w.bao.addr).unwrap();
    let client = vault.with_token(&root).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (cred, path) in [("uat-org", "ephemera/salesforce/uat"), ("acme-repo", "ephemera/github/acme")] {
        let c: Credential = Api::all(w.s.client.clone()).get(cred).await.unwrap();
        let r = CredentialRef {
            name: cred.into(),
            provider: c.spec.provider,
            mount: "secret".into(),
            path: path.into(),
            github: c.spec.github.clone(),
            files: false,
            signing_key: c.spec.signing_key.clone(),
        };
        let kv = vault.read(&client, "secret", path).await.unwrap();
        let grant = ephemera_worker::providers::obtain(&http, &r, &kv, &vault, &root).await.unwrap();
        let file = dir.path().join(cred);
        ephemera_worker::handoff::write(&file, &[grant]).unwrap();
        let written = std::fs::read_to_string(&file).unwrap();
        for key in &w.keys {
            for line in key.lines().filter(|l| l.len() >= 16 && !l.starts_with("-----")) {
                assert!(!written.contains(line), "{cred}: the hand-off carries a private key");
            }
        }
        assert!(!written.contains("PRIVATE KEY"), "{cred}");
    }
    assert!(w.sf.rejections().is_empty() && w.gh.rejections().is_empty(), "Transit's RS256 signatures verify");

    // A Credential that keeps its key in KV (legacy) fails before any Pod, unless the admin allows it.
    w.bao
        .put(
            "ephemera/salesforce/legacy",
            &map(json!({"client_id": SF_CLIENT_ID, "username": SF_USER,
        "private_key": w.keys[0], "login_url": w.sf.url, "audience": "https://test.salesforce.com"})),
        )
        .await;
    credential(
        &w.s,
        "legacy-org",
        json!({"provider": "salesforce", "vaultPath": "ephemera/salesforce/legacy", "namespaces": ["default"]}),
    )
    .await;
    let op = w.operator("op-1");
    let tasks = w.tasks();
    create(&tasks, "legacy", json!({"image": "busybox", "credentials": ["legacy-org"], "command": ["true"]})).await;
    let st = phase(&tasks, "legacy", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.reason, "PrivateKeyNotInTransit", "{}", st.message);
    assert!(st.message.contains("--allow-kv-private-keys"), "{}", st.message);
    let pods: Api<Pod> = Api::namespaced(w.s.client.clone(), "default");
    assert!(pods.get_opt("legacy-1").await.unwrap().is_none(), "no Pod");
    op.abort();
    let op = w.operator_tweaked("op-legacy", |cfg, _| cfg.allow_kv_private_keys = true);
    create(
        &tasks,
        "legacy-allowed",
        json!({"image": "busybox", "credentials": ["legacy-org"],
        "command": ["sh", "-c", "[ -n \"$SF_ACCESS_TOKEN\" ]"]}),
    )
    .await;
    phase(&tasks, "legacy-allowed", TaskPhase::Succeeded).await;
    w.no_task_token_left_in_vault().await;
    w.assert_no_secret_leaked("").await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_admin_owned_policies_the_operator_cannot_write_them_and_runs_once_they_are_synced() {
    operator_log();
    let s = stack_with(None).await;
    let bao = OpenBao::start_with(&[("EPHEMERA_VAULT_POLICIES", "external")]).await;
    let npm = jwt::random_token("npm_");
    bao.put("ephemera/npm", &map(json!({"NPM_TOKEN": npm}))).await;
    credential(&s, "npm", json!({"provider": "static", "vaultPath": "ephemera/npm", "namespaces": ["default"]})).await;
    // The operator's own Vault identity cannot write a policy (what a compromised operator would do).
    let operator_token = std::fs::read_to_string(&bao.operator_token_file).unwrap().trim().to_string();
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(&bao.addr)
        .token(&operator_token)
        .build()
        .unwrap();
    let as_operator = vaultrs::client::VaultClient::new(settings).unwrap();
    let written =
        vaultrs::sys::policy::set(&as_operator, "ephemera-cred-npm", "path \"*\" { capabilities = [\"sudo\"] }").await;
    assert!(written.is_err(), "the operator may not write policies in external mode");
    let mut cfg = config("op-ext");
    let mut vault = vault_config(&bao);
    vault.policies = ephemera_operator::vault::PolicyMode::External;
    cfg.vault = Some(vault);
    let op = operator_with(&s.client, cfg);
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    create(
        &tasks,
        "unsynced",
        json!({"image": "busybox", "credentials": ["npm"], "command": ["true"], "retry": {"maxAttempts": 1}}),
    )
    .await;
    let st = phase(&tasks, "unsynced", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.reason, "VaultRefused", "{}", st.message);
    assert!(st.message.contains("sync-vault-policies"), "it says what the admin must run: {}", st.message);
    // The admin syncs with an identity of their own, using the operator binary's command.
    let out = std::process::Command::new(ephemera_e2e::stack::operator_binary())
        .args(["sync-vault-policies", "--vault-addr", &bao.addr, "--vault-auth", "token", "--vault-token-file"])
        .arg(bao.root_token_file())
        .env("KUBECONFIG", &s.dev.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ephemera-cred-npm");
    create(
        &tasks,
        "synced",
        json!({"image": "busybox", "credentials": ["npm"], "command": ["sh", "-c", "[ -n \"$NPM_TOKEN\" ]"]}),
    )
    .await;
    phase(&tasks, "synced", TaskPhase::Succeeded).await;
    assert!(bao.live_task_tokens().await.is_empty());
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_starts_after_its_wrapping_token_expired_is_retried_not_called_an_interception() {
    // The Task's image takes 6 s to pull the first time; the attempt's wrapping token lives 3 s.
    let w = world_with(Some(Duration::from_secs(6))).await;
    let op = w.operator_tweaked("op-1", |cfg, vault| {
        cfg.pod_start_timeout = Duration::from_secs(30);
        vault.wrap_ttl = Duration::from_secs(3);
    });
    let tasks = w.tasks();
    create(
        &tasks,
        "slow-pull",
        json!({"image": "busybox", "credentials": ["npm"], "command": ["sh", "-c", "[ -n \"$NPM_TOKEN\" ]"],
        "retry": {"maxAttempts": 2, "backoffSeconds": 1, "retryOn": ["Infrastructure"]}}),
    )
    .await;
    let st = phase(&tasks, "slow-pull", TaskPhase::Succeeded).await.status.unwrap();
    assert_eq!(st.attempt, 2, "the second attempt (image cached) got its credentials");
    let events: Api<Event> = Api::namespaced(w.s.client.clone(), "default");
    let list = events.list(&ListParams::default().fields("involvedObject.name=slow-pull")).await.unwrap();
    let warning = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("CredentialExpired") && e.type_.as_deref() == Some("Warning"))
        .unwrap_or_else(|| {
            panic!(
                "a Warning event says the token expired before the Pod started: {:?}",
                list.items.iter().map(|e| (e.reason.clone(), e.message.clone())).collect::<Vec<_>>()
            )
        });
    let said = warning.message.clone().unwrap_or_default();
    assert!(said.contains("--vault-wrap-ttl-seconds"), "it tells the admin what to change: {said}");
    assert!(
        !list.items.iter().any(|e| e.reason.as_deref() == Some("CredentialUnwrapFailed")),
        "a slow start is not reported as an interception"
    );
    w.no_task_token_left_in_vault().await;
    w.assert_no_secret_leaked("").await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_unreachable_fails_the_task_with_a_clear_reason_and_retries() {
    let w = world().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tasks = w.tasks();
    // The operator cannot reach Vault: no token, no Pod, retried as an infrastructure failure.
    let op = w.operator_tweaked("op-down", |_, vault| vault.addr = format!("http://127.0.0.1:{closed}"));
    create(
        &tasks,
        "no-vault",
        json!({"image": "busybox", "credentials": ["npm"], "command": ["true"],
        "retry": {"maxAttempts": 2, "backoffSeconds": 1, "retryOn": ["Infrastructure"]}}),
    )
    .await;
    let st = phase(&tasks, "no-vault", TaskPhase::Failed).await.status.unwrap();
    assert_eq!((st.reason.as_str(), st.attempt), ("VaultUnavailable", 2), "{}", st.message);
    assert!(st.message.contains("Vault is unavailable") && st.message.contains("no attempts left"), "{}", st.message);
    let pods: Api<Pod> = Api::namespaced(w.s.client.clone(), "default");
    assert!(pods.get_opt("no-vault-1").await.unwrap().is_none(), "no Pod without a token");
    op.abort();

    // The worker cannot reach Vault (the operator can): the worker says so and the token is revoked.
    let op = w.operator_tweaked("op-worker-down", |_, vault| vault.worker_addr = format!("http://127.0.0.1:{closed}"));
    create(&tasks, "worker-no-vault", json!({"image": "busybox", "credentials": ["npm"], "command": ["true"]})).await;
    let st = phase(&tasks, "worker-no-vault", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.reason, "VaultUnavailable", "{}", st.message);
    assert!(st.message.contains("is unavailable") && st.message.contains("Connection refused"), "{}", st.message);
    w.no_task_token_left_in_vault().await;
    w.assert_no_secret_leaked("").await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_or_deleting_mid_run_still_revokes_everything() {
    let w = world().await;
    let op = w.operator("op-1");
    let tasks = w.tasks();
    create(
        &tasks,
        "long-deploy",
        json!({"image": "busybox", "credentials": ["uat-org", "acme-repo"],
        "command": ["sh", "-c", "echo started; sleep 120"]}),
    )
    .await;
    phase(&tasks, "long-deploy", TaskPhase::Running).await;
    let running_logs = eventually(30, "the command started with its credentials", || async {
        Some(logs(&w, "long-deploy-1").await).filter(|l| l.contains("started"))
    })
    .await;
    assert_eq!((w.sf.issued().len(), w.gh.issued().len()), (1, 1));
    tasks
        .patch("long-deploy", &PatchParams::default(), &Patch::Merge(json!({"spec": {"cancel": true}})))
        .await
        .unwrap();
    phase(&tasks, "long-deploy", TaskPhase::Cancelled).await;
    eventually(20, "provider tokens revoked by the stopped worker", || async {
        (w.sf.issued().iter().all(|t| t.revoked) && w.gh.issued().iter().all(|t| t.revoked)).then_some(())
    })
    .await;
    w.no_task_token_left_in_vault().await;

    // Deleting a running Task: the finalizer revokes its Vault token before the Task goes away, and
    // the worker, stopped, revokes its provider token.
    create(
        &tasks,
        "deleted-deploy",
        json!({"image": "busybox", "credentials": ["uat-org"], "command": ["sh", "-c", "echo started; sleep 120"]}),
    )
    .await;
    phase(&tasks, "deleted-deploy", TaskPhase::Running).await;
    let deleted_logs = eventually(30, "the second command started", || async {
        Some(logs(&w, "deleted-deploy-1").await).filter(|l| l.contains("started"))
    })
    .await;
    assert!(w.bao.live_task_tokens().await.is_empty(), "the worker revoked its Vault token once it had read");
    tasks.delete("deleted-deploy", &Default::default()).await.unwrap();
    eventually(30, "the Task gone", || async {
        tasks.get_opt("deleted-deploy").await.ok().and_then(|t| t.is_none().then_some(()))
    })
    .await;
    eventually(20, "the provider token revoked", || async { w.sf.issued().iter().all(|t| t.revoked).then_some(()) })
        .await;
    assert_eq!(w.sf.issued().len(), 2);

    // A token nobody unwrapped yet (the Pod cannot pull its image): deleting the Task revokes it
    // before the finalizer lets the Task go.
    create(
        &tasks,
        "never-started",
        json!({"image": "registry.invalid/none:1", "credentials": ["npm", "uat-org"], "command": ["true"]}),
    )
    .await;
    eventually(20, "the attempt's token minted", || async {
        (w.bao.live_task_tokens().await.len() == 1).then_some(())
    })
    .await;
    // The Task's image is pulled (and fails) before the credentials step: no provider token is
    // minted for a task container that could never start, so none is left unrevoked.
    eventually(30, "the pull failure reported", || async {
        let t = tasks.get("never-started").await.ok()?;
        t.status?.conditions.iter().any(|c| c.type_ == "PodStarted" && c.status == "False").then_some(())
    })
    .await;
    assert_eq!(w.sf.issued().len(), 2, "nothing minted for a Pod whose image cannot be pulled");
    tasks.delete("never-started", &Default::default()).await.unwrap();
    eventually(30, "the Task gone", || async {
        tasks.get_opt("never-started").await.ok().and_then(|t| t.is_none().then_some(()))
    })
    .await;
    assert!(w.bao.live_task_tokens().await.is_empty(), "revoked before the finalizer let the Task go");
    // The cancelled attempt's Pod is gone; its logs were read while it ran.
    w.assert_no_secret_leaked(&format!("{running_logs}{deleted_logs}")).await;
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_cannot_steer_the_workers_vault_and_provider_calls_through_its_own_proxy() {
    let w = world().await;
    let op = w.operator("op-1");
    let tasks = w.tasks();
    // The Task author's "proxy": it counts every connection the worker would send through it.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}", trap.local_addr().unwrap());
    let caught = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = caught.clone();
    let trap_task = tokio::spawn(async move {
        while let Ok((conn, _)) = trap.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let mut env: Vec<Value> = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"]
        .iter()
        .map(|n| json!({"name": n, "value": trap_url}))
        .collect();
    env.push(json!({"name": "SSL_CERT_FILE", "value": "/nonexistent/ca.pem"}));
    env.push(json!({"name": "VAULT_CACERT", "value": "/nonexistent/ca.pem"}));
    env.push(json!({"name": "VAULT_ADDR", "value": trap_url}));
    create(
        &tasks,
        "proxied",
        json!({"image": "busybox", "credentials": ["uat-org", "acme-repo"], "env": env, "command": ["sh", "-c",
            "[ -n \"$SF_ACCESS_TOKEN\" ] && [ -n \"$GITHUB_TOKEN\" ] && [ \"$HTTPS_PROXY\" = \"$ALL_PROXY\" ] \
             && [ \"$VAULT_ADDR\" = \"$HTTPS_PROXY\" ] && echo proxy-kept > \"$EPHEMERA_RESULT_FILE\""]}),
    )
    .await;
    let t = phase(&tasks, "proxied", TaskPhase::Succeeded).await;
    assert_eq!(t.status.unwrap().result, "proxy-kept\n", "the command still sees its own proxy settings");
    assert_eq!(caught.load(std::sync::atomic::Ordering::SeqCst), 0, "the worker never used the Task's proxy");
    eventually(20, "provider tokens revoked directly", || async {
        (w.sf.issued().iter().all(|t| t.revoked) && w.gh.issued().iter().all(|t| t.revoked)).then_some(())
    })
    .await;
    assert_eq!((w.sf.issued().len(), w.gh.issued().len()), (1, 1));
    assert_eq!(caught.load(std::sync::atomic::Ordering::SeqCst), 0);
    w.no_task_token_left_in_vault().await;
    trap_task.abort();
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_can_log_in_with_approle() {
    use vaultrs::api::auth::approle::requests::SetAppRoleRequest;
    let w = world().await;
    // As a Vault admin would: an AppRole carrying the operator policy vault-setup.sh wrote.
    let root = w.bao.root();
    vaultrs::sys::auth::enable(&root, "approle", "approle", None).await.unwrap();
    vaultrs::auth::approle::role::set(
        &root,
        "approle",
        "ephemera-operator",
        Some(SetAppRoleRequest::builder().token_policies(vec!["ephemera-operator".to_string()]).token_ttl("10m")),
    )
    .await
    .unwrap();
    let role_id = vaultrs::auth::approle::role::read_id(&root, "approle", "ephemera-operator").await.unwrap().role_id;
    let secret_id =
        vaultrs::auth::approle::role::secret::generate(&root, "approle", "ephemera-operator", None).await.unwrap();
    let secret_id_file = w.bao.operator_token_file.with_file_name("approle-secret-id");
    std::fs::write(&secret_id_file, &secret_id.secret_id).unwrap();
    let op = w.operator_tweaked("op-approle", |_, vault| {
        vault.auth = VaultAuth::AppRole { mount: "approle".into(), role_id, secret_id_file }
    });
    let tasks = w.tasks();
    create(
        &tasks,
        "approle-npm",
        json!({"image": "busybox", "credentials": ["npm"], "env": [{"name": "WANT", "value": hex_sha256(&w.npm_token)}],
               "command": ["sh", "-c", "[ \"$(printf %s \"$NPM_TOKEN\" | sha256sum | cut -d' ' -f1)\" = \"$WANT\" ]"]}),
    )
    .await;
    phase(&tasks, "approle-npm", TaskPhase::Succeeded).await;
    w.no_task_token_left_in_vault().await;
    w.assert_no_secret_leaked("").await;
    let log = String::from_utf8_lossy(&operator_log().lock().unwrap()).into_owned();
    assert!(!log.contains(&secret_id.secret_id), "the AppRole secret id is never logged");
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_doubles_check_signatures_audiences_and_expiry_like_the_providers() {
    use ephemera_worker::jwt::RsaSigner;
    ephemera_e2e::tls();
    let (key, other) = (jwt::generate_key(), jwt::generate_key());
    let sf = FakeSalesforce::start(
        "https://login.salesforce.com",
        vec![ConnectedApp {
            client_id: SF_CLIENT_ID.into(),
            username: SF_USER.into(),
            public_key: jwt::public_key(&key),
        }],
    )
    .await;
    let http = reqwest::Client::new();
    let now = jwt::now();
    let post = |claims: Value, pem: &str| {
        let assertion = RsaSigner::from_pem(pem).unwrap().sign(&claims).unwrap();
        let (http, url) = (http.clone(), sf.url.clone());
        async move {
            let r = http
                .post(format!("{url}/services/oauth2/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let good = json!({"iss": SF_CLIENT_ID, "sub": SF_USER, "aud": "https://login.salesforce.com", "exp": now + 120});
    assert_eq!(post(good.clone(), &key).await.0, 200);
    let (code, body) = post(good.clone(), &other).await;
    assert_eq!((code, body["error_description"].as_str()), (400, Some("invalid assertion signature")));
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://test.salesforce.com");
    assert_eq!(post(wrong_aud, &key).await.1["error_description"], "audience is invalid");
    let mut expired = good.clone();
    expired["exp"] = json!(now - 5);
    assert_eq!(post(expired, &key).await.1["error_description"], "expired assertion");

    let gh = FakeGithub::start(vec![Installation {
        id: 7,
        app_id: GH_APP_ID.into(),
        public_key: jwt::public_key(&key),
        repositories: vec!["a".into()],
        permissions: [("contents".to_string(), "read".to_string())].into(),
    }])
    .await;
    let mint = |claims: Value, pem: &str, body: Value| {
        let app_jwt = RsaSigner::from_pem(pem).unwrap().sign(&claims).unwrap();
        let (http, url) = (http.clone(), gh.url.clone());
        async move {
            let r = http
                .post(format!("{url}/app/installations/7/access_tokens"))
                .bearer_auth(app_jwt)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let app = json!({"iat": now - 60, "exp": now + 540, "iss": GH_APP_ID});
    assert_eq!(mint(app.clone(), &key, json!({})).await.0, 201);
    assert_eq!(mint(app.clone(), &other, json!({})).await.0, 401, "bad signature");
    assert_eq!(
        mint(json!({"iat": now - 60, "exp": now + 900, "iss": GH_APP_ID}), &key, json!({})).await.0,
        401,
        "over 10 minutes"
    );
    assert_eq!(
        mint(json!({"iat": now - 700, "exp": now - 100, "iss": GH_APP_ID}), &key, json!({})).await.0,
        401,
        "expired"
    );
    let (code, body) = mint(app.clone(), &key, json!({"permissions": {"contents": "write"}})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(mint(app, &key, json!({"repositories": ["b"]})).await.0, 422);

    // And the worker's provider reports a refusal clearly, without secrets.
    let kv: ephemera_worker::vault::KvSecret = [
        ("client_id", SF_CLIENT_ID),
        ("username", SF_USER),
        ("private_key", other.as_str()),
        ("login_url", sf.url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), secrecy::SecretString::from(v.to_string())))
    .collect();
    let signer = ephemera_worker::jwt::Signer::Local(Box::new(RsaSigner::from_pem(&other).unwrap()));
    let err =
        ephemera_worker::providers::salesforce::obtain(&http, "uat-org", &kv, &signer).await.err().unwrap().to_string();
    assert!(
        err.contains("Salesforce refused") && err.contains("HTTP 400") && err.contains("invalid assertion signature"),
        "{err}"
    );
    assert!(!other.lines().filter(|l| l.len() > 16 && !l.starts_with("-----")).any(|l| err.contains(l)));
    let _ = std::io::stderr().flush();
}
