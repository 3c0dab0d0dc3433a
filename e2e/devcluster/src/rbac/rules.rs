//! Whether one RBAC rule covers a request, and whether one binding subject names the requester:
//! the matching kube-apiserver's `rbac/v1` helpers do.

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use super::attributes::Attributes;
use crate::auth::UserInfo;

const ALL: &str = "*";

/// The rule allows the request.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if !verb_matches(rule, &attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return rule.non_resource_urls.as_deref().unwrap_or_default().iter().any(|u| url_matches(u, &attrs.path));
    }
    group_matches(rule, &attrs.api_group)
        && resource_matches(rule, &attrs.combined_resource(), &attrs.subresource)
        && name_matches(rule, &attrs.name)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.as_deref().unwrap_or_default().iter().any(|g| g == ALL || g == group)
}

fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.as_deref().unwrap_or_default().iter().any(|r| {
        r == ALL
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
    })
}

fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => !name.is_empty() && names.iter().any(|n| n == name),
    }
}

fn url_matches(rule_url: &str, path: &str) -> bool {
    rule_url == ALL || rule_url == path || rule_url.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

/// The binding subject names this user; `binding_namespace` is where a RoleBinding lives (a
/// ServiceAccount subject without a namespace means that one).
pub fn subject_matches(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.username,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

/// How an allow reason names a subject (`User "x"`, `ServiceAccount "name/ns"`).
pub fn describe_subject(subject: &Subject, binding_namespace: &str) -> String {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            format!("ServiceAccount \"{}/{ns}\"", subject.name)
        }
        kind => format!("{kind} {:?}", subject.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: serde_json::json!({}),
        }
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        PolicyRule {
            api_groups: v(groups),
            resources: v(resources),
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            resource_names: if names.is_empty() { None } else { v(names) },
            non_resource_urls: None,
        }
    }

    fn request(
        method: Method,
        group: &str,
        res: &str,
        sub: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Attributes {
        Attributes::resource(&user("u", &[]), &method, false, group, res, sub, ns, name)
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names_as_kubernetes_does() {
        let get_pods = request(Method::GET, "", "pods", None, Some("a"), Some("p"));
        let list_pods = request(Method::GET, "", "pods", None, Some("a"), None);
        let logs = request(Method::GET, "", "pods", Some("log"), Some("a"), Some("p"));
        let status = request(Method::PUT, "ephemera.dev", "tasks", Some("status"), Some("a"), Some("t"));
        let cases = [
            (rule(&[""], &["pods"], &["get"], &[]), &get_pods, true),
            (rule(&[""], &["pods"], &["get"], &[]), &list_pods, false),
            (rule(&["apps"], &["pods"], &["get"], &[]), &get_pods, false),
            (rule(&["*"], &["*"], &["*"], &[]), &logs, true),
            (rule(&[""], &["pods"], &["get"], &[]), &logs, false),
            (rule(&[""], &["pods/log"], &["get"], &[]), &logs, true),
            (rule(&[""], &["*/log"], &["get"], &[]), &logs, true),
            (rule(&["ephemera.dev"], &["tasks"], &["update"], &[]), &status, false),
            (rule(&["ephemera.dev"], &["tasks/status"], &["update"], &[]), &status, true),
            (rule(&[""], &["pods"], &["get"], &["p"]), &get_pods, true),
            (rule(&[""], &["pods"], &["get"], &["q"]), &get_pods, false),
            // resourceNames never match a request without a name (list, create).
            (rule(&[""], &["pods"], &["list"], &["p"]), &list_pods, false),
        ];
        for (i, (r, a, want)) in cases.iter().enumerate() {
            assert_eq!(rule_allows(a, r), *want, "case {i}: {r:?} vs {} {}", a.verb, a.combined_resource());
        }
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_a_trailing_star() {
        let mut r = rule(&[], &[], &["get"], &[]);
        r.non_resource_urls = Some(vec!["/apis/*".into(), "/version".into()]);
        let path = |p: &str| Attributes::non_resource(&user("u", &[]), &Method::GET, p);
        assert!(rule_allows(&path("/apis/apps/v1"), &r));
        assert!(rule_allows(&path("/version"), &r));
        assert!(!rule_allows(&path("/version/x"), &r));
        assert!(!rule_allows(&path("/api"), &r));
        assert!(!rule_allows(&Attributes::non_resource(&user("u", &[]), &Method::POST, "/version"), &r));
    }

    #[test]
    fn service_account_subjects_default_to_the_bindings_namespace() {
        let sa = user("system:serviceaccount:team:bot", &["system:serviceaccounts"]);
        let subject = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(String::from),
            api_group: None,
        };
        assert!(subject_matches(&subject("ServiceAccount", "bot", None), &sa, "team"));
        assert!(!subject_matches(&subject("ServiceAccount", "bot", None), &sa, "other"));
        assert!(!subject_matches(&subject("ServiceAccount", "bot", None), &sa, ""));
        assert!(subject_matches(&subject("ServiceAccount", "bot", Some("team")), &sa, ""));
        assert!(subject_matches(&subject("Group", "system:serviceaccounts", None), &sa, ""));
        assert!(!subject_matches(&subject("User", "bot", None), &sa, ""));
        assert_eq!(describe_subject(&subject("ServiceAccount", "bot", None), "team"), "ServiceAccount \"bot/team\"");
    }

    #[test]
    fn the_namespace_object_is_in_its_own_namespace_and_messages_read_as_upstream() {
        let a = request(Method::GET, "", "namespaces", None, None, Some("team"));
        assert_eq!(a.namespace(), "team");
        let list = Attributes::resource(
            &user("system:serviceaccount:a:b", &[]),
            &Method::GET,
            false,
            "",
            "pods",
            None,
            Some("a"),
            None,
        );
        assert_eq!(
            list.forbidden_message(),
            "pods is forbidden: User \"system:serviceaccount:a:b\" cannot list resource \"pods\" in API group \"\" in the namespace \"a\""
        );
        let get = Attributes::resource(
            &user("u", &[]),
            &Method::GET,
            false,
            "ephemera.dev",
            "tasks",
            Some("status"),
            None,
            Some("t"),
        );
        assert_eq!(
            get.forbidden_message(),
            "tasks.ephemera.dev \"t\" is forbidden: User \"u\" cannot get resource \"tasks/status\" in API group \"ephemera.dev\" at the cluster scope"
        );
        let watch = Attributes::resource(&user("u", &[]), &Method::GET, true, "", "pods", None, None, None);
        assert_eq!(watch.verb, "watch");
    }
}
