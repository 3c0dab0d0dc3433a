//! Salesforce Outbound Messaging: a SOAP `notifications` message with the sending org's
//! `OrganizationId` and one or more `Notification`s (each an `Id` and the `sObject`'s fields).
//! Salesforce signs nothing: the endpoint URL carries the trigger's secret (`?token=`, checked by the
//! API server before this parser runs), a message is accepted only from the trigger's `allowedOrgIds`
//! (org ids are not secret; the edge should also require Salesforce's client certificate), and each notification `Id` is its own
//! delivery (Salesforce redelivers for 24 hours, out of order, until it gets the `Ack`). The message's
//! `SessionId` (a live Salesforce session when the admin enabled it) is never kept.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Refusal;

/// The Outbound Messaging namespace.
const OUTBOUND: &str = "http://soap.sforce.com/2005/09/outbound";
/// Most notifications one message may carry (Salesforce sends at most 100).
const MAX_NOTIFICATIONS: usize = 100;
/// Most XML nodes a message may have.
const MAX_NODES: u32 = 50_000;
/// Most `xmlns` declarations a message may have (each sObject declares one).
const MAX_NAMESPACE_DECLARATIONS: usize = 2 * MAX_NOTIFICATIONS + 16;

/// One notification of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Its id (the dedupe key).
    pub id: String,
    /// The sObject type (`Opportunity`), the event name rules match.
    pub object_type: String,
    /// What rules see as `body`: the org, the action and the sObject's fields.
    pub body: Value,
}

/// A message from an allowed org.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The sending org (as sent).
    pub organization_id: String,
    /// Its notifications.
    pub notifications: Vec<Notification>,
}

/// The answer Salesforce requires: without `Ack` true it redelivers.
pub const ACK: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>"#,
    r#"<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>"#,
    r#"</soapenv:Body></soapenv:Envelope>"#
);

/// Whether `id` is one of `allowed` (15- and 18-character ids compare on their first 15 characters,
/// which are case-sensitive).
pub fn org_allowed(id: &str, allowed: &[String]) -> bool {
    let short = |s: &str| s.get(..15).map(str::to_string);
    let Some(id) = short(id) else { return false };
    allowed.iter().any(|a| short(a).as_deref() == Some(id.as_str()))
}

/// Parses a message and checks its org.
pub fn parse(body: &[u8], allowed_orgs: &[String]) -> Result<Message, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| Refusal::Malformed("the message is not UTF-8"))?;
    // SOAP has no DTDs; refusing them rules out entity expansion before the parser sees one.
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(Refusal::Malformed("the message has a DTD"));
    }
    // Bounded before parsing: a message of 100 notifications has a few thousand nodes and a handful
    // of namespace declarations; anything far beyond is an attack on the parser's memory.
    if text.matches("xmlns").count() > MAX_NAMESPACE_DECLARATIONS {
        return Err(Refusal::Malformed("too many namespace declarations"));
    }
    let options = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|_| Refusal::Malformed("the message is not XML or too large"))?;
    let notifications = doc
        .descendants()
        .find(|n| n.has_tag_name((OUTBOUND, "notifications")))
        .ok_or(Refusal::Malformed("the message has no notifications element"))?;
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.has_tag_name((OUTBOUND, name)))
            .and_then(|c| c.text())
            .map(str::trim)
            .map(str::to_string)
    };
    let org = child_text(notifications, "OrganizationId").ok_or(Refusal::MissingHeader("OrganizationId"))?;
    if !org_allowed(&org, allowed_orgs) {
        return Err(Refusal::BadSignature);
    }
    let action = child_text(notifications, "ActionId").unwrap_or_default();
    let mut out = Vec::new();
    for n in notifications.children().filter(|c| c.has_tag_name((OUTBOUND, "Notification"))) {
        if out.len() == MAX_NOTIFICATIONS {
            return Err(Refusal::Malformed("more than 100 notifications"));
        }
        let id = child_text(n, "Id")
            .filter(|i| (15..=18).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or(Refusal::Malformed("a notification has no Salesforce Id"))?;
        let object = n.children().find(|c| c.has_tag_name((OUTBOUND, "sObject")));
        let object_type = object
            .and_then(|o| o.attributes().find(|a| a.name() == "type").map(|a| a.value().to_string()))
            .map(|t| t.rsplit(':').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let fields: BTreeMap<String, Value> = object
            .into_iter()
            .flat_map(|o| o.children().filter(|c| c.is_element()))
            .map(|f| {
                let nil = f.attributes().any(|a| a.name() == "nil" && a.value() == "true");
                let value = if nil { Value::Null } else { Value::from(f.text().unwrap_or_default()) };
                (f.tag_name().name().to_string(), value)
            })
            .collect();
        let body = json!({
            "organizationId": org, "actionId": action,
            "notification": {"id": id, "sObject": {"type": object_type, "fields": fields}},
        });
        out.push(Notification { id, object_type, body });
    }
    if out.is_empty() {
        return Err(Refusal::Malformed("the message has no Notification"));
    }
    Ok(Message { organization_id: org, notifications: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message shaped as Salesforce's Outbound Messaging WSDL defines it (two notifications, a
    /// session id the admin chose to send, a nil field); also what dev.sh and the e2e tests send.
    const MESSAGE: &str = include_str!("../../../e2e/examples/salesforce-outbound-message.xml");

    fn allowed() -> Vec<String> {
        vec!["00D5e000000K1uK".into()]
    }

    #[test]
    fn each_notification_of_an_allowed_org_is_a_delivery_and_the_session_is_dropped() {
        let m = parse(MESSAGE.as_bytes(), &allowed()).unwrap();
        assert_eq!(m.notifications.len(), 2);
        let n = &m.notifications[0];
        assert_eq!((n.id.as_str(), n.object_type.as_str()), ("04l5e00000Aq2xKAAR", "Opportunity"));
        assert_eq!(n.body["notification"]["sObject"]["fields"]["StageName"], "Closed Won");
        assert_eq!(n.body["notification"]["sObject"]["fields"]["Description"], Value::Null);
        assert_eq!(n.body["organizationId"], "00D5e000000K1uKEAS");
        assert!(!format!("{m:?}").contains("live_session"), "the session id is never kept");
    }

    #[test]
    fn other_orgs_dtds_and_malformed_messages_are_refused() {
        assert_eq!(parse(MESSAGE.as_bytes(), &["00D000000000001".into()]), Err(Refusal::BadSignature));
        assert_eq!(parse(MESSAGE.as_bytes(), &[]), Err(Refusal::BadSignature), "no allowed org: nothing is accepted");
        let bomb = format!(
            "<!DOCTYPE x [<!ENTITY a \"aaaa\">]>{}",
            MESSAGE.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        );
        assert!(matches!(parse(bomb.as_bytes(), &allowed()), Err(Refusal::Malformed(_))));
        assert!(matches!(parse(b"<notifications", &allowed()), Err(Refusal::Malformed(_))));
        let many = format!("<r {}/>", (0..500).map(|i| format!("xmlns:p{i}='u{i}'")).collect::<Vec<_>>().join(" "));
        assert!(matches!(parse(many.as_bytes(), &allowed()), Err(Refusal::Malformed(_))), "namespace amplification");
        let wide = format!("<r>{}</r>", "<a/>".repeat(60_000));
        assert!(matches!(parse(wide.as_bytes(), &allowed()), Err(Refusal::Malformed(_))), "too many nodes");
        let empty = MESSAGE.split("<Notification>").next().unwrap().to_string()
            + "</notifications></soapenv:Body></soapenv:Envelope>";
        assert!(matches!(parse(empty.as_bytes(), &allowed()), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn org_ids_compare_on_their_case_sensitive_first_15_characters() {
        assert!(org_allowed("00D5e000000K1uKEAS", &["00D5e000000K1uK".into()]));
        assert!(org_allowed("00D5e000000K1uK", &["00D5e000000K1uKEAS".into()]));
        assert!(!org_allowed("00D5e000000k1uKEAS", &["00D5e000000K1uK".into()]), "case matters in 15-character ids");
        assert!(!org_allowed("00D5e", &["00D5e000000K1uK".into()]));
    }
}
