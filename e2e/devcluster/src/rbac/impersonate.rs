//! Impersonation (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-*` headers), as kube-apiserver's
//! filter does it: the requester needs the `impersonate` verb on each thing it claims, and the
//! request is then authorized as the impersonated identity. `kubectl --as` relies on it.

use http::{HeaderMap, Method};
use serde_json::{json, Map, Value};

use super::attributes::Attributes;
use super::decide::Decision;
use crate::auth::UserInfo;

/// Why an impersonated request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImpersonationError {
    /// The requester may not impersonate what it asked for (`403`).
    #[error("{0}")]
    Forbidden(String),
    /// The headers do not make an identity (`400`).
    #[error("{0}")]
    Invalid(String),
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// The identity a request impersonates, if it asks to; each claim is checked with `authorize`.
pub fn impersonate(
    requester: &UserInfo,
    headers: &HeaderMap,
    authorize: impl Fn(&Attributes) -> Decision,
) -> Result<Option<UserInfo>, ImpersonationError> {
    // An empty value names nobody (upstream treats it as no impersonation).
    let users: Vec<&str> = values(headers, "impersonate-user").into_iter().filter(|u| !u.is_empty()).collect();
    let groups = values(headers, "impersonate-group");
    let uids = values(headers, "impersonate-uid");
    let extras: Vec<(String, &str)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("impersonate-extra-")?;
            Some((percent_decode(key), v.to_str().ok()?))
        })
        .collect();
    let Some(username) = users.first().copied() else {
        if groups.is_empty() && uids.is_empty() && extras.is_empty() {
            return Ok(None);
        }
        return Err(ImpersonationError::Invalid(
            "requested impersonation of groups, a uid or extra attributes without impersonating a user".into(),
        ));
    };
    let check = |group: &str, resource: &str, sub: Option<&str>, ns: Option<&str>, name: &str| {
        let attrs = Attributes::resource(requester, &Method::POST, false, group, resource, sub, ns, Some(name));
        let attrs = Attributes { verb: "impersonate".into(), ..attrs };
        if authorize(&attrs).allowed() {
            Ok(())
        } else {
            Err(ImpersonationError::Forbidden(attrs.forbidden_message()))
        }
    };
    let service_account = username.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, name)) => check("", "serviceaccounts", None, Some(ns), name)?,
        None => check("", "users", None, None, username)?,
    }
    for g in &groups {
        check("", "groups", None, None, g)?;
    }
    for uid in &uids {
        check("authentication.k8s.io", "uids", None, None, uid)?;
    }
    let mut extra = Map::new();
    for (key, value) in &extras {
        check("authentication.k8s.io", "userextras", Some(key), None, value)?;
        let entry = extra.entry(key.clone()).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!(value));
        }
    }
    let mut all_groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    if let (Some((ns, _)), true) = (service_account, groups.is_empty()) {
        all_groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if username != "system:anonymous" && !all_groups.iter().any(|g| g == "system:authenticated") {
        all_groups.push("system:authenticated".into());
    }
    Ok(Some(UserInfo {
        username: username.to_string(),
        uid: uids.first().map(|u| u.to_string()).unwrap_or_default(),
        groups: all_groups,
        extra: Value::Object(extra),
    }))
}

/// Extra keys are percent-encoded in header names (`Impersonate-Extra-example.com%2fkey`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn user(name: &str) -> UserInfo {
        UserInfo {
            username: name.into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: json!({}),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("")));
        }
        h
    }

    #[test]
    fn impersonating_a_service_account_gives_its_groups_once_allowed() {
        let h = headers(&[("impersonate-user", "system:serviceaccount:ephemera:operator")]);
        let asked = std::cell::RefCell::new(Vec::new());
        let got = impersonate(&user("admin"), &h, |a| {
            asked.borrow_mut().push(format!("{} {} {}/{}", a.verb, a.resource, a.namespace(), a.name));
            Decision::Allow(String::new())
        });
        let got = got.ok().flatten().map(|u| (u.username, u.groups));
        assert_eq!(
            got,
            Some((
                "system:serviceaccount:ephemera:operator".to_string(),
                vec![
                    "system:serviceaccounts".to_string(),
                    "system:serviceaccounts:ephemera".to_string(),
                    "system:authenticated".to_string()
                ]
            ))
        );
        assert_eq!(asked.into_inner(), vec!["impersonate serviceaccounts ephemera/operator"]);
    }

    #[test]
    fn impersonation_without_the_verb_is_forbidden_with_the_upstream_message() {
        let h = headers(&[("impersonate-user", "jane"), ("impersonate-group", "devs")]);
        let err = impersonate(&user("bob"), &h, |_| Decision::Deny(String::new()));
        assert_eq!(
            err,
            Err(ImpersonationError::Forbidden(
                "users \"jane\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope".into()
            ))
        );
    }

    #[test]
    fn groups_without_a_user_are_refused_and_no_headers_mean_no_impersonation() {
        let allow = |_: &Attributes| Decision::Allow(String::new());
        assert!(matches!(
            impersonate(&user("a"), &headers(&[("impersonate-group", "g")]), allow),
            Err(ImpersonationError::Invalid(_))
        ));
        assert_eq!(impersonate(&user("a"), &HeaderMap::new(), allow), Ok(None));
        let h = headers(&[
            ("impersonate-user", "jane"),
            ("impersonate-group", "devs"),
            ("impersonate-extra-example.com%2fteam", "x"),
        ]);
        let u = impersonate(&user("a"), &h, allow).ok().flatten();
        assert_eq!(
            u.as_ref().map(|u| u.groups.clone()),
            Some(vec!["devs".to_string(), "system:authenticated".to_string()])
        );
        assert_eq!(u.map(|u| u.extra), Some(json!({"example.com/team": ["x"]})));
    }
}
