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

/// The longest the logs may take to drain after the Task ended (a safety net: they end by
/// themselves once read).
const DRAIN: Duration = Duration::from_secs(120);

/// A log follow of a Task that is over ends after this long without output.
const QUIET: Duration = Duration::from_secs(5);

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
    if let (Some(logs), Stop::Failed(_)) = (&logs, &stop) {
        // Not over, only no longer followed (refused, unreachable): no output is to come.
        logs.abort();
    }
    if let Some(logs) = logs {
        match tokio::time::timeout(DRAIN, logs).await {
            Ok(Ok(Err(e))) => eprintln!("ephemera: logs: {e}"),
            Err(_) => eprintln!("ephemera: the logs did not finish within {}s; not waiting longer", DRAIN.as_secs()),
            _ => {}
        }
    }
    display.finish();
    match stop {
        Stop::Failed(e) => Err(e),
        Stop::Ended(phase) if phase == "Deleted" => {
            eprintln!("ephemera: Task {name} was deleted before it finished");
            Ok(Outcome::Failed(None))
        }
        Stop::Ended(phase) => match api.get(&format!("/api/v1/namespaces/{}/tasks/{}", enc(ns), enc(name))).await {
            Ok(task) => Ok(report(name, &task)),
            // The stream said how it ended; only the exit code is unknown then.
            Err(e) => {
                eprintln!("ephemera: cannot read the finished Task ({e}); going by the stream");
                Ok(report(name, &serde_json::json!({"phase": phase})))
            }
        },
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
/// opened again and what was already printed of that attempt is skipped. Ends when the Task is
/// over and its last output is read; a refusal (not found, forbidden, unauthorised) ends it with
/// that error.
pub async fn follow_logs(
    api: Api,
    ns: String,
    name: String,
    mut ended: watch::Receiver<bool>,
    display: Arc<Display>,
) -> Result<(), RequestError> {
    let task_path = format!("/api/v1/namespaces/{}/tasks/{}", enc(&ns), enc(&name));
    let (mut attempt, mut printed) = (0i64, 0usize);
    loop {
        let task = match api.get(&task_path).await {
            Ok(t) => t,
            Err(e) if e.outcome() == Outcome::Refused => return Err(e),
            Err(_) if *ended.borrow() => return Ok(()),
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let done = finished(task["phase"].as_str().unwrap_or_default());
        let path = format!("{task_path}/logs{}", if done { "" } else { "?follow=true" });
        let mut before = printed;
        match api.stream(&path).await {
            Ok(mut resp) => {
                // The server says which attempt this log is of (read with its Pod's name).
                let of = resp
                    .headers()
                    .get("ephemera-attempt")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or_else(|| task["attempt"].as_i64().unwrap_or(0));
                if of != attempt {
                    if attempt != 0 {
                        display.note(&format!("ephemera: attempt {of}"));
                    }
                    (attempt, printed, before) = (of, 0, 0);
                }
                // The same container's log starts over on each request: skip what is shown.
                let mut received = 0usize;
                loop {
                    // Once the Task is over, a follow whose Pod went away abruptly (a cancel) may
                    // stay open: it ends after a few seconds without output, never mid-output.
                    let next = if *ended.borrow() {
                        match tokio::time::timeout(QUIET, api.chunk(&mut resp)).await {
                            Ok(c) => c,
                            Err(_) => break,
                        }
                    } else {
                        tokio::select! {
                            c = api.chunk(&mut resp) => c,
                            Ok(_) = ended.wait_for(|e| *e) => continue,
                        }
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
            // Its Pod is gone (or never was): nothing more to read.
            Err(_) if done => return Ok(()),
            Err(e) if e.outcome() == Outcome::Refused && e.kind() != Some("no-attempt-yet") => return Err(e),
            // No attempt yet: wait for one.
            Err(_) => {}
        }
        if done {
            return Ok(());
        }
        if printed == before {
            // Between attempts (or before the first) the log has nothing new: look again later.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
