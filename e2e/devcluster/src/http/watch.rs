//! Watch streams: newline-delimited JSON events from a resourceVersion (or from the current state),
//! with selectors, bookmarks, timeouts, and `410 Gone` when the asked version is no longer retained.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{header, HeaderValue};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::store::{Event, EventType};

use super::objects::present;
use super::request::{flag, Query, Target};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table;
use super::App;

/// Events sent before live ones: the current state, or the retained history after a version.
type Initial = Vec<(&'static str, Arc<Value>)>;

const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct Filter {
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
    table: bool,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = match &self.target.namespace {
            Some(ns) => obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns.as_str()),
            None => true,
        };
        ns_ok && self.labels.matches(obj) && self.fields.matches(&super::objects::field_view(&self.target.rt, obj))
    }

    fn encode(&self, kind: &str, obj: &Value, first: &mut bool) -> Bytes {
        let obj = present(&self.target, obj);
        let object = if self.table {
            let with_columns = std::mem::take(first);
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            table::table(&self.target.rt, &self.target.version, &[&obj], json!({"resourceVersion": rv}), with_columns)
        } else {
            obj
        };
        line(&json!({"type": kind, "object": object}))
    }

    /// Translates a store event into what this watch shows (selector entry/exit become ADDED/DELETED).
    fn translate(&self, ev: &Event) -> Option<(&'static str, Arc<Value>)> {
        if ev.key != self.target.rt.key() {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
        match ev.kind {
            EventType::Added if now => Some(("ADDED", ev.object.clone())),
            EventType::Deleted if before || now => Some(("DELETED", ev.object.clone())),
            EventType::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", ev.object.clone())),
                (false, true) => Some(("ADDED", ev.object.clone())),
                (true, false) => Some(("DELETED", ev.object.clone())),
                (false, false) => None,
            },
            _ => None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = if self.table {
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()}, "columnDefinitions": null,
                   "rows": [{"cells": [], "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}}]})
        } else {
            json!({"kind": self.target.rt.kind, "apiVersion": self.target.rt.api_version(&self.target.version), "metadata": meta})
        };
        line(&json!({"type": "BOOKMARK", "object": object}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn gone_event(rv: u64, oldest: u64) -> Bytes {
    let status = ApiError::gone(format!("too old resource version: {rv} ({oldest})")).to_status();
    line(&json!({"type": "ERROR", "object": status}))
}

fn expired_stream(since: u64, oldest: u64) -> Response {
    let body = gone_event(since, oldest);
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Starts a watch. Errors that can be known up front (bad selector, expired version) are returned as a
/// plain error response; later expiry arrives as an `ERROR` event, as from a real server.
pub fn serve(app: &Arc<App>, target: Target, q: &Query, table: bool) -> Result<Response, ApiError> {
    let labels =
        LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
    let mut fields =
        FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str), &target.rt.field_selectors)
            .map_err(ApiError::bad_request)?;
    if let Some(name) = &target.name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"), &[]).map_err(ApiError::bad_request)?;
    }
    let filter = Filter { target, labels, fields, table };
    let bookmarks = flag(q, "allowWatchBookmarks");
    let timeout = match q.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => 1800,
        Some(t) => {
            t.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid value for timeoutSeconds: {t:?}")))?
        }
    };
    let key = filter.target.rt.key();
    let from = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let mut compactions = app.store.compactions();
    compactions.mark_unchanged();

    let (initial, start_rv, rx, initial_end): (Initial, u64, broadcast::Receiver<Event>, bool) =
        if from.is_empty() || from == "0" {
            let (items, rv, rx) = app.store.list_and_subscribe(&key, filter.target.namespace.as_deref());
            let items = items.into_iter().filter(|o| filter.matches(o)).map(|o| ("ADDED", o)).collect();
            (items, rv, rx, true)
        } else {
            let since: u64 =
                from.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {from:?}")))?;
            match app.store.watch_from(since) {
                Ok((past, rx)) => {
                    let items = past.iter().filter_map(|e| filter.translate(e)).collect();
                    (items, since, rx, false)
                }
                // As from a real server's watch cache: the watch opens, then ends with a 410 ERROR.
                Err(oldest) => return Ok(expired_stream(since, oldest)),
            }
        };
    let send_initial_end = initial_end && bookmarks;

    let (tx, out) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let mut rx = rx;
        let mut last_rv = start_rv;
        let mut first = true;
        for (kind, obj) in initial {
            last_rv = last_rv.max(crate::meta::rv_of(&obj).unwrap_or(0));
            if tx.send(filter.encode(kind, &obj, &mut first)).await.is_err() {
                return;
            }
        }
        if send_initial_end && tx.send(filter.bookmark(last_rv, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            let msg = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = compactions.changed() => Some(gone_event(last_rv, last_rv + 1)),
                _ = tick.tick() => bookmarks.then(|| filter.bookmark(last_rv, false)),
                ev = rx.recv() => match ev {
                    Ok(ev) if ev.rv <= last_rv => None,
                    Ok(ev) => {
                        last_rv = ev.rv;
                        filter.translate(&ev).map(|(kind, obj)| filter.encode(kind, &obj, &mut first))
                    }
                    // This watcher fell behind the broadcast buffer: it can no longer be exact.
                    Err(broadcast::error::RecvError::Lagged(_)) => Some(gone_event(last_rv, last_rv + 1)),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if let Some(bytes) = msg {
                let end = bytes.starts_with(br#"{"type":"ERROR""#);
                if tx.send(bytes).await.is_err() || end {
                    return;
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(out, |mut out| async move { out.recv().await.map(|b| (Ok::<_, Infallible>(b), out)) });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}
