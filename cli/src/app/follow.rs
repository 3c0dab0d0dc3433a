//! Following one Task to its end: its events over the live stream (status on stderr) and its logs
//! (stdout), attempt after attempt, then the outcome its exit code comes from.

use std::sync::Arc;
use std::time::Duration;

use ephemera_cli::exit::Outcome;
use ephemera_cli::problem::RequestError;
use ephemera_cli::tracker::Show;
use serde_json::Value;
use tokio::sync::watch;

use super::client::{enc, Api};
use super::display::Display;
use super::live::{self, Stop, Subject};

/// How long the logs may take to drain after the Task ended.
const DRAIN: Duration = Duration::from_secs(15);

/// Follows `ns/name` until it ends; the outcome, with a line saying how it ended.
pub async fn follow(api: &Api, ns: &str, name: &str, with_logs: bool) -> Result<Outcome, RequestError> {
    let display = Arc::new(Display::for_stderr());
    let (ended_tx, ended_rx) = watch::channel(false);
    let logs = with_logs
        .then(|| tokio::spawn(follow_logs(api.clone(), ns.to_string(), name.to_string(), ended_rx, display.clone())));
    let key = (ns.to_string(), name.to_string());
    let shown = display.clone();
    let stop = live::follow(api, Subject::Task(key), move |s| {
        if let Show::Event(e) = &s.show {
            shown.event(&s.key.1, e);
        } else if let Show::Gap { after, before } = s.show {
            shown.note(&format!("ephemera: (events {}..{} were compacted on the server)", after + 1, before - 1));
        }
    })
    .await;
    let _ = ended_tx.send(true);
    if let Some(logs) = logs {
        let _ = tokio::time::timeout(DRAIN, logs).await;
    }
    display.finish();
    match stop {
        Stop::Failed(e) => Err(e),
        Stop::Ended(phase) if phase == "Deleted" => {
            eprintln!("ephemera: Task {name} was deleted before it finished");
            Ok(Outcome::Failed(None))
        }
        Stop::Ended(_) => {
            let task = api.get(&format!("/api/v1/namespaces/{}/tasks/{}", enc(ns), enc(name))).await?;
            Ok(report(name, &task))
        }
    }
}

/// The outcome of a finished `task`, said on stderr.
pub fn report(name: &str, task: &Value) -> Outcome {
    let phase = task["phase"].as_str().unwrap_or_default();
    let code = task["exitCode"].as_i64().and_then(|c| i32::try_from(c).ok());
    let outcome = Outcome::of_phase(phase, code).unwrap_or(Outcome::Failed(None));
    let why = [task["reason"].as_str(), task["message"].as_str()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let code = code.map(|c| format!(", exit code {c}")).unwrap_or_default();
    let why = if why.is_empty() { String::new() } else { format!(" ({})", super::display::clean(&why)) };
    eprintln!("ephemera: Task {name} {phase}{code}{why}; exiting {}", outcome.exit_code());
    outcome
}

fn finished(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Cancelled" | "TimedOut")
}

/// Prints each attempt's output once: a log stream that breaks (a drain, a dropped connection) is
/// opened again and what was already printed of that attempt is skipped.
pub async fn follow_logs(api: Api, ns: String, name: String, mut ended: watch::Receiver<bool>, display: Arc<Display>) {
    let task_path = format!("/api/v1/namespaces/{}/tasks/{}", enc(&ns), enc(&name));
    let (mut attempt, mut printed) = (0i64, 0usize);
    loop {
        let task = match api.get(&task_path).await {
            Ok(t) => t,
            Err(_) if *ended.borrow() => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let now = task["attempt"].as_i64().unwrap_or(0);
        if now != attempt {
            if attempt != 0 {
                display.note(&format!("ephemera: attempt {now}"));
            }
            (attempt, printed) = (now, 0);
        }
        let done = finished(task["phase"].as_str().unwrap_or_default());
        let path = format!("{task_path}/logs{}", if done { "" } else { "?follow=true" });
        let before = printed;
        match api.stream(&path).await {
            Ok(mut resp) => {
                // The same container's log starts over on each request: skip what is shown.
                let mut received = 0usize;
                loop {
                    let next = tokio::select! {
                        c = api.chunk(&mut resp) => c,
                        _ = over(&mut ended) => break,
                    };
                    let Ok(Some(chunk)) = next else { break };
                    let end = received + chunk.len();
                    if end > printed {
                        display.output(&chunk[printed.saturating_sub(received)..]);
                        printed = end;
                    }
                    received = end;
                }
            }
            // No attempt yet (or its Pod is gone): wait for one unless the Task is over.
            Err(_) if done => return,
            Err(_) => {}
        }
        if done {
            return;
        }
        if printed == before {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Resolves a few seconds after the Task ended: a follow whose Pod went away abruptly (a cancel)
/// may stay open, and whatever output is still to come arrives by then.
async fn over(ended: &mut watch::Receiver<bool>) {
    if ended.wait_for(|e| *e).await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
}
