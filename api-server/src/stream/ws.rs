//! `GET /api/v1/stream`: the WebSocket channel. Authentication as for REST (Authorization header), or
//! for browsers a `?ticket=` from `POST /api/v1/stream/tickets`, or the subprotocols
//! `ephemera.v1, bearer.<token>`. Clients send `subscribe`/`unsubscribe`; the server sends
//! `snapshot`, `event`, `resync`, `end`, `heartbeat` and `error` messages (JSON text frames). A client
//! that falls behind is closed with code 4008 and resumes with `since`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::hub::{Slot, Update};
use super::messages::{catch_up, ClientMessage, ServerMessage};
use crate::auth::{authenticate, bearer_header, Identity, Presented, Verb};
use crate::error::ApiError;
use crate::extract::{plausible_name, ApiQuery};
use crate::AppState;

/// The subprotocol spoken.
pub const PROTOCOL: &str = "ephemera.v1";
/// Close code for a consumer that fell behind.
pub const CLOSE_SLOW: u16 = 4008;
/// Close code: the credentials the stream was opened with were revoked or expired (checked at
/// every heartbeat).
pub const CLOSE_UNAUTHORIZED: u16 = 4001;
/// Close code "going away": the replica is shutting down (reconnect, any replica resumes).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// How often both transports (WebSocket, SSE) send a heartbeat and check credentials again.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// A send that takes longer than this means the client is not reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Query of the stream endpoint.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// A stream ticket.
    pub ticket: Option<String>,
}

/// Opens the live channel.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let header_token = bearer_header(&headers).map(String::from);
    let protocols: Vec<String> = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let protocol_token = protocols.iter().find_map(|p| p.strip_prefix("bearer.").map(String::from));
    let (who, presented) = match (header_token, q.ticket, protocol_token) {
        (Some(t), _, _) | (None, None, Some(t)) => {
            let who = authenticate(&state, &t).await?;
            (who, Presented::Bearer(t.into()))
        }
        (None, Some(ticket), _) => {
            let who = super::tickets::redeem(&state, &ticket).await?;
            let presented =
                Presented::Ticket { id: who.id.clone(), valid_until: who.valid_until, grants: who.grants.clone() };
            (who, presented)
        }
        _ => {
            return Err(ApiError::Unauthorized(
                "a bearer token, a ticket or the bearer.<token> subprotocol is required".into(),
            ))
        }
    };
    state.limiter.check(&who.id)?;
    let slot = state.hub.connect(&who.id)?;
    let ws = if protocols.iter().any(|p| p == PROTOCOL) { ws.protocols([PROTOCOL]) } else { ws };
    // Small buffers: clients send a few short messages and receive small JSON; per-connection memory
    // is what limits how many subscribers a replica holds.
    let ws = ws
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024);
    Ok(ws.on_upgrade(move |socket| run(socket, state, who, presented, slot)))
}

struct Subscription {
    namespace: String,
    task: Option<String>,
}

/// Where a client is for one Task: last `seq` delivered, and whether `end` was sent.
#[derive(Default)]
struct Cursor {
    since: Option<i64>,
    ended: bool,
}

/// A connection's cursors by namespace, then Task: looked up by borrowed names, so the update
/// path (every subscriber, every change) allocates nothing for a Task it already follows.
#[derive(Default)]
struct Cursors(hashbrown::HashMap<String, hashbrown::HashMap<String, Cursor>>);

impl Cursors {
    fn entry(&mut self, ns: &str, name: &str) -> &mut Cursor {
        self.0.entry_ref(ns).or_default().entry_ref(name).or_default()
    }

    fn remove(&mut self, ns: &str, name: &str) -> Option<Cursor> {
        let tasks = self.0.get_mut(ns)?;
        let c = tasks.remove(name);
        if tasks.is_empty() {
            self.0.remove(ns);
        }
        c
    }

    /// Keeps the cursors of Tasks `subs` still cover.
    fn retain_subscribed(&mut self, subs: &[Subscription]) {
        self.0.retain(|ns, tasks| {
            tasks
                .retain(|name, _| subs.iter().any(|s| s.namespace == *ns && s.task.as_ref().is_none_or(|t| t == name)));
            !tasks.is_empty()
        });
    }
}

async fn run(socket: WebSocket, state: Arc<AppState>, mut who: Identity, presented: Presented, _slot: Slot) {
    let (mut sink, mut source) = socket.split();
    // Subscribed before anything is read from the store, so no change falls between the two.
    let mut rx = state.hub.receiver();
    let mut subs: Vec<Subscription> = Vec::new();
    let mut cursors = Cursors::default();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    // One wait for the whole connection: a fresh one per loop would join (and leave) the shutdown
    // signal's waiter list, which every connection of the replica shares, on every change.
    let stopping = state.stopping.wait();
    tokio::pin!(stopping);
    let span = tracing::info_span!("stream", who = %who.id);
    let _enter = span.enter();
    loop {
        let mut out: Vec<ServerMessage> = Vec::new();
        // Frames rendered once for every subscriber at the same cursor (hub::Changed).
        let mut shared: Vec<Utf8Bytes> = Vec::new();
        // Not biased: a connection that stays a few hundred changes behind must still read its
        // client's messages and run the heartbeat's credential check.
        tokio::select! {
            _ = &mut stopping => {
                let frame = CloseFrame { code: CLOSE_GOING_AWAY, reason: "server shutting down: reconnect and resubscribe with since".into() };
                let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                break;
            }
            update = rx.recv() => match update {
                Ok(Update::Changed(changed)) => {
                    let meta = &changed.task.metadata;
                    let (ns, name) = (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
                    if subs.iter().any(|s| s.namespace == ns && s.task.as_deref().is_none_or(|n| n == name)) {
                        let c = cursors.entry(ns, name);
                        let frames = changed.frames(c.since, c.ended);
                        (c.since, c.ended) = (Some(frames.since), frames.ended);
                        shared.extend(frames.texts.iter().cloned());
                    }
                }
                Ok(Update::Deleted(t)) => {
                    let (ns, name) = (t.metadata.namespace.as_deref().unwrap_or_default(), t.metadata.name.as_deref().unwrap_or_default());
                    if let Some(c) = cursors.remove(ns, name) {
                        if !c.ended {
                            out.push(ServerMessage::End { namespace: ns.into(), task: name.into(), phase: "Deleted".into(), last_seq: c.since.unwrap_or(0) });
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    state.metrics.slow_consumers.inc();
                    let frame = CloseFrame { code: CLOSE_SLOW, reason: "slow consumer: reconnect and resubscribe with since".into() };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                    break;
                }
                Err(RecvError::Closed) => break,
            },
            msg = source.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(m) => handle(&state, &who, m, &mut subs, &mut cursors, &mut out),
                        Err(e) => out.push(error("bad-request", &format!("not a message this server understands: {e}"))),
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => {
                let Some(now) = presented.current(&state).await else {
                    let frame = CloseFrame { code: CLOSE_UNAUTHORIZED, reason: "credentials revoked or expired: reconnect with valid ones".into() };
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                    break;
                };
                // Grants are what they are now: subscriptions no longer allowed end here.
                who = now;
                let (kept, gone): (Vec<_>, Vec<_>) = subs.drain(..).partition(|s| who.allows(&s.namespace, Verb::Read));
                subs = kept;
                for s in gone {
                    out.push(error("forbidden", &format!("{} may no longer read Tasks in namespace {:?}: unsubscribed", who.id, s.namespace)));
                }
                cursors.retain_subscribed(&subs);
                out.push(ServerMessage::Heartbeat { time: jiff::Timestamp::now().to_string() })
            }
        }
        // Only one branch ran: either this connection's own messages or a change's shared frames.
        let texts = out.iter().filter_map(|m| serde_json::to_string(m).ok()).map(Utf8Bytes::from).chain(shared);
        for text in texts {
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                // Not reading: its send buffer stays full. Cut it off (it resumes with `since`).
                Err(_) => {
                    state.metrics.slow_consumers.inc();
                    return;
                }
            }
        }
    }
}

fn error(code: &str, message: &str) -> ServerMessage {
    ServerMessage::Error { code: code.into(), message: message.into() }
}

fn handle(
    state: &AppState,
    who: &Identity,
    m: ClientMessage,
    subs: &mut Vec<Subscription>,
    cursors: &mut Cursors,
    out: &mut Vec<ServerMessage>,
) {
    match m {
        ClientMessage::Subscribe { namespace, task, since } => {
            if !plausible_name(&namespace) || task.as_ref().is_some_and(|t| !plausible_name(t)) {
                return out.push(error("bad-request", "namespace and task must be Kubernetes names"));
            }
            if !who.allows(&namespace, Verb::Read) {
                return out
                    .push(error("forbidden", &format!("{} may not read Tasks in namespace {namespace:?}", who.id)));
            }
            if since.is_some() && task.is_none() {
                return out.push(error("bad-request", "since needs a task"));
            }
            if subs.len() >= state.hub.limits.subscriptions_per_connection {
                return out.push(error("too-many-subscriptions", "this connection has reached its subscription limit"));
            }
            subs.push(Subscription { namespace: namespace.clone(), task: task.clone() });
            out.push(ServerMessage::Subscribed { namespace: namespace.clone(), task: task.clone() });
            let tasks = match &task {
                Some(name) => state.hub.get(&namespace, name).into_iter().collect(),
                None => state.hub.in_namespace(&namespace),
            };
            for t in tasks {
                let c = cursors.entry(&namespace, t.metadata.name.as_deref().unwrap_or_default());
                if c.since.is_none() {
                    c.since = since;
                }
                let (msgs, seq) = catch_up(&t, c.since, &mut c.ended);
                c.since = Some(seq);
                out.extend(msgs);
            }
            if let (Some(name), Some(s)) = (&task, since) {
                cursors.entry(&namespace, name).since.get_or_insert(s);
            }
        }
        ClientMessage::Unsubscribe { namespace, task } => {
            subs.retain(|s| !(s.namespace == namespace && s.task == task));
            cursors.retain_subscribed(subs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(ns: &str, task: Option<&str>) -> Subscription {
        Subscription { namespace: ns.into(), task: task.map(String::from) }
    }

    #[test]
    fn cursors_are_kept_only_for_tasks_a_subscription_still_covers() {
        let mut c = Cursors::default();
        c.entry("a", "t1").since = Some(3);
        c.entry("a", "t2").since = Some(4);
        c.entry("b", "t3").since = Some(5);
        assert_eq!(c.entry("a", "t1").since, Some(3), "the same cursor is found again");
        c.retain_subscribed(&[sub("a", Some("t2")), sub("b", None)]);
        assert_eq!(c.entry("a", "t2").since, Some(4));
        assert_eq!(c.entry("b", "t3").since, Some(5));
        assert_eq!(c.entry("a", "t1").since, None, "t1 was forgotten: a fresh cursor");
        assert_eq!(c.remove("b", "t3").and_then(|c| c.since), Some(5));
        assert!(c.remove("b", "t3").is_none());
        assert!(!c.0.contains_key("b"), "an emptied namespace is dropped");
    }
}
