//! The dev cluster driven through kube-rs, the way the operator and api-server will use it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{eventually, gadgets, install_gadget_crd, Dev};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Error, ResourceExt};
use serde_json::json;

fn api_error(e: Error) -> (u16, String, String) {
    match e {
        Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn gadget(name: &str, size: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "test.ephemera.dev/v1", "kind": "Gadget",
        "metadata": {"name": name}, "spec": {"size": size}
    }))
    .unwrap()
}

#[tokio::test]
async fn crud_conflicts_and_not_found() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("settings".into());
    cm.data = Some([("a".to_string(), "1".to_string())].into());
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let (code, reason, _) = api_error(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    // Two writers from the same version: the second gets 409 Conflict.
    let mut first = created.clone();
    first.data = Some([("a".to_string(), "2".to_string())].into());
    let updated = cms.replace("settings", &PostParams::default(), &first).await.unwrap();
    assert_ne!(updated.metadata.resource_version, created.metadata.resource_version);
    let mut stale = created.clone();
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let (code, reason, msg) = api_error(cms.replace("settings", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("the object has been modified"), "{msg}");

    let (code, reason, msg) = api_error(cms.get("missing").await.unwrap_err());
    assert_eq!((code, reason.as_str(), msg.as_str()), (404, "NotFound", "configmaps \"missing\" not found"));

    // generateName, and creating into a namespace that does not exist.
    let mut gen = ConfigMap::default();
    gen.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&PostParams::default(), &gen).await.unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9);
    let nowhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let (code, _, msg) = api_error(nowhere.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((code, msg.as_str()), (404, "namespaces \"nowhere\" not found"));

    cms.delete("settings", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("settings").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn custom_resources_validate_default_and_split_status() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    install_gadget_crd(&client).await;
    let api = gadgets(&client, "default");

    let created = api.create(&PostParams::default(), &gadget("g1", 3)).await.unwrap();
    assert_eq!(created.data["spec"]["color"], "green", "schema default applied");
    assert_eq!(created.metadata.generation, Some(1));

    let (code, reason, msg) = api_error(api.create(&PostParams::default(), &gadget("g2", 99)).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        msg.contains("spec.size: Invalid value: 99: spec.size in body should be less than or equal to 10"),
        "{msg}"
    );

    // Status through the main endpoint is ignored; through /status it is stored without a generation bump.
    let status_patch = json!({"status": {"phase": "Ready"}});
    let after = api.patch("g1", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    assert!(after.data.get("status").is_none());
    let after = api.patch_status("g1", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    assert_eq!(after.data["status"]["phase"], "Ready");
    assert_eq!(after.metadata.generation, Some(1));

    // A spec change bumps the generation; a status change and a no-op do not.
    let after = api.patch("g1", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"size": 4}}))).await.unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    let again = api.patch("g1", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"size": 4}}))).await.unwrap();
    assert_eq!(again.metadata.resource_version, after.metadata.resource_version, "no-op patch does not write");

    // Unknown fields are pruned.
    let pruned = api.patch("g1", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"bogus": 1}}))).await.unwrap();
    assert!(pruned.data["spec"].get("bogus").is_none());
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_conflicts() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    install_gadget_crd(&client).await;
    let api = gadgets(&client, "default");
    let cfg = |size: i64, tags: serde_json::Value| json!({"apiVersion": "test.ephemera.dev/v1", "kind": "Gadget", "metadata": {"name": "ssa"}, "spec": {"size": size, "tags": tags}});
    let a = api.patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&cfg(2, json!(["x"])))).await.unwrap();
    assert_eq!(a.data["spec"]["size"], 2);
    let managers: Vec<String> = a.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert_eq!(managers, vec!["alice"]);

    let (code, reason, msg) = api_error(
        api.patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(&cfg(5, json!(["y"])))).await.unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("conflict with \"alice\"") && msg.contains(".spec.size"), "{msg}");

    let b = api.patch("ssa", &PatchParams::apply("bob").force(), &Patch::Apply(&cfg(5, json!(["y"])))).await.unwrap();
    assert_eq!(b.data["spec"]["size"], 5);
    let mut tags: Vec<String> = serde_json::from_value(b.data["spec"]["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, vec!["x", "y"], "set list entries of both appliers are kept");

    // Alice stops applying tags: her entry goes, bob's stays.
    let c = api
        .patch("ssa", &PatchParams::apply("alice").force(), &Patch::Apply(&json!({"apiVersion": "test.ephemera.dev/v1", "kind": "Gadget", "metadata": {"name": "ssa"}, "spec": {"size": 5}})))
        .await
        .unwrap();
    assert_eq!(c.data["spec"]["tags"], json!(["y"]));
}

#[tokio::test]
async fn finalizers_block_deletion_and_owners_collect_dependents() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let mut owner = ConfigMap::default();
    owner.metadata.name = Some("owner".into());
    owner.metadata.finalizers = Some(vec!["test.ephemera.dev/cleanup".into()]);
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let mut dep = Secret::default();
    dep.metadata.name = Some("dependent".into());
    dep.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        ..Default::default()
    }]);
    secrets.create(&PostParams::default(), &dep).await.unwrap();

    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    let marked = cms.get("owner").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some(), "finalizer keeps the object, marked for deletion");
    assert!(secrets.get("dependent").await.is_ok());

    cms.patch("owner", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    eventually(10, "owner removed", || {
        let cms = cms.clone();
        async move { cms.get_opt("owner").await.unwrap().is_none().then_some(()) }
    })
    .await;
    eventually(10, "dependent garbage-collected", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("dependent").await.unwrap().is_none().then_some(()) }
    })
    .await;

    // Deleting a namespace removes what is in it, then the namespace.
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("scratch".into());
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let in_ns: Api<ConfigMap> = Api::namespaced(client.clone(), "scratch");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    in_ns.create(&PostParams::default(), &cm).await.unwrap();
    nss.delete("scratch", &DeleteParams::default()).await.unwrap();
    eventually(10, "namespace gone", || {
        let nss = nss.clone();
        async move { nss.get_opt("scratch").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let stream = watcher(cms.clone(), watcher::Config::default()).applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Ok(cm) = ev {
                seen2.lock().unwrap().push(cm.name_any());
            }
        }
    });
    let mk = |n: &str| {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(n.into());
        cm
    };
    cms.create(&PostParams::default(), &mk("before")).await.unwrap();
    eventually(10, "first event", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().contains(&"before".to_string()).then_some(()) }
    })
    .await;
    // Forget history: the open watch ends with 410 and its resume point is no longer servable.
    dev.cluster.compact_history();
    cms.create(&PostParams::default(), &mk("after")).await.unwrap();
    eventually(15, "event after the forced 410", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().contains(&"after".to_string()).then_some(()) }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn controller_reconciles_custom_resources_to_completion() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    install_gadget_crd(&client).await;
    let api = gadgets(&client, "default");
    for i in 0..5 {
        api.create(&PostParams::default(), &gadget(&format!("c{i}"), i + 1)).await.unwrap();
    }
    let reconciles = Arc::new(AtomicUsize::new(0));
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("test.ephemera.dev", "v1", "Gadget"),
        "gadgets",
    );
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let counter = reconciles.clone();
    let ctrl = Controller::new_with(all, watcher::Config::default(), ar.clone())
        .run(
            move |obj: Arc<DynamicObject>, ctx: Arc<(Api<DynamicObject>, Arc<AtomicUsize>)>| async move {
                ctx.1.fetch_add(1, Ordering::SeqCst);
                let observed = obj.metadata.generation.unwrap_or(0);
                let patch = json!({"status": {"phase": "Done", "observed": observed}});
                ctx.0.patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
                Ok::<_, kube::Error>(kube::runtime::controller::Action::await_change())
            },
            |_, _, _| kube::runtime::controller::Action::requeue(Duration::from_secs(1)),
            Arc::new((api.clone(), counter)),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(ctrl);
    eventually(20, "all gadgets reconciled", || {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            list.items.iter().all(|g| g.data["status"]["phase"] == "Done").then_some(())
        }
    })
    .await;
    handle.abort();
    assert!(reconciles.load(Ordering::SeqCst) >= 5);
}

/// A minimal Lease-based elector, following client-go's protocol: acquire when the lease is free or
/// expired, renew while holding it, and lose on a 409 Conflict.
async fn try_acquire(leases: &Api<Lease>, me: &str, ttl_secs: i32) -> bool {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let now = k8s_openapi::jiff::Timestamp::now();
    match leases.get_opt("leader").await.unwrap() {
        None => {
            let mut l = Lease::default();
            l.metadata.name = Some("leader".into());
            l.spec = Some(LeaseSpec {
                holder_identity: Some(me.into()),
                lease_duration_seconds: Some(ttl_secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                ..Default::default()
            });
            leases.create(&PostParams::default(), &l).await.is_ok()
        }
        Some(mut l) => {
            let spec = l.spec.clone().unwrap_or_default();
            let expired = spec.renew_time.as_ref().is_none_or(|t| {
                t.0.as_second() + i64::from(spec.lease_duration_seconds.unwrap_or(0)) < now.as_second()
            });
            if spec.holder_identity.as_deref() != Some(me) && !expired {
                return false;
            }
            let mut s = spec;
            s.holder_identity = Some(me.into());
            s.renew_time = Some(MicroTime(now));
            l.spec = Some(s);
            // Optimistic concurrency: the write carries the resourceVersion we read.
            leases.replace("leader", &PostParams::default(), &l).await.is_ok()
        }
    }
}

#[tokio::test]
async fn leader_election_over_a_lease_admits_one_leader() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    // Many rounds of two contenders racing: never both leaders in the same round.
    for _ in 0..20 {
        let (a, b) = tokio::join!(try_acquire(&leases, "a", 15), try_acquire(&leases, "b", 15));
        assert!(!(a && b), "two leaders at once");
    }
    let holder = leases.get("leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
    assert!(try_acquire(&leases, &holder, 15).await, "the holder renews");
    let other = if holder == "a" { "b" } else { "a" };
    assert!(!try_acquire(&leases, other, 15).await, "a live lease is not taken over");
    // Expire it: the other contender takes over.
    let mut l = leases.get("leader").await.unwrap();
    let mut spec = l.spec.clone().unwrap();
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(5),
    ));
    l.spec = Some(spec);
    leases.replace("leader", &PostParams::default(), &l).await.unwrap();
    assert!(try_acquire(&leases, other, 15).await, "expired lease is taken over");
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let dev = Dev::start().await;
    let client = dev.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(format!("p{i}"));
        cm.metadata.labels = Some([("page".to_string(), if i % 2 == 0 { "even" } else { "odd" }.to_string())].into());
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.name_any()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    let odd = cms.list(&ListParams::default().labels("page in (odd)")).await.unwrap();
    assert_eq!(odd.items.len(), 3);
    let not_even = cms.list(&ListParams::default().labels("page!=even")).await.unwrap();
    assert_eq!(not_even.items.len(), 3);
}

#[tokio::test]
async fn tokens_issued_to_service_accounts_pass_token_review() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let dev = Dev::start().await;
    let client = dev.client().await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("worker".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["ephemera".into()]),
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tr = sas.create_token_request("worker", &PostParams::default(), &req).await.unwrap();
    let token = tr.status.unwrap().token.unwrap();
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = |t: String, aud: &str| TokenReview {
        spec: TokenReviewSpec { token: t, audiences: Some(vec![aud.into()]) },
        ..Default::default()
    };
    let ok = reviews.create(&PostParams::default(), &review(token.clone(), "ephemera")).await.unwrap();
    let status = ok.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(status.user.unwrap().username.as_deref(), Some("system:serviceaccount:default:worker"));
    let wrong = reviews.create(&PostParams::default(), &review(token.clone(), "vault")).await.unwrap();
    assert_ne!(wrong.status.unwrap().authenticated, Some(true));

    // A token for another audience is not an API credential; one for the API server is, until the
    // account is deleted.
    let as_client = |t: String| {
        let path = dev.dir.path().join(format!("sa-kubeconfig-{}", &t[t.len() - 8..]));
        let admin = std::fs::read_to_string(&dev.kubeconfig).unwrap();
        std::fs::write(&path, admin.replace(dev.cluster.admin_token(), &t)).unwrap();
        async move { crate::common::client_for(&path).await }
    };
    let foreign: Api<ConfigMap> = Api::namespaced(as_client(token.clone()).await, "default");
    assert_eq!(api_error(foreign.list(&ListParams::default()).await.unwrap_err()).0, 401);
    let api_req = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(600), ..Default::default() }),
        ..Default::default()
    };
    let api_token = sas
        .create_token_request("worker", &PostParams::default(), &api_req)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap();
    // Authenticated, so RBAC answers: 403 (nothing binds the account), not 401.
    let cms: Api<ConfigMap> = Api::namespaced(as_client(api_token).await, "default");
    assert_eq!(api_error(cms.list(&ListParams::default()).await.unwrap_err()).0, 403);
    sas.delete("worker", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.list(&ListParams::default()).await.unwrap_err()).0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_recorded_through_events_k8s_io_show_in_core_events_and_kubectl() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let dev = Dev::start().await;
    let client = dev.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("subject".into());
    let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    let recorder = Recorder::new(client.clone(), Reporter { controller: "ephemera-test".into(), instance: None });
    let reference = kube::Resource::object_ref(&cm, &());
    let ev = Event {
        type_: EventType::Normal,
        reason: "Checked".into(),
        note: Some("all good".into()),
        action: "Check".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();

    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let list = core.list(&ListParams::default().fields("involvedObject.name=subject")).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!((e.reason.as_deref(), e.message.as_deref()), (Some("Checked"), Some("all good")));
    assert_eq!(e.reporting_component.as_deref(), Some("ephemera-test"));
    let table = crate::common::ok(dev.kubectl(&["get", "events"]));
    assert!(table.contains("Checked") && table.contains("configmap/subject") && table.contains("all good"), "{table}");
}
