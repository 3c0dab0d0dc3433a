//! The messages of the live channels, and the catch-up rule shared by WebSocket and SSE: given a Task
//! and the last `seq` a client saw, what to send so it has everything exactly once.

use ephemera_crds::{ProgressEvent, Task, TaskStatus};
use serde::{Deserialize, Serialize};

use crate::tasks::model::TaskView;

/// Client → server (WebSocket).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Follow one Task (`task`) or every Task of a namespace; `since` resumes after that `seq`.
    Subscribe {
        /// Namespace.
        namespace: String,
        /// One Task, or all of the namespace when absent.
        #[serde(default)]
        task: Option<String>,
        /// Last `seq` seen (one Task only).
        #[serde(default)]
        since: Option<i64>,
    },
    /// Stop following.
    Unsubscribe {
        /// Namespace.
        namespace: String,
        /// Task, as subscribed.
        #[serde(default)]
        task: Option<String>,
    },
}

/// Server → client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// A subscription is active.
    Subscribed {
        /// Namespace.
        namespace: String,
        /// Task, or all.
        #[serde(skip_serializing_if = "Option::is_none")]
        task: Option<String>,
    },
    /// The Task's whole current state and retained events.
    Snapshot {
        /// Namespace.
        namespace: String,
        /// Task.
        task: String,
        /// Its state.
        state: Box<TaskView>,
        /// Retained events, oldest first.
        events: Vec<ProgressEvent>,
        /// Last `seq` so far.
        #[serde(rename = "lastSeq")]
        last_seq: i64,
    },
    /// One event (progress or phase change), in `seq` order.
    Event {
        /// Namespace.
        namespace: String,
        /// Task.
        task: String,
        /// The event.
        event: ProgressEvent,
    },
    /// The events after `since` were compacted away: a snapshot follows.
    Resync {
        /// Namespace.
        namespace: String,
        /// Task.
        task: String,
        /// What the client asked to resume from.
        since: i64,
        /// Why.
        reason: String,
    },
    /// The Task ended (or was deleted); no more events for it.
    End {
        /// Namespace.
        namespace: String,
        /// Task.
        task: String,
        /// Final phase (`Deleted` when removed).
        phase: String,
        /// Last `seq`.
        #[serde(rename = "lastSeq")]
        last_seq: i64,
    },
    /// Still here.
    Heartbeat {
        /// Server time.
        time: String,
    },
    /// A refused request; the connection stays open.
    Error {
        /// Stable code (`forbidden`, `bad-request`, `too-many-subscriptions`, `slow-consumer`,
        /// `unauthorized`).
        code: String,
        /// Explanation.
        message: String,
    },
}

/// What a client that saw up to `since` (None: nothing) must get of `task` now, and the new `since`.
/// `ended` is set once the end was sent.
pub fn catch_up(task: &Task, since: Option<i64>, ended: &mut bool) -> (Vec<ServerMessage>, i64) {
    let ns = task.metadata.namespace.clone().unwrap_or_default();
    let name = task.metadata.name.clone().unwrap_or_default();
    // Borrowed, never cloned whole: this runs for every subscriber a change reaches.
    let none = TaskStatus::default();
    let st = task.status.as_ref().unwrap_or(&none);
    let last_seq = st.last_seq.max(st.progress.last().map(|e| e.seq).unwrap_or(0));
    let snapshot = || ServerMessage::Snapshot {
        namespace: ns.clone(),
        task: name.clone(),
        state: Box::new(TaskView::from(task)),
        events: st.progress.clone(),
        last_seq,
    };
    let mut out = Vec::new();
    match since {
        None => out.push(snapshot()),
        Some(s) if s >= last_seq => {}
        Some(s) => {
            let oldest = st.progress.first().map(|e| e.seq);
            if oldest.is_none_or(|o| o > s + 1) {
                out.push(ServerMessage::Resync {
                    namespace: ns.clone(),
                    task: name.clone(),
                    since: s,
                    reason: "compacted".into(),
                });
                out.push(snapshot());
            } else {
                out.extend(st.progress.iter().filter(|e| e.seq > s).map(|e| ServerMessage::Event {
                    namespace: ns.clone(),
                    task: name.clone(),
                    event: e.clone(),
                }));
            }
        }
    }
    if st.phase.is_terminal() && !*ended {
        *ended = true;
        out.push(ServerMessage::End { namespace: ns, task: name, phase: format!("{:?}", st.phase), last_seq });
    }
    (out, last_seq.max(since.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::{EventKind, TaskPhase, TaskStatus};

    fn task(events: std::ops::RangeInclusive<i64>, phase: TaskPhase) -> Task {
        let mut t = Task::new("t", serde_json::from_value(serde_json::json!({"command": ["true"]})).unwrap());
        t.metadata.namespace = Some("ns".into());
        let progress = events
            .map(|seq| ProgressEvent {
                seq,
                kind: EventKind::Progress,
                phase: None,
                attempt: 1,
                time: String::new(),
                percent: None,
                message: String::new(),
            })
            .collect::<Vec<_>>();
        t.status = Some(TaskStatus {
            phase,
            last_seq: progress.last().map(|e| e.seq).unwrap_or(0),
            progress,
            ..Default::default()
        });
        t
    }

    #[test]
    fn resumes_exactly_or_resyncs_when_compacted() {
        let t = task(5..=9, TaskPhase::Running);
        let mut ended = false;
        let (out, last) = catch_up(&t, Some(6), &mut ended);
        let seqs: Vec<i64> = out
            .iter()
            .filter_map(|m| if let ServerMessage::Event { event, .. } = m { Some(event.seq) } else { None })
            .collect();
        assert_eq!((seqs, last), (vec![7, 8, 9], 9));
        let (out, _) = catch_up(&t, Some(2), &mut ended);
        assert!(
            matches!(out[0], ServerMessage::Resync { since: 2, .. })
                && matches!(out[1], ServerMessage::Snapshot { .. })
        );
        let (out, _) = catch_up(&t, Some(9), &mut ended);
        assert!(out.is_empty(), "nothing twice");
        let done = task(5..=10, TaskPhase::Succeeded);
        let (out, _) = catch_up(&done, Some(9), &mut ended);
        assert!(matches!(out.last(), Some(ServerMessage::End { .. })));
        let (out, _) = catch_up(&done, Some(10), &mut ended);
        assert!(out.is_empty(), "the end is sent once");
    }
}
