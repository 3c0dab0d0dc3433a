//! TokenReview and TokenRequest (the authentication API that workloads and controllers use) and the
//! access reviews (`kubectl auth can-i`).

use axum::response::Response;
use serde_json::{json, Value};

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::auth::{Identity, SaClaims, UserInfo};
use crate::meta;
use crate::rbac::{self, Attributes, Policy, Scope};
use crate::store::ResKey;

use super::respond;
use super::status::{ApiError, Subject};
use super::App;

/// Checks a bearer token and, for ServiceAccount tokens, that the account (and bound pod) still exist.
pub fn authenticate_token(app: &App, token: &str, audiences: Option<&[String]>) -> Result<UserInfo, String> {
    match app.auth.verify(token, audiences, meta::unix_now()).map_err(|e| e.to_string())? {
        Identity::Admin => Ok(UserInfo {
            username: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            extra: json!({}),
        }),
        Identity::ServiceAccount(c) => {
            let sa = app
                .store
                .get(&ResKey::new("", "serviceaccounts"), &c.namespace, &c.name)
                .ok_or_else(|| format!("serviceaccounts \"{}\" not found", c.name))?;
            if !c.uid.is_empty() && meta::meta_str(&sa, "uid") != Some(c.uid.as_str()) {
                return Err(format!("service account UID ({}) does not match claim", c.uid));
            }
            let mut extra = json!({});
            if let Some((pod, pod_uid)) = &c.pod {
                let live = app.store.get(&ResKey::new("", "pods"), &c.namespace, pod);
                match live {
                    Some(p) if meta::meta_str(&p, "uid") == Some(pod_uid.as_str()) => {}
                    _ => return Err(format!("pods \"{pod}\" not found")),
                }
                extra = json!({
                    "authentication.kubernetes.io/pod-name": [pod],
                    "authentication.kubernetes.io/pod-uid": [pod_uid],
                });
            }
            Ok(UserInfo {
                username: format!("system:serviceaccount:{}:{}", c.namespace, c.name),
                uid: c.uid,
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", c.namespace),
                    "system:authenticated".into(),
                ],
                extra,
            })
        }
    }
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`.
pub fn token_review(app: &App, body: &Value) -> Result<Response, ApiError> {
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    // Without audiences, a review checks for the API server's own audience.
    let audiences: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect::<Vec<_>>())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec![crate::auth::ISSUER.to_string()]);
    let mut out = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": body["spec"],
    });
    out["status"] = match authenticate_token(app, token, Some(&audiences)) {
        Ok(u) => {
            let mut user = json!({"username": u.username, "uid": u.uid, "groups": u.groups});
            if u.extra.as_object().is_some_and(|m| !m.is_empty()) {
                user["extra"] = u.extra;
            }
            json!({"authenticated": true, "user": user, "audiences": audiences})
        }
        Err(e) => json!({"user": {}, "error": format!("[invalid bearer token, {e}]")}),
    };
    Ok(respond::created(&out))
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (TokenRequest).
pub fn token_request(app: &App, ns: &str, name: &str, body: &Value) -> Result<Response, ApiError> {
    let sa = app
        .store
        .get(&ResKey::new("", "serviceaccounts"), ns, name)
        .ok_or_else(|| ApiError::not_found(Subject { group: "", resource: "serviceaccounts", name }))?;
    let spec = &body["spec"];
    let expiration = spec["expirationSeconds"].as_i64().unwrap_or(3600);
    if expiration < 600 {
        let msg = "may not specify a duration less than 10 minutes";
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {expiration}: {msg}"),
            json!([{"reason": "FieldValueInvalid", "message": format!("Invalid value: {expiration}: {msg}"), "field": "spec.expirationSeconds"}]),
        ));
    }
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![crate::auth::ISSUER.to_string()]);
    let pod = match spec["boundObjectRef"]["kind"].as_str() {
        Some("Pod") => {
            let pod_name = spec["boundObjectRef"]["name"].as_str().unwrap_or_default();
            let p = app
                .store
                .get(&ResKey::new("", "pods"), ns, pod_name)
                .ok_or_else(|| ApiError::not_found(Subject { group: "", resource: "pods", name: pod_name }))?;
            let pod_uid = meta::meta_str(&p, "uid").unwrap_or_default().to_string();
            // As upstream: a token is bound only to a Pod that runs as this account, and to the
            // Pod the caller means (not one recreated under the same name).
            if p["spec"]["serviceAccountName"].as_str() != Some(name) {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount \"{name}\" to pod running with different serviceaccount name."
                )));
            }
            let want_uid = spec["boundObjectRef"]["uid"].as_str().unwrap_or_default();
            if !want_uid.is_empty() && want_uid != pod_uid {
                return Err(ApiError::conflict(
                    Subject { group: "", resource: "pods", name: pod_name },
                    &format!("the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
            Some((pod_name.to_string(), pod_uid))
        }
        _ => None,
    };
    let claims = SaClaims {
        namespace: ns.into(),
        name: name.into(),
        uid: meta::meta_str(&sa, "uid").unwrap_or_default().into(),
        pod,
        audiences: audiences.clone(),
    };
    let (token, exp) = app.auth.issue(&claims, expiration, meta::unix_now());
    let exp_ts =
        jiff::Timestamp::from_second(exp).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default();
    let mut spec_out = spec.clone();
    spec_out["audiences"] = json!(audiences);
    spec_out["expirationSeconds"] = json!(expiration);
    Ok(respond::created(&json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": meta::now()},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": exp_ts},
    })))
}

/// The attributes an access review's spec asks about, for `user`.
fn review_attributes(spec: &Value, user: &UserInfo) -> Attributes {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let namespace = text(&r["namespace"]);
        return Attributes {
            user: user.clone(),
            verb: text(&r["verb"]),
            resource_request: true,
            api_group: text(&r["group"]),
            resource: text(&r["resource"]),
            subresource: text(&r["subresource"]),
            scope: if namespace.is_empty() { Scope::Cluster } else { Scope::Namespace(namespace) },
            name: text(&r["name"]),
            path: String::new(),
        };
    }
    let n = &spec["nonResourceAttributes"];
    Attributes {
        verb: text(&n["verb"]),
        path: text(&n["path"]),
        ..Attributes::non_resource(user, &http::Method::GET, "")
    }
}

/// The user a SubjectAccessReview names in its spec.
fn review_subject(spec: &Value) -> UserInfo {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    UserInfo {
        username: spec["user"].as_str().unwrap_or_default().to_string(),
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups: strings(&spec["groups"]),
        extra: spec.get("extra").cloned().unwrap_or_else(|| json!({})),
    }
}

fn rules_json(rules: &[PolicyRule]) -> Value {
    serde_json::to_value(rules).unwrap_or_else(|_| json!([]))
}

/// The authorization reviews, answered by the same RBAC evaluation that guards every request.
pub fn authorization_review(app: &App, kind: &str, body: &Value, user: &UserInfo) -> Result<Response, ApiError> {
    let spec = &body["spec"];
    let (group, status) = match kind {
        "SelfSubjectReview" => (
            "authentication.k8s.io",
            json!({"userInfo": {"username": user.username, "uid": user.uid, "groups": user.groups, "extra": user.extra}}),
        ),
        "SelfSubjectRulesReview" => {
            let namespace = spec["namespace"].as_str().unwrap_or_default();
            let (resource, non_resource, errors) = rbac::rules_for(user, &Policy::load(&app.store, namespace));
            let mut status = json!({
                "resourceRules": rules_json(&resource),
                "nonResourceRules": rules_json(&non_resource),
                "incomplete": !errors.is_empty(),
            });
            if !errors.is_empty() {
                status["evaluationError"] = json!(errors.join(", "));
            }
            ("authorization.k8s.io", status)
        }
        _ => {
            let subject = if kind == "SubjectAccessReview" { review_subject(spec) } else { user.clone() };
            let attrs = review_attributes(spec, &subject);
            let decision = rbac::authorize(&attrs, &Policy::for_request(&app.store, &attrs));
            let mut status = json!({"allowed": decision.allowed()});
            if !decision.reason().is_empty() {
                status["reason"] = json!(decision.reason());
            }
            ("authorization.k8s.io", status)
        }
    };
    let mut out = json!({
        "kind": kind,
        "apiVersion": format!("{group}/v1"),
        "metadata": {"creationTimestamp": null},
        "status": status,
    });
    if let Some(spec) = body.get("spec") {
        out["spec"] = spec.clone();
    }
    Ok(respond::created(&out))
}
