//! The audit log (`--audit-log PATH`): one `audit.k8s.io/v1` Event per request at level `Metadata`,
//! as kube-apiserver's log backend writes them (JSON lines), with the authorization decision in the
//! annotations. Tests read it to see what each identity asked for and whether it was allowed.

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::meta;
use crate::rbac::{Attributes, Decision};

/// An append-only JSON-lines audit file.
pub struct AuditLog {
    file: Mutex<std::fs::File>,
}

/// What one request did, gathered while it is served.
#[derive(Debug, Default)]
pub struct AuditEntry {
    /// When the request arrived.
    pub received: String,
    /// The authenticated requester.
    pub user: Option<UserInfo>,
    /// Who it acted as, when it impersonated.
    pub impersonated: Option<UserInfo>,
    /// What it asked to do.
    pub attributes: Option<Attributes>,
    /// The API version in the URL of a resource request.
    pub api_version: String,
    /// The authorization decision.
    pub decision: Option<Decision>,
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.username, "groups": u.groups});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    if u.extra.as_object().is_some_and(|m| !m.is_empty()) {
        v["extra"] = u.extra.clone();
    }
    v
}

impl AuditLog {
    /// Opens (appending) or creates the file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file: Mutex::new(file) })
    }

    /// Writes one Event; an unwritable log is reported in the server's own log, not to the client.
    pub fn record(
        &self,
        entry: &AuditEntry,
        request_uri: &str,
        code: u16,
        source: Option<std::net::IpAddr>,
        user_agent: &str,
    ) {
        let Some(user) = &entry.user else { return };
        let attrs = entry.attributes.as_ref();
        let watch = attrs.is_some_and(|a| a.verb == "watch");
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": meta::uid(),
            "stage": if watch { "ResponseStarted" } else { "ResponseComplete" },
            "requestURI": request_uri,
            "verb": attrs.map(|a| a.verb.as_str()).unwrap_or_default(),
            "user": user_json(user),
            "sourceIPs": source.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
            "userAgent": user_agent,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": entry.received,
            "stageTimestamp": meta::now_micro(),
        });
        if let Some(i) = &entry.impersonated {
            event["impersonatedUser"] = user_json(i);
        }
        if let Some(a) = attrs.filter(|a| a.resource_request) {
            let mut object = json!({"resource": a.resource, "apiVersion": entry.api_version});
            for (key, value) in [
                ("namespace", a.namespace()),
                ("name", &a.name),
                ("apiGroup", &a.api_group),
                ("subresource", &a.subresource),
            ] {
                if !value.is_empty() {
                    object[key] = json!(value);
                }
            }
            event["objectRef"] = object;
        }
        if let Some(d) = &entry.decision {
            let mut notes = json!({"authorization.k8s.io/decision": if d.allowed() { "allow" } else { "forbid" }});
            notes["authorization.k8s.io/reason"] = json!(d.reason());
            event["annotations"] = notes;
        }
        let mut line = event.to_string();
        line.push('\n');
        let written = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, "audit log write failed");
        }
    }
}
