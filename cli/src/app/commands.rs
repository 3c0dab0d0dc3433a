//! Each command: the request it makes and what it prints (documents on stdout, status on stderr).

use std::io::Read;

use ephemera_cli::ci::CiRun;
use ephemera_cli::exit::Outcome;
use ephemera_cli::manifest;
use ephemera_cli::output::{self, Column, Format};
use ephemera_cli::problem::{Problem, RequestError};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::args::{List, OutputFormat, Run};
use super::client::{enc, Api};
use super::display::clean;
use super::follow;
use super::live::{self, Shown, Stop, Subject};
use ephemera_cli::tracker::Show;

/// What a command ends with: an outcome (its exit code) or a failure to say.
pub type Done = Result<Outcome, RequestError>;

/// A local mistake (a bad file, a bad `KEY=VALUE`): said like the server's refusals, exit 64.
pub fn usage(title: &str, detail: String) -> RequestError {
    RequestError::Answered(Problem { title: title.into(), status: 400, detail, ..Default::default() })
}

fn format(o: OutputFormat) -> Format {
    match o {
        OutputFormat::Table => Format::Table,
        OutputFormat::Wide => Format::Wide,
        OutputFormat::Json => Format::Json,
        OutputFormat::Yaml => Format::Yaml,
    }
}

/// Prints `doc` as `-o` says: documents whole, else the table of `items` (or of `doc` itself).
fn print(doc: &Value, o: OutputFormat, columns: &[Column]) {
    match format(o) {
        f @ (Format::Json | Format::Yaml) => match output::document(doc, f) {
            Ok(s) => print!("{s}"),
            Err(e) => eprintln!("ephemera: cannot print the answer: {e}"),
        },
        f => {
            let items: Vec<Value> = match doc {
                Value::Array(a) => a.clone(),
                Value::Object(m) if m.get("items").is_some_and(Value::is_array) => {
                    m["items"].as_array().cloned().unwrap_or_default()
                }
                other => vec![other.clone()],
            };
            print!("{}", output::table(&items, columns, f == Format::Wide, jiff::Timestamp::now()));
        }
    }
}

fn task_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{}/tasks/{}", enc(ns), enc(name))
}

fn pairs(flag: &str, items: &[String]) -> Result<Map<String, Value>, RequestError> {
    let mut out = Map::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(usage("bad flag", format!("{flag} {item:?} is not KEY=VALUE")));
        };
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(out)
}

/// The create body `run` sends, and the namespace it goes to.
fn run_body(run: &Run, namespace: &str) -> Result<(String, Value), RequestError> {
    let (ns, mut body) = if let Some(file) = &run.file {
        let mut text = String::new();
        let read = if file.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::read_to_string(file).map(|t| text = t)
        };
        read.map_err(|e| usage("cannot read the file", format!("{}: {e}", file.display())))?;
        let parsed = manifest::parse(&text).map_err(|e| usage("not a Task", format!("{}: {e}", file.display())))?;
        (parsed.namespace.unwrap_or_else(|| namespace.to_string()), parsed.body)
    } else if let Some(t) = &run.template {
        let template = match t.split_once('/') {
            Some(("TaskTemplate", name)) => json!({"kind": "TaskTemplate", "name": name}),
            Some(("ClusterTaskTemplate", name)) => json!({"kind": "ClusterTaskTemplate", "name": name}),
            Some(_) => {
                return Err(usage(
                    "bad --template",
                    format!("{t:?}: use NAME, TaskTemplate/NAME or ClusterTaskTemplate/NAME"),
                ))
            }
            None => json!(t),
        };
        (namespace.to_string(), json!({"template": template, "params": pairs("--param", &run.params)?}))
    } else if let Some(image) = &run.image {
        if run.command.is_empty() {
            return Err(usage("no command", "--image needs a command after `--`, e.g. `-- sh -c 'echo hi'`".into()));
        }
        (namespace.to_string(), json!({"image": image, "command": run.command}))
    } else {
        return Err(usage("nothing to run", "give -f FILE, --template NAME or --image IMAGE -- COMMAND".into()));
    };
    let Value::Object(m) = &mut body else { return Err(usage("not a Task", "the body is not an object".into())) };
    if !run.env.is_empty() {
        let mut env = m.get("env").and_then(Value::as_object).cloned().unwrap_or_default();
        env.extend(pairs("--env", &run.env)?);
        m.insert("env".into(), Value::Object(env));
    }
    if !run.credentials.is_empty() {
        m.insert("credentials".into(), json!(run.credentials));
    }
    for (k, v) in [
        ("queue", run.queue.as_ref().map(|q| json!(q))),
        ("priority", run.priority.map(|p| json!(p))),
        ("timeoutSeconds", run.timeout.map(|t| json!(t))),
        ("name", run.name.as_ref().map(|n| json!(n))),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    Ok((ns, body))
}

/// `run`.
pub async fn run(api: &Api, run: &Run, namespace: &str, o: OutputFormat) -> Done {
    let (ns, body) = run_body(run, namespace)?;
    let key = if run.no_idempotency_key {
        None
    } else if let Some(k) = &run.idempotency_key {
        Some(k.clone())
    } else {
        // serde_json's maps are sorted: the same request is the same bytes, so the same key.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        CiRun::detect(&|k| std::env::var(k).ok()).map(|ci| ci.idempotency_key(&bytes))
    };
    let mut headers = HeaderMap::new();
    if let Some(k) = &key {
        let v = HeaderValue::from_str(k)
            .map_err(|_| usage("bad --idempotency-key", "it must be printable ASCII".into()))?;
        headers.insert("idempotency-key", v);
    }
    let path = format!("/api/v1/namespaces/{}/tasks", enc(&ns));
    let answer = api.call(Method::POST, &path, Some(&body), headers).await?;
    let name = answer.body["name"].as_str().unwrap_or_default().to_string();
    if answer.replayed {
        eprintln!(
            "ephemera: Task {name} was already created with idempotency key {:?} (a retried step): using it",
            key.unwrap_or_default()
        );
    } else {
        eprintln!("ephemera: created Task {ns}/{name}");
    }
    if !run.follow {
        match o {
            OutputFormat::Json | OutputFormat::Yaml => print(&answer.body, o, output::TASK_COLUMNS),
            _ => println!("{name}"),
        }
        return Ok(Outcome::Succeeded);
    }
    follow_to_end(api, &ns, &name).await
}

async fn follow_to_end(api: &Api, ns: &str, name: &str) -> Done {
    tokio::select! {
        r = follow::follow(api, ns, name, true) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nephemera: interrupted; Task {name} keeps running (`ephemera cancel {name}` stops it)");
            Ok(Outcome::Interrupted)
        }
    }
}

/// `get`.
pub async fn get(api: &Api, ns: &str, name: &str, o: OutputFormat) -> Done {
    print(&api.get(&task_path(ns, name)).await?, o, output::TASK_COLUMNS);
    Ok(Outcome::Succeeded)
}

/// `list`: one page, or every page with `--all` (the API's cursor keeps pages stable).
pub async fn list(api: &Api, ns: &str, l: &List, o: OutputFormat) -> Done {
    let mut query = vec![format!("limit={}", l.limit)];
    for (k, v) in
        [("phase", &l.phase), ("queue", &l.queue), ("labelSelector", &l.selector), ("createdSince", &l.created_since)]
    {
        if let Some(v) = v {
            query.push(format!("{k}={}", enc(v)));
        }
    }
    let base = format!("/api/v1/namespaces/{}/tasks?{}", enc(ns), query.join("&"));
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let last = loop {
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={}", enc(c)),
            None => base.clone(),
        };
        let page = api.get(&path).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        cursor = page["nextCursor"].as_str().map(str::to_string);
        if !l.all || cursor.is_none() {
            break page;
        }
    };
    let mut doc = json!({"items": items});
    if let Some(c) = last["nextCursor"].as_str() {
        doc["nextCursor"] = json!(c);
        if !matches!(o, OutputFormat::Json | OutputFormat::Yaml) {
            eprintln!("ephemera: more Tasks: --all lists every page");
        }
    }
    print(&doc, o, output::TASK_COLUMNS);
    Ok(Outcome::Succeeded)
}

/// `logs`.
pub async fn logs(api: &Api, ns: &str, name: &str, follow: bool, tail: Option<i64>) -> Done {
    if follow {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let display = std::sync::Arc::new(super::display::Display::Plain);
        follow::follow_logs(api.clone(), ns.to_string(), name.to_string(), rx, display).await?;
        return Ok(Outcome::Succeeded);
    }
    let tail = tail.map(|t| format!("?tailLines={t}")).unwrap_or_default();
    let mut resp = api.stream(&format!("{}/logs{tail}", task_path(ns, name))).await?;
    use std::io::Write;
    while let Some(chunk) = api.chunk(&mut resp).await? {
        let _ = std::io::stdout().lock().write_all(&chunk);
    }
    Ok(Outcome::Succeeded)
}

/// `watch`: one line per event (`-o json`: one JSON object per line), exactly once across
/// reconnects.
pub async fn watch(api: &Api, ns: &str, name: Option<&str>, o: OutputFormat) -> Done {
    let subject = match name {
        Some(n) => Subject::Task((ns.to_string(), n.to_string())),
        None => Subject::Namespace(ns.to_string()),
    };
    let json = matches!(o, OutputFormat::Json | OutputFormat::Yaml);
    let line = move |s: Shown| {
        let (ns, task) = &s.key;
        let out = match (&s.show, json) {
            (Show::Event(e), true) => json!({"namespace": ns, "task": task, "event": e}).to_string(),
            (Show::Gap { after, before }, true) => {
                json!({"namespace": ns, "task": task, "gap": {"after": after, "before": before}}).to_string()
            }
            (Show::End, true) => {
                json!({"namespace": ns, "task": task, "end": s.state.as_ref().map(|v| v["phase"].clone())}).to_string()
            }
            (Show::Event(e), false) => {
                let what = match e["kind"].as_str() {
                    Some("Phase") => format!("{} (attempt {})", e["phase"].as_str().unwrap_or("?"), e["attempt"]),
                    _ => {
                        let pct = e["percent"].as_i64().map(|p| format!("{p}% ")).unwrap_or_default();
                        format!("{pct}{}", clean(e["message"].as_str().unwrap_or_default()))
                    }
                };
                format!("{}  {ns}/{task}  #{}  {what}", e["time"].as_str().unwrap_or_default(), e["seq"])
            }
            (Show::Gap { after, before }, false) => {
                format!("{ns}/{task}  events {}..{} were compacted", after + 1, before - 1)
            }
            (Show::End, false) => {
                let phase = s.state.as_ref().and_then(|v| v["phase"].as_str().map(str::to_string)).unwrap_or_default();
                format!("{ns}/{task}  ended: {phase}")
            }
        };
        println!("{out}");
    };
    let stop = tokio::select! {
        s = live::follow(api, subject, line) => s,
        _ = tokio::signal::ctrl_c() => return Ok(Outcome::Succeeded),
    };
    match stop {
        Stop::Ended(_) => Ok(Outcome::Succeeded),
        Stop::Failed(e) => Err(e),
    }
}

/// `cancel`.
pub async fn cancel(api: &Api, ns: &str, name: &str) -> Done {
    api.call(Method::POST, &format!("{}/cancel", task_path(ns, name)), None, HeaderMap::new()).await?;
    eprintln!("ephemera: Task {name}: cancel requested");
    Ok(Outcome::Succeeded)
}

/// `delete`.
pub async fn delete(api: &Api, ns: &str, name: &str) -> Done {
    api.call(Method::DELETE, &task_path(ns, name), None, HeaderMap::new()).await?;
    eprintln!("ephemera: Task {name}: deleted (its Pods go and its credentials are revoked first)");
    Ok(Outcome::Succeeded)
}

/// `result`: the result text itself on stdout (a table has nothing to add), or the document.
pub async fn result(api: &Api, ns: &str, name: &str, o: OutputFormat) -> Done {
    let doc = api.get(&format!("{}/result", task_path(ns, name))).await?;
    match o {
        OutputFormat::Json | OutputFormat::Yaml => print(&doc, o, &[]),
        _ => {
            print!("{}", doc["result"].as_str().unwrap_or_default());
            let code = doc["exitCode"].as_i64().map(|c| format!(", exit code {c}")).unwrap_or_default();
            eprintln!("ephemera: Task {name} {}{code}", doc["phase"].as_str().unwrap_or_default());
        }
    }
    Ok(Outcome::Succeeded)
}

/// `templates`, `schedules`, `queues`, `triggers`: a listing.
pub async fn listing(api: &Api, path: &str, o: OutputFormat, columns: &[Column]) -> Done {
    print(&api.get(path).await?, o, columns);
    Ok(Outcome::Succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn body(args: &[&str]) -> Result<(String, Value), RequestError> {
        let cli = super::super::args::Cli::try_parse_from([&["ephemera", "run"], args].concat()).unwrap();
        let super::super::args::Command::Run(run) = cli.command else { unreachable!() };
        run_body(&run, "team-a")
    }

    #[test]
    fn run_builds_the_body_the_api_takes_from_each_kind_of_flag() {
        let (ns, b) =
            body(&["--image", "busybox", "--queue", "q", "-e", "A=1", "--priority", "-3", "--", "echo", "hi"]).unwrap();
        assert_eq!(ns, "team-a");
        assert_eq!(
            b,
            json!({"image": "busybox", "command": ["echo", "hi"], "queue": "q", "priority": -3, "env": {"A": "1"}})
        );
        let (_, b) = body(&["--template", "TaskTemplate/note", "-p", "title=a=b"]).unwrap();
        assert_eq!(b, json!({"template": {"kind": "TaskTemplate", "name": "note"}, "params": {"title": "a=b"}}));
        let (_, b) = body(&["--template", "greet"]).unwrap();
        assert_eq!(b["template"], "greet");
    }

    #[test]
    fn run_says_what_is_missing_before_asking_the_server() {
        for args in [&["--image", "busybox"][..], &[], &["--template", "x", "-p", "novalue"], &["--template", "Pod/x"]]
        {
            let err = body(args).unwrap_err();
            assert_eq!(err.outcome(), Outcome::Refused, "{args:?}");
        }
    }
}
