//! Task templates against the local cluster, the operator and the API server: a template applied
//! with kubectl renders into Tasks with its defaults, each wrong param named; a bad template is
//! refused by the cluster or fails the Task with a readable message; a template edit never changes a
//! Task already rendered; a team's `TaskTemplate` serves its namespace only; credentials named
//! through a template still obey the Credential's namespaces; the Salesforce catalogue renders; and
//! REST creates and webhook rules make Tasks from templates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use ephemera_api::auth::Verb;
use ephemera_crds::{Credential, Task, TaskPhase};
use ephemera_devcluster::testing::{eventually, ok};
use ephemera_e2e::api::api_token;
use ephemera_e2e::stack::{create, operator, phase, repo, stack, Stack};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::webhooks::{push, secret, server, trigger, until_known, SECRET};

fn example(name: &str) -> String {
    repo().join("e2e/examples").join(name).to_str().unwrap().to_string()
}

fn apply(s: &Stack, yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object.yaml");
    std::fs::write(&path, yaml).unwrap();
    s.dev.kubectl(&["apply", "-f", path.to_str().unwrap()])
}

fn templated(kind: &str, name: &str, params: Value) -> Value {
    json!({"templateRef": {"kind": kind, "name": name}, "params": params})
}

fn condition(t: &Task, type_: &str) -> (String, String, String) {
    let st = t.status.clone().unwrap_or_default();
    let c = st.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} in {st:?}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Waits until the operator has rendered the Task (its status holds the rendering).
async fn rendered(tasks: &Api<Task>, name: &str) -> Task {
    eventually(30, "the Task is rendered", || async {
        tasks.get(name).await.ok().filter(|t| t.status.as_ref().is_some_and(|s| s.template.is_some()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_renders_into_tasks_with_defaults_named_errors_and_a_frozen_version() {
    let s = stack().await;
    let op = operator(&s.client, "op-templates");
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");

    // kubectl apply of the examples: the Task runs as the template says, with the defaults.
    ok(s.dev.kubectl(&["apply", "-f", &example("template-greet.yaml")]));
    ok(s.dev.kubectl(&["apply", "-f", &example("task-from-template.yaml")]));
    let t = phase(&tasks, "greet-world", TaskPhase::Succeeded).await;
    let st = t.status.clone().unwrap();
    assert_eq!(st.result, "world|--times=2|plain|");
    let r = st.template.clone().unwrap();
    assert_eq!((r.kind.as_str(), r.name.as_str(), r.generation), ("ClusterTaskTemplate", "greet", 1));
    assert_eq!(r.task.params["mode"], "plain", "the defaults are in the rendering");
    let (status, reason, message) = condition(&t, "TemplateResolved");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Rendered"));
    assert!(message.contains("ClusterTaskTemplate \"greet\" (generation 1)"), "{message}");
    let table = ok(s.dev.kubectl(&["get", "clustertasktemplates"]));
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("greet") && l.contains("Greets someone")), "{table}");

    // A hostile value stays one argument: nothing reaches a shell.
    let hostile = "x\" ; touch /tmp/owned ; echo \"$(id)";
    create(&tasks, "hostile", templated("ClusterTaskTemplate", "greet", json!({"who": hostile, "mode": "loud"}))).await;
    let t = phase(&tasks, "hostile", TaskPhase::Succeeded).await;
    assert_eq!(t.status.unwrap().result, format!("{hostile}|--times=2|loud|"));

    // Every wrong param is named, and the Task fails before any Pod.
    let bad = templated("ClusterTaskTemplate", "greet", json!({"times": "9", "mode": "quiet", "colour": "red"}));
    create(&tasks, "bad-params", bad).await;
    let t = phase(&tasks, "bad-params", TaskPhase::Failed).await;
    let st = t.status.clone().unwrap();
    assert_eq!(st.reason, "InvalidParams");
    for want in [
        "param \"colour\" is not a param of the template (it takes who, times, mode, pause)",
        "param \"who\" is required",
        "param \"times\" must be at most 5, not 9",
        "param \"mode\" must be one of plain, loud, not \"quiet\"",
    ] {
        assert!(st.message.contains(want), "{want:?} in {}", st.message);
    }
    assert_eq!(condition(&t, "TemplateResolved").1, "InvalidParams");
    assert!(st.pod_name.is_empty() && st.attempt == 0, "no attempt was made: {st:?}");
    create(&tasks, "no-template", templated("ClusterTaskTemplate", "nope", json!({}))).await;
    let st = phase(&tasks, "no-template", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(
        (st.reason.as_str(), st.message.as_str()),
        ("TemplateNotFound", "ClusterTaskTemplate \"nope\" does not exist")
    );

    // A bad template: what the schema can say, the cluster refuses at apply time, readably ...
    let enum_without_values = r#"
apiVersion: ephemera.dev/v1alpha1
kind: ClusterTaskTemplate
metadata: {name: broken}
spec:
  params:
    - {name: level, type: enum}
    - {name: level, required: true, default: x}
  task: {command: ["true"]}
"#;
    let out = apply(&s, enum_without_values);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for want in ["an enum param lists its values", "param names are unique", "a required param has no default"] {
        assert!(stderr.contains(want), "{want:?} in {stderr}");
    }
    // ... and what only a full check finds fails the Task that uses it, naming the field.
    let undeclared = r#"
apiVersion: ephemera.dev/v1alpha1
kind: ClusterTaskTemplate
metadata: {name: undeclared}
spec:
  params: [{name: who}]
  task: {image: busybox, command: [echo], args: ["$(params.whom)", "--to=$(params.who)"]}
"#;
    ok(apply(&s, undeclared));
    create(&tasks, "uses-undeclared", templated("ClusterTaskTemplate", "undeclared", json!({"who": "a"}))).await;
    let st = phase(&tasks, "uses-undeclared", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.reason, "InvalidTemplate");
    assert!(st.message.starts_with("ClusterTaskTemplate \"undeclared\": the template is invalid: "), "{}", st.message);
    assert!(st.message.contains("task.args[0] refers to $(params.whom), which is not declared"), "{}", st.message);
    assert!(st.message.contains("task.args[1] splices $(params.who) into a longer string"), "{}", st.message);

    // A Task already rendered keeps its template version while the template changes under it.
    create(&tasks, "before-edit", templated("ClusterTaskTemplate", "greet", json!({"who": "old", "pause": "3"}))).await;
    rendered(&tasks, "before-edit").await;
    let templates: Api<ephemera_crds::ClusterTaskTemplate> = Api::all(s.client.clone());
    let edit = json!({"spec": {"task": {"args": ["$(params.who)", "edited"]}}});
    templates.patch("greet", &PatchParams::default(), &Patch::Merge(&edit)).await.unwrap();
    create(&tasks, "after-edit", templated("ClusterTaskTemplate", "greet", json!({"who": "new"}))).await;
    let before = phase(&tasks, "before-edit", TaskPhase::Succeeded).await.status.unwrap();
    let after = phase(&tasks, "after-edit", TaskPhase::Succeeded).await.status.unwrap();
    assert_eq!((before.result.as_str(), before.template.unwrap().generation), ("old|--times=2|plain|", 1));
    assert_eq!((after.result.as_str(), after.template.unwrap().generation), ("new|edited|", 2));
    // kubectl's wide view names the template and the queue the Task ran in.
    let wide = ok(s.dev.kubectl(&["get", "task", "after-edit", "-o", "wide"]));
    let (head, row) = wide.split_once('\n').unwrap();
    assert!(head.contains("TEMPLATE") && head.contains("RENDERED-QUEUE"), "{wide}");
    assert!(row.split_whitespace().any(|w| w == "greet"), "{wide}");
    // Nor may any status writer swap the rendering it ran from, or drop it.
    let mut forged = tasks.get_status("after-edit").await.unwrap();
    let st = forged.status.as_mut().unwrap();
    st.template.as_mut().unwrap().task.image = Some("evil.example/miner".into());
    let err = tasks.replace_status("after-edit", &PostParams::default(), &forged).await.unwrap_err();
    assert!(err.to_string().contains("status.template is written once"), "{err}");
    forged.status.as_mut().unwrap().template = None;
    let err = tasks.replace_status("after-edit", &PostParams::default(), &forged).await.unwrap_err();
    assert!(err.to_string().contains("status.template is written once"), "{err}");

    // A team's TaskTemplate serves its own namespace, and no other.
    let local = r#"
apiVersion: ephemera.dev/v1alpha1
kind: TaskTemplate
metadata: {name: local, namespace: default}
spec:
  task: {image: busybox, command: [sh, -c, 'echo local > "$EPHEMERA_RESULT_FILE"']}
"#;
    ok(apply(&s, local));
    ok(s.dev.kubectl(&["create", "namespace", "elsewhere"]));
    create(&tasks, "local", templated("TaskTemplate", "local", json!({}))).await;
    assert_eq!(phase(&tasks, "local", TaskPhase::Succeeded).await.status.unwrap().result.trim(), "local");
    let other: Api<Task> = Api::namespaced(s.client.clone(), "elsewhere");
    create(&other, "borrow", templated("TaskTemplate", "local", json!({}))).await;
    let st = phase(&other, "borrow", TaskPhase::Failed).await.status.unwrap();
    assert_eq!(st.reason, "TemplateNotFound");
    assert_eq!(st.message, "TaskTemplate \"local\" does not exist in namespace \"elsewhere\"");

    // Credentials named through a template obey the Credential's namespaces as if named directly.
    let creds: Api<Credential> = Api::all(s.client.clone());
    let team_b: Credential =
        serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Credential",
        "metadata": {"name": "team-b-org"},
        "spec": {"provider": "static", "vaultPath": "team-b/static", "namespaces": ["team-b"]}}))
        .unwrap();
    creds.create(&PostParams::default(), &team_b).await.unwrap();
    let with_org = r#"
apiVersion: ephemera.dev/v1alpha1
kind: ClusterTaskTemplate
metadata: {name: with-org}
spec:
  params: [{name: org, required: true}]
  task: {command: ["true"], credentials: ["$(params.org)"]}
"#;
    ok(apply(&s, with_org));
    create(&tasks, "other-teams-org", templated("ClusterTaskTemplate", "with-org", json!({"org": "team-b-org"}))).await;
    let t = phase(&tasks, "other-teams-org", TaskPhase::Failed).await;
    let st = t.status.clone().unwrap();
    assert_eq!(st.reason, "CredentialForbidden", "{st:?}");
    assert_eq!(st.template.unwrap().task.credentials, ["team-b-org"]);

    // The Task schema keeps template-made Tasks honest.
    let refusals = [
        (
            json!({"templateRef": {"name": "greet"}, "params": {"who": "a"}, "image": "evil"}),
            "takes image, args, env, credentials and resources from its template",
        ),
        (json!({"templateRef": {"name": "greet"}, "command": ["sh"]}), "set exactly one of command and templateRef"),
        (
            json!({"templateRef": {"name": "greet"}, "queue": "fast"}),
            "takes queue, timeoutSeconds and retry from its template",
        ),
        (json!({"params": {"who": "a"}}), "set exactly one of command and templateRef"),
    ];
    for (i, (spec, want)) in refusals.into_iter().enumerate() {
        let t: Task = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": format!("refused-{i}")}, "spec": spec}))
        .unwrap();
        match tasks.create(&PostParams::default(), &t).await {
            Err(kube::Error::Api(e)) => assert!(e.code == 422 && e.message.contains(want), "{want:?}: {e:?}"),
            other => panic!("{want:?}: created {other:?}"),
        }
    }
    let move_ref = json!({"spec": {"templateRef": {"kind": "ClusterTaskTemplate", "name": "with-org"}}});
    match tasks.patch("greet-world", &PatchParams::default(), &Patch::Merge(&move_ref)).await {
        Err(kube::Error::Api(e)) => assert!(e.code == 422 && e.message.contains("templateRef is immutable"), "{e:?}"),
        other => panic!("templateRef moved: {other:?}"),
    }
    op.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_salesforce_catalogue_installs_and_renders_the_sf_command() {
    let s = stack().await;
    let op = operator(&s.client, "op-catalogue");
    let dir = repo().join("charts/ephemera/files/catalogue");
    ok(s.dev.kubectl(&["apply", "-f", dir.to_str().unwrap()]));
    let table = ok(s.dev.kubectl(&["get", "ectt", "-o", "name"]));
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        [
            "clustertasktemplate.ephemera.dev/salesforce-deploy",
            "clustertasktemplate.ephemera.dev/salesforce-run-tests",
            "clustertasktemplate.ephemera.dev/salesforce-validate"
        ]
    );
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let params =
        json!({"targetOrg": "prod-org", "testLevel": "RunSpecifiedTests", "tests": "AccountTest", "waitMinutes": "60"});
    create(&tasks, "deploy", templated("ClusterTaskTemplate", "salesforce-deploy", params)).await;
    // Rendered, then refused before any Pod: no Credential `prod-org` exists here.
    let t = phase(&tasks, "deploy", TaskPhase::Failed).await;
    let st = t.status.clone().unwrap();
    assert_eq!(st.reason, "UnknownCredential", "{st:?}");
    let r = st.template.unwrap().task;
    assert_eq!(r.args, ["--source-dir", "force-app", "--test-level", "RunSpecifiedTests", "--wait", "60"]);
    assert_eq!(
        (r.credentials.as_slice(), r.image.as_deref()),
        (&["prod-org".to_string()][..], Some("docker.io/salesforce/cli:latest-slim"))
    );
    op.abort();
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method.parse().unwrap(), url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_creates_and_webhook_rules_make_tasks_from_templates() {
    ephemera_e2e::tls();
    let s = stack().await;
    let op = operator(&s.client, "op-template-api");
    ok(s.dev.kubectl(&["apply", "-f", &example("template-greet.yaml")]));
    ok(s.dev.kubectl(&["create", "namespace", "team-b"]));
    let team_b_only = r#"
apiVersion: ephemera.dev/v1alpha1
kind: TaskTemplate
metadata: {name: secret-sauce, namespace: team-b}
spec:
  description: team b's own
  task: {command: ["true"]}
"#;
    ok(apply(&s, team_b_only));
    secret(&s, "gh-hook", SECRET).await;
    let api = server(&s).await;
    let token = api_token(&s, &["default"], &[Verb::Create, Verb::Read], 1).await;
    let base = format!("{}/api/v1/namespaces/default/tasks", api.url);
    eventually(10, "the token is known", || async {
        (call(&api.http, "GET", &base, &token, None).await.0 == 200).then_some(())
    })
    .await;

    // The list: what this caller may use, with the schemas a form is built from.
    let (st, list) = call(&api.http, "GET", &format!("{}/api/v1/templates", api.url), &token, None).await;
    assert_eq!(st, 200, "{list}");
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["greet"], "team b's template is not listed for a default-only token: {list}");
    let times = &list[0]["params"][1];
    assert_eq!(
        (&times["name"], &times["type"], &times["default"], &times["minimum"], &times["maximum"]),
        (&json!("times"), &json!("integer"), &json!("2"), &json!(1), &json!(5))
    );
    assert_eq!(list[0]["params"][2]["values"], json!(["plain", "loud"]));
    let (st, _) = call(&api.http, "GET", &format!("{}/api/v1/templates?namespace=team-b", api.url), &token, None).await;
    assert_eq!(st, 403);

    // Create by template, with typed JSON params.
    let (st, b) = call(
        &api.http,
        "POST",
        &base,
        &token,
        Some(json!({"template": "greet", "params": {"who": "rest", "times": 3}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["template"], "ClusterTaskTemplate/greet");
    let name = b["name"].as_str().unwrap().to_string();
    let tasks: Api<Task> = Api::namespaced(s.client.clone(), "default");
    let done = phase(&tasks, &name, TaskPhase::Succeeded).await;
    assert_eq!(done.status.unwrap().result, "rest|--times=3|plain|");
    let (_, view) = call(&api.http, "GET", &format!("{base}/{name}"), &token, None).await;
    assert_eq!(
        (view["queue"].as_str(), view["template"].as_str()),
        (Some("default"), Some("ClusterTaskTemplate/greet"))
    );

    // Wrong params are refused before any Task exists, each named as a field.
    let (st, b) = call(
        &api.http,
        "POST",
        &base,
        &token,
        Some(
            json!({"template": {"kind": "ClusterTaskTemplate", "name": "greet"}, "params": {"times": 0, "mode": true}}),
        ),
    )
    .await;
    assert_eq!(st, 422, "{b}");
    let mut fields: Vec<&str> = b["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["params.mode", "params.times", "params.who"], "{b}");
    let (st, b) = call(
        &api.http,
        "POST",
        &base,
        &token,
        Some(json!({"template": "greet", "params": {"who": "x"}, "command": ["sh"], "queue": "fast"})),
    )
    .await;
    assert_eq!(st, 422);
    let fields: Vec<&str> = b["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["command", "queue"], "{b}");
    // What a value makes of the Task is refused as that value's fault, before any Task exists:
    // the operator would fail the Task with the same words.
    let org_param = r#"
apiVersion: ephemera.dev/v1alpha1
kind: ClusterTaskTemplate
metadata: {name: rest-org}
spec:
  params: [{name: org, required: true}]
  task: {command: ["true"], credentials: ["$(params.org)"]}
"#;
    ok(apply(&s, org_param));
    let (st, b) =
        call(&api.http, "POST", &base, &token, Some(json!({"template": "rest-org", "params": {"org": "Not A Name"}})))
            .await;
    assert_eq!((st, b["errors"][0]["field"].as_str()), (422, Some("params.org")), "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("is not a credential name"), "{b}");
    // A name no template can have is refused as such, whatever the cluster would say about it.
    for bad in ["#\u{c6}\u{ab}", "Greet", "a..b", "-greet"] {
        let (st, b) = call(&api.http, "POST", &base, &token, Some(json!({"template": bad}))).await;
        assert_eq!((st, b["errors"][0]["field"].as_str()), (422, Some("template")), "{bad}: {b}");
        assert!(b["errors"][0]["message"].as_str().unwrap().contains("is not a template name"), "{bad}: {b}");
    }
    let (st, b) = call(&api.http, "POST", &base, &token, Some(json!({"template": "secret-sauce"}))).await;
    assert_eq!(
        (st, b["errors"][0]["field"].as_str()),
        (422, Some("template")),
        "another namespace's template is not found: {b}"
    );
    let (st, b) =
        call(&api.http, "POST", &base, &token, Some(json!({"template": "greet", "params": {"who": [1]}}))).await;
    assert_eq!(st, 422, "a param that is no scalar: {b}");
    assert!(
        b["errors"][0]["message"].as_str().unwrap().contains("param \"who\" must be a string, an integer or a boolean"),
        "{b}"
    );

    // A webhook rule names a template; its CEL params are the template's params.
    let spec = json!({"name": "gh-template", "spec": {"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"},
        "rules": [{"name": "greet-pusher", "events": ["push"], "template": {"name": "greet"},
            "params": {"who": "body.pusher.name", "mode": "'loud'"}}]}});
    trigger(&s, spec).await;
    until_known(&api, "gh-template").await;
    let payload = push("refs/heads/main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    let (st, b) = api.github("gh-template", "push", "5e1f0a00-cc78-11e3-81ab-4c9367dc0958", &payload, SECRET).await;
    assert_eq!(st, 202, "{b}");
    let made = b["task"].as_str().unwrap().to_string();
    let t = phase(&tasks, &made, TaskPhase::Succeeded).await;
    assert_eq!(t.spec.template_ref.unwrap().name, "greet");
    assert_eq!(t.status.unwrap().result, "Codertocat|--times=2|loud|");
    // The trigger's schema: a rule gives a task or a template, and a template brings its queue.
    let both = json!({"name": "gh-both", "spec": {"source": "github", "secretRef": {"name": "gh-hook", "key": "secret"},
        "rules": [{"name": "r", "template": {"name": "greet"}, "queue": "fast"}]}});
    let api_triggers: Api<ephemera_crds::TaskTrigger> = Api::namespaced(s.client.clone(), "default");
    let obj: ephemera_crds::TaskTrigger = serde_json::from_value(json!({"apiVersion": "ephemera.dev/v1alpha1",
        "kind": "TaskTrigger", "metadata": {"name": both["name"]}, "spec": both["spec"]}))
    .unwrap();
    match api_triggers.create(&PostParams::default(), &obj).await {
        Err(kube::Error::Api(e)) => {
            assert!(e.message.contains("a rule with a template takes the queue from it"), "{e:?}")
        }
        other => panic!("accepted: {other:?}"),
    }
    op.abort();
}
