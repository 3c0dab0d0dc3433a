//! The RBAC decision: a request is allowed when some binding that names the requester grants a
//! role with a rule covering it. ClusterRoleBindings apply everywhere, RoleBindings in their own
//! namespace only. `system:masters` is allowed everything before RBAC is asked, as upstream.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use serde_json::Value;

use super::attributes::{Attributes, Scope};
use super::rules::{describe_subject, rule_allows, subject_matches};
use crate::auth::UserInfo;
use crate::store::{ResKey, Store};

/// The group whose members bypass authorization (the admin token is in it).
pub const MASTERS: &str = "system:masters";
const GROUP: &str = "rbac.authorization.k8s.io";

/// An authorization decision, with the reason an access review reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and by what.
    Allow(String),
    /// Not allowed; the reason says what could not be evaluated, if anything.
    Deny(String),
}

impl Decision {
    /// The request may proceed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The reason text ("" when there is nothing to say).
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) => r,
        }
    }
}

/// The RBAC objects one decision needs: every ClusterRole and ClusterRoleBinding, and the Roles and
/// RoleBindings of the request's namespace.
#[derive(Debug, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<String, Vec<PolicyRule>>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    bindings: Vec<RoleBinding>,
    namespace: String,
}

fn typed<T: serde::de::DeserializeOwned>(objects: Vec<Arc<Value>>) -> Vec<T> {
    // Stored objects are free-form JSON; one a client wrote malformed grants nothing.
    objects.into_iter().filter_map(|o| serde_json::from_value(Value::clone(&o)).ok()).collect()
}

impl Policy {
    /// Reads the policy that applies in `namespace` ("" for cluster scope) from the store.
    pub fn load(store: &Store, namespace: &str) -> Self {
        let list = |plural: &str, ns: Option<&str>| store.list(&ResKey::new(GROUP, plural), ns).0;
        let cluster_roles = typed::<ClusterRole>(list("clusterroles", None))
            .into_iter()
            .map(|r| (r.metadata.name.unwrap_or_default(), r.rules.unwrap_or_default()))
            .collect();
        let (roles, bindings) = if namespace.is_empty() {
            (HashMap::new(), Vec::new())
        } else {
            let roles = typed::<Role>(list("roles", Some(namespace)))
                .into_iter()
                .map(|r| (r.metadata.name.unwrap_or_default(), r.rules.unwrap_or_default()))
                .collect();
            (roles, typed(list("rolebindings", Some(namespace))))
        };
        Self {
            cluster_roles,
            roles,
            cluster_bindings: typed(list("clusterrolebindings", None)),
            bindings,
            namespace: namespace.to_string(),
        }
    }

    /// The policy that applies to one request: RoleBindings count only inside their namespace.
    pub fn for_request(store: &Store, attrs: &Attributes) -> Self {
        match &attrs.scope {
            Scope::Cluster => Self::load(store, ""),
            Scope::Namespace(n) => Self::load(store, n),
        }
    }

    fn role_rules(&self, role_ref: &RoleRef) -> Result<&[PolicyRule], String> {
        let found = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" => self.roles.get(&role_ref.name),
            _ => None,
        };
        match found {
            Some(rules) => Ok(rules),
            None if role_ref.kind == "Role" => {
                Err(format!("role.rbac.authorization.k8s.io {:?} not found", role_ref.name))
            }
            None => Err(format!("clusterrole.rbac.authorization.k8s.io {:?} not found", role_ref.name)),
        }
    }

    /// Every (binding description, subject, rules) that applies to `user` here.
    fn grants<'a>(
        &'a self,
        user: &'a UserInfo,
    ) -> impl Iterator<Item = (String, Result<&'a [PolicyRule], String>)> + 'a {
        let cluster = self.cluster_bindings.iter().filter_map(move |b| {
            let subject = matching(b.subjects.as_deref(), user, "")?;
            let name = b.metadata.name.clone().unwrap_or_default();
            let what = format!(
                "ClusterRoleBinding {name:?} of {} {:?} to {}",
                b.role_ref.kind,
                b.role_ref.name,
                describe_subject(subject, "")
            );
            Some((what, self.role_rules(&b.role_ref)))
        });
        let ns = self.namespace.as_str();
        let local = self.bindings.iter().filter_map(move |b| {
            let subject = matching(b.subjects.as_deref(), user, ns)?;
            let name = b.metadata.name.clone().unwrap_or_default();
            let what = format!(
                "RoleBinding \"{name}/{ns}\" of {} {:?} to {}",
                b.role_ref.kind,
                b.role_ref.name,
                describe_subject(subject, ns)
            );
            Some((what, self.role_rules(&b.role_ref)))
        });
        cluster.chain(local)
    }
}

fn matching<'a>(subjects: Option<&'a [Subject]>, user: &UserInfo, ns: &str) -> Option<&'a Subject> {
    subjects.unwrap_or_default().iter().find(|s| subject_matches(s, user, ns))
}

/// Decides one request against the policy of its namespace (`Policy::for_request`).
pub fn authorize(attrs: &Attributes, policy: &Policy) -> Decision {
    if attrs.user.groups.iter().any(|g| g == MASTERS) {
        return Decision::Allow(String::new());
    }
    let mut errors = Vec::new();
    for (what, rules) in policy.grants(&attrs.user) {
        match rules {
            Ok(rules) if rules.iter().any(|r| rule_allows(attrs, r)) => {
                return Decision::Allow(format!("RBAC: allowed by {what}"));
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    errors.sort();
    errors.dedup();
    Decision::Deny(if errors.is_empty() { String::new() } else { format!("RBAC: {}", errors.join(", ")) })
}

/// The rules `user` holds in the policy's namespace (cluster-wide ones included), for
/// SelfSubjectRulesReview: (resource rules, non-resource rules, evaluation errors).
pub fn rules_for(user: &UserInfo, policy: &Policy) -> (Vec<PolicyRule>, Vec<PolicyRule>, Vec<String>) {
    if user.groups.iter().any(|g| g == MASTERS) {
        let all = |v: &str| Some(vec![v.to_string()]);
        let resources = PolicyRule {
            api_groups: all("*"),
            resources: all("*"),
            verbs: vec!["*".into()],
            resource_names: None,
            non_resource_urls: None,
        };
        let urls = PolicyRule { non_resource_urls: all("*"), verbs: vec!["*".into()], ..PolicyRule::default() };
        return (vec![resources], vec![urls], Vec::new());
    }
    let (mut resource, mut non_resource, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (_, rules) in policy.grants(user) {
        match rules {
            Ok(rules) => {
                for r in rules {
                    if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
                        non_resource.push(r.clone());
                    } else {
                        resource.push(r.clone());
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (resource, non_resource, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use serde_json::json;

    fn sa(ns: &str, name: &str) -> UserInfo {
        UserInfo {
            username: format!("system:serviceaccount:{ns}:{name}"),
            uid: String::new(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra: json!({}),
        }
    }

    fn policy(namespace: &str, objects: Value) -> Policy {
        let store = Store::new(100);
        for o in objects.as_array().cloned().unwrap_or_default() {
            let plural = match o["kind"].as_str().unwrap_or_default() {
                "ClusterRole" => "clusterroles",
                "ClusterRoleBinding" => "clusterrolebindings",
                "Role" => "roles",
                _ => "rolebindings",
            };
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
            let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
            store
                .write::<()>(&ResKey::new(GROUP, plural), &ns, &name, |_| Ok(crate::store::Write::Put(o.clone())))
                .ok();
        }
        Policy::load(&store, namespace)
    }

    fn pods_reader() -> Value {
        json!([
            {"kind": "ClusterRole", "metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
            {"kind": "Role", "metadata": {"name": "secrets", "namespace": "team"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
            {"kind": "RoleBinding", "metadata": {"name": "bot-pods", "namespace": "team"}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "pods"},
             "subjects": [{"kind": "ServiceAccount", "name": "bot"}]},
            {"kind": "RoleBinding", "metadata": {"name": "bot-secrets", "namespace": "team"}, "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "secrets"},
             "subjects": [{"kind": "ServiceAccount", "name": "bot"}]},
            {"kind": "ClusterRoleBinding", "metadata": {"name": "all-list"}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "pods"},
             "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": "ops"}]},
        ])
    }

    fn ask(user: &UserInfo, verb: Method, res: &str, ns: Option<&str>, name: Option<&str>, p: &Policy) -> Decision {
        authorize(&Attributes::resource(user, &verb, false, "", res, None, ns, name), p)
    }

    #[test]
    fn role_bindings_grant_only_inside_their_namespace() {
        let team = policy("team", pods_reader());
        let bot = sa("team", "bot");
        assert_eq!(
            ask(&bot, Method::GET, "pods", Some("team"), Some("p"), &team),
            Decision::Allow(
                "RBAC: allowed by RoleBinding \"bot-pods/team\" of ClusterRole \"pods\" to ServiceAccount \"bot/team\""
                    .into()
            )
        );
        assert!(ask(&bot, Method::GET, "secrets", Some("team"), Some("s"), &team).allowed());
        assert!(!ask(&bot, Method::DELETE, "pods", Some("team"), Some("p"), &team).allowed());
        let other = policy("other", pods_reader());
        assert!(!ask(&bot, Method::GET, "pods", Some("other"), Some("p"), &other).allowed());
        let cluster = policy("", pods_reader());
        assert!(
            !ask(&bot, Method::GET, "pods", None, None, &cluster).allowed(),
            "all-namespaces list needs a cluster grant"
        );
    }

    #[test]
    fn cluster_role_bindings_grant_everywhere_and_masters_bypass_rbac() {
        let lister = sa("ops", "lister");
        assert!(ask(&lister, Method::GET, "pods", None, None, &policy("", pods_reader())).allowed());
        assert!(ask(&lister, Method::GET, "pods", Some("team"), None, &policy("team", pods_reader())).allowed());
        assert!(
            !ask(&lister, Method::GET, "secrets", Some("team"), Some("s"), &policy("team", pods_reader())).allowed()
        );
        let admin =
            UserInfo { username: "admin".into(), uid: String::new(), groups: vec![MASTERS.into()], extra: json!({}) };
        assert_eq!(
            ask(&admin, Method::DELETE, "nodes", None, Some("n"), &Policy::default()),
            Decision::Allow(String::new())
        );
    }

    #[test]
    fn a_binding_to_a_missing_role_denies_and_says_why() {
        let p = policy(
            "team",
            json!([{"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "team"}, "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "gone"},
                    "subjects": [{"kind": "ServiceAccount", "name": "bot"}]}]),
        );
        assert_eq!(
            ask(&sa("team", "bot"), Method::GET, "pods", Some("team"), None, &p),
            Decision::Deny("RBAC: role.rbac.authorization.k8s.io \"gone\" not found".into())
        );
    }

    #[test]
    fn rules_reviews_list_what_applies_in_the_namespace() {
        let (res, urls, errs) = rules_for(&sa("team", "bot"), &policy("team", pods_reader()));
        assert_eq!(res.len(), 2);
        assert!(urls.is_empty() && errs.is_empty());
        let (res, _, _) = rules_for(&sa("team", "bot"), &policy("other", pods_reader()));
        assert!(res.is_empty());
    }
}
