//! Following Tasks over the live stream, through reconnects: the follower resubscribes with the
//! last `seq` it showed (any replica resumes from it) and the [`Tracker`] drops what it already
//! showed, so every event appears exactly once and a compaction shows as a gap.

use std::time::Duration;

use ephemera_cli::problem::RequestError;
use ephemera_cli::tracker::{Show, TaskKey, Tracker};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::client::Api;
use super::display::clean;

/// How long the server may be unreachable before a follower gives up.
const GIVE_UP: Duration = Duration::from_secs(300);

/// Tasks a namespace follow resubscribes to by name on a reconnect (the server's default limit is
/// 100 subscriptions per connection; one is the namespace's).
const RESUMED_TASKS: usize = 90;

/// What to follow.
#[derive(Debug, Clone)]
pub enum Subject {
    /// One Task.
    Task(TaskKey),
    /// Every Task of a namespace.
    Namespace(String),
}

/// One thing to show, for one Task.
#[derive(Debug)]
pub struct Shown {
    /// The Task.
    pub key: TaskKey,
    /// What.
    pub show: Show<Value>,
    /// The Task's state, when the server sent one (snapshots).
    pub state: Option<Value>,
}

/// Why following stopped.
#[derive(Debug)]
pub enum Stop {
    /// The followed Task ended (`phase`).
    Ended(String),
    /// The server refused or stayed unreachable.
    Failed(RequestError),
}

/// Follows `subject`, calling `show` for every new thing, until the Task ends (a namespace: until
/// refused or unreachable for too long).
pub async fn follow(api: &Api, subject: Subject, mut show: impl FnMut(Shown)) -> Stop {
    // A Task that does not exist would only ever get `subscribed`: say so instead of waiting.
    if let Subject::Task((ns, name)) = &subject {
        let path = format!("/api/v1/namespaces/{}/tasks/{}", super::client::enc(ns), super::client::enc(name));
        if let Err(e) = api.get(&path).await {
            if !retryable(&e) {
                return Stop::Failed(e);
            }
        }
    }
    let mut tracker = Tracker::default();
    let mut down_since: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut connected = false;
        let result = session(api, &subject, &mut tracker, &mut show, &mut connected).await;
        // Only time without any connection counts towards giving up.
        if connected {
            down_since = None;
            backoff = Duration::from_millis(250);
        }
        match result {
            Ok(Some(phase)) => return Stop::Ended(phase),
            // Closed by the server (a drain, a slow-consumer cut-off): reconnect soon (any
            // replica), backing off if it keeps closing.
            Ok(None) => {}
            Err(e) if retryable(&e) => {
                let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > GIVE_UP {
                    return Stop::Failed(e);
                }
            }
            Err(e) => return Stop::Failed(e),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn retryable(e: &RequestError) -> bool {
    match e {
        RequestError::Unreachable { .. } => true,
        RequestError::Answered(p) => p.status >= 500 || p.status == 429 || p.status == 408,
    }
}

fn subscribe(subject: &Subject, tracker: &Tracker) -> Vec<Value> {
    match subject {
        Subject::Task((ns, name)) => {
            let key = (ns.clone(), name.clone());
            let mut m = json!({"type": "subscribe", "namespace": ns, "task": name});
            if let Some(since) = tracker.since(&key) {
                m["since"] = json!(since);
            }
            vec![m]
        }
        Subject::Namespace(ns) => {
            // Each unfinished Task already seen, by name with its `since` (first: the namespace's
            // subscription keeps a cursor a Task subscription set), so a reconnect resumes them
            // exactly instead of starting them over; then the namespace. Within the server's
            // per-connection limit: the rest come back as snapshots, which the tracker trims.
            let mut out: Vec<Value> = tracker
                .seen()
                .filter(|(key, _)| !tracker.has_ended(key))
                .take(RESUMED_TASKS)
                .map(
                    |((tns, name), since)| json!({"type": "subscribe", "namespace": tns, "task": name, "since": since}),
                )
                .collect();
            out.push(json!({"type": "subscribe", "namespace": ns}));
            out
        }
    }
}

/// One connection: Ok(Some(phase)) when the followed Task ended, Ok(None) when the server closed.
async fn session(
    api: &Api,
    subject: &Subject,
    tracker: &mut Tracker,
    show: &mut impl FnMut(Shown),
    connected: &mut bool,
) -> Result<Option<String>, RequestError> {
    let mut ws = api.websocket().await?;
    *connected = true;
    let lost = |e: tokio_tungstenite::tungstenite::Error| RequestError::Unreachable {
        server: api.server().to_string(),
        why: format!("the live stream broke: {e}"),
    };
    for m in subscribe(subject, tracker) {
        ws.send(Message::text(m.to_string())).await.map_err(lost)?;
    }
    // The server sends a heartbeat every 15 s: silence for much longer is a dead connection.
    while let Ok(next) = tokio::time::timeout(Duration::from_secs(45), ws.next()).await {
        let text = match next {
            None => return Ok(None),
            Some(Err(e)) => return Err(lost(e)),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
        };
        let Ok(m) = serde_json::from_str::<Value>(&text) else { continue };
        if let Some(phase) = handle(subject, tracker, show, m)? {
            let _ = ws.close(None).await;
            return Ok(Some(phase));
        }
    }
    Err(RequestError::Unreachable { server: api.server().to_string(), why: "the live stream went silent".into() })
}

/// One server message; Some(phase) when the followed Task ended.
fn handle(
    subject: &Subject,
    tracker: &mut Tracker,
    show: &mut impl FnMut(Shown),
    m: Value,
) -> Result<Option<String>, RequestError> {
    let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    let key = (text("namespace"), text("task"));
    match m["type"].as_str().unwrap_or_default() {
        "snapshot" => {
            let events: Vec<(i64, Value)> = m["events"]
                .as_array()
                .map(|a| a.iter().map(|e| (e["seq"].as_i64().unwrap_or(0), e.clone())).collect())
                .unwrap_or_default();
            let last_seq = m["lastSeq"].as_i64().unwrap_or(0);
            let mut first = true;
            for s in tracker.snapshot(&key, events, last_seq) {
                let state = first.then(|| m["state"].clone());
                first = false;
                show(Shown { key: key.clone(), show: s, state });
            }
        }
        "event" => {
            let seq = m["event"]["seq"].as_i64().unwrap_or(0);
            for s in tracker.event(&key, seq, m["event"].clone()) {
                show(Shown { key: key.clone(), show: s, state: None });
            }
        }
        "end" => {
            for s in tracker.end::<Value>(&key) {
                show(Shown { key: key.clone(), show: s, state: Some(json!({"phase": m["phase"]})) });
            }
            if matches!(subject, Subject::Task(k) if *k == key) {
                return Ok(Some(text("phase")));
            }
        }
        "error" => {
            let code = text("code");
            let message = m["message"].as_str().or(m["detail"].as_str()).unwrap_or(&code).to_string();
            // Refusals of what was asked for end the follow; others (a Task-level subscription of a
            // namespace follow beyond the limit) are said and the rest goes on.
            let status = match code.as_str() {
                "forbidden" => 403,
                "bad-request" => 400,
                _ => 0,
            };
            if status != 0 && matches!(subject, Subject::Task(_)) {
                let p = ephemera_cli::problem::Problem { title: code, status, detail: message, ..Default::default() };
                return Err(RequestError::Answered(p));
            }
            eprintln!("ephemera: the stream says: {}: {}", clean(&code), clean(&message));
        }
        _ => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(subject: &Subject, tracker: &mut Tracker, msgs: &[Value]) -> (Vec<String>, Option<String>) {
        let mut shown = Vec::new();
        let mut end = None;
        for m in msgs {
            let r = handle(
                subject,
                tracker,
                &mut |s: Shown| {
                    shown.push(match s.show {
                        Show::Event(e) => format!("{}:{}", s.key.1, e["seq"]),
                        Show::Gap { after, before } => format!("gap {after}..{before}"),
                        Show::End => "end".into(),
                    })
                },
                m.clone(),
            )
            .unwrap();
            end = end.or(r);
        }
        (shown, end)
    }

    fn ev(task: &str, seq: i64) -> Value {
        json!({"type": "event", "namespace": "default", "task": task, "event": {"seq": seq, "kind": "Progress"}})
    }

    #[test]
    fn a_reconnect_resubscribes_from_the_last_seq_and_repeats_nothing() {
        let subject = Subject::Task(("default".into(), "t".into()));
        let mut tracker = Tracker::default();
        let (shown, _) = run(&subject, &mut tracker, &[ev("t", 1), ev("t", 2)]);
        assert_eq!(shown, ["t:1", "t:2"]);
        assert_eq!(subscribe(&subject, &tracker)[0]["since"], 2);
        // The new replica replays from `since`; a duplicate of 2 is dropped.
        let snap = json!({"type": "snapshot", "namespace": "default", "task": "t", "state": {}, "lastSeq": 3,
            "events": [{"seq": 2}, {"seq": 3}]});
        let end = json!({"type": "end", "namespace": "default", "task": "t", "phase": "Succeeded", "lastSeq": 3});
        let (shown, phase) = run(&subject, &mut tracker, &[snap, ev("t", 3), end]);
        assert_eq!(shown, ["t:3", "end"]);
        assert_eq!(phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn a_namespace_follow_resumes_each_task_it_saw_and_not_the_ended_ones() {
        let subject = Subject::Namespace("default".into());
        let mut tracker = Tracker::default();
        let end_a = json!({"type": "end", "namespace": "default", "task": "a", "phase": "Failed", "lastSeq": 1});
        let (_, phase) = run(&subject, &mut tracker, &[ev("a", 1), ev("b", 1), ev("b", 2), end_a]);
        assert_eq!(phase, None, "a namespace follow goes on after one Task ends");
        let subs = subscribe(&subject, &tracker);
        assert_eq!(subs.len(), 2);
        assert_eq!((&subs[0]["task"], &subs[0]["since"]), (&json!("b"), &json!(2)), "resumed Tasks first");
        assert_eq!(subs[1], json!({"type": "subscribe", "namespace": "default"}));
    }

    #[test]
    fn a_forbidden_task_ends_the_follow_with_the_servers_reason() {
        let subject = Subject::Task(("other".into(), "t".into()));
        let m = json!({"type": "error", "code": "forbidden", "message": "you may not read namespace other"});
        let err = handle(&subject, &mut Tracker::default(), &mut |_| {}, m).unwrap_err();
        assert_eq!(err.outcome(), ephemera_cli::exit::Outcome::Refused);
    }
}
