//! The built-in kinds this project and its users need. They are stored as free-form JSON (no schema
//! validation); list-type hints drive server-side apply and strategic merge patch.

use serde_json::{json, Value};

use super::{Column, ResourceType, Version};

const ALL_VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

struct Spec {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    hints: Value,
    field_selectors: &'static [&'static str],
    extra: &'static [&'static str],
    columns: Vec<Column>,
}

fn column(name: &str, type_: &str, path: &str) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: path.into(),
    }
}

fn map_list(keys: &[&str], items: Value) -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys, "items": items})
}

fn open() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn pod_hints() -> Value {
    let container = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "env": map_list(&["name"], open()),
            "ports": map_list(&["containerPort", "protocol"], open()),
            "volumeMounts": map_list(&["mountPath"], open()),
            "envFrom": {"type": "array"},
        }
    });
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "containers": map_list(&["name"], container.clone()),
                    "initContainers": map_list(&["name"], container.clone()),
                    "ephemeralContainers": map_list(&["name"], container),
                    "volumes": map_list(&["name"], open()),
                    "imagePullSecrets": map_list(&["name"], open()),
                    "tolerations": {"type": "array"},
                }
            },
            "status": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "conditions": map_list(&["type"], open()),
                    "containerStatuses": {"type": "array"},
                    "initContainerStatuses": {"type": "array"},
                }
            }
        }
    })
}

/// An object that keeps unknown fields, with hints for some of its properties.
fn object(properties: Value) -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": properties})
}

/// A status whose conditions merge by type.
fn status_conditions() -> Value {
    object(json!({"conditions": map_list(&["type"], open())}))
}

fn conditions_hints() -> Value {
    object(json!({"status": status_conditions()}))
}

/// Service ports merge by port and protocol, as upstream's patch strategy has it.
fn service_hints() -> Value {
    object(json!({
        "spec": object(json!({"ports": map_list(&["port", "protocol"], open())})),
        "status": status_conditions(),
    }))
}

/// A Deployment's or ReplicaSet's Pod template merges as a Pod does; status conditions by type.
fn workload_hints() -> Value {
    let pod = pod_hints();
    object(json!({
        "spec": object(json!({"template": object(json!({"spec": pod["properties"]["spec"].clone()}))})),
        "status": status_conditions(),
    }))
}

/// A role's rules and a binding's subjects are atomic lists, as upstream (no merge keys).
fn rbac_hints() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"rules": {"type": "array"}, "subjects": {"type": "array"}}
    })
}

fn specs() -> Vec<Spec> {
    let none: &[&str] = &[];
    let base = |group, version, plural, kind, namespaced, short| Spec {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status: false,
        hints: open(),
        field_selectors: none,
        extra: none,
        columns: Vec::new(),
    };
    vec![
        Spec {
            status: true,
            hints: conditions_hints(),
            columns: vec![column("Status", "string", ".status.phase")],
            field_selectors: &["status.phase"],
            ..base("", "v1", "namespaces", "Namespace", false, &["ns"])
        },
        Spec {
            status: true,
            hints: pod_hints(),
            field_selectors: &[
                "spec.nodeName",
                "status.phase",
                "spec.restartPolicy",
                "spec.serviceAccountName",
                "spec.schedulerName",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            extra: &["log", "binding", "eviction"],
            ..base("", "v1", "pods", "Pod", true, &["po"])
        },
        Spec {
            status: true,
            hints: conditions_hints(),
            extra: &["proxy"],
            ..base("", "v1", "nodes", "Node", false, &["no"])
        },
        Spec { field_selectors: &["type"], ..base("", "v1", "secrets", "Secret", true, &[]) },
        base("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
        Spec { extra: &["token"], ..base("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]) },
        Spec {
            field_selectors: &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            ..base("", "v1", "events", "Event", true, &["ev"])
        },
        Spec {
            field_selectors: &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
                "reportingController",
            ],
            ..base("events.k8s.io", "v1", "events", "Event", true, &["ev"])
        },
        Spec {
            columns: vec![column("Holder", "string", ".spec.holderIdentity")],
            ..base("coordination.k8s.io", "v1", "leases", "Lease", true, &[])
        },
        Spec { status: true, hints: service_hints(), ..base("", "v1", "services", "Service", true, &["svc"]) },
        base("", "v1", "endpoints", "Endpoints", true, &["ep"]),
        Spec {
            columns: vec![column("AddressType", "string", ".addressType")],
            ..base("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, &[])
        },
        Spec {
            status: true,
            hints: workload_hints(),
            ..base("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        },
        Spec {
            status: true,
            hints: workload_hints(),
            columns: vec![
                column("Desired", "integer", ".spec.replicas"),
                column("Current", "integer", ".status.replicas"),
                column("Ready", "integer", ".status.readyReplicas"),
            ],
            ..base("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
        },
        Spec {
            status: true,
            hints: conditions_hints(),
            columns: vec![
                column("Min Available", "string", ".spec.minAvailable"),
                column("Max Unavailable", "string", ".spec.maxUnavailable"),
                column("Allowed Disruptions", "integer", ".status.disruptionsAllowed"),
            ],
            ..base("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"])
        },
        base("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"]),
        Spec {
            status: true,
            hints: conditions_hints(),
            ..base(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
                "ValidatingAdmissionPolicy",
                false,
                &[],
            )
        },
        base(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
            &[],
        ),
        Spec { hints: rbac_hints(), ..base("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]) },
        Spec {
            hints: rbac_hints(),
            ..base("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[])
        },
        Spec {
            hints: rbac_hints(),
            columns: vec![column("Role", "string", ".roleRef.name")],
            ..base("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[])
        },
        Spec {
            hints: rbac_hints(),
            columns: vec![column("Role", "string", ".roleRef.name")],
            ..base("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[])
        },
        Spec {
            status: true,
            hints: json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "spec": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"versions": map_list(&["name"], open())}
                    },
                    "status": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"conditions": map_list(&["type"], open())}
                    }
                }
            }),
            columns: vec![column("Created At", "date", ".metadata.creationTimestamp")],
            ..base(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
            )
        },
    ]
}

/// Every built-in resource, plus the create-only review resources.
pub fn builtins() -> Vec<ResourceType> {
    let mut out: Vec<ResourceType> = specs()
        .into_iter()
        .map(|s| ResourceType {
            group: s.group.into(),
            plural: s.plural.into(),
            singular: s.kind.to_lowercase(),
            kind: s.kind.into(),
            list_kind: format!("{}List", s.kind),
            namespaced: s.namespaced,
            short_names: s.short.iter().map(|x| x.to_string()).collect(),
            categories: if matches!(s.kind, "Pod" | "Service" | "Deployment" | "ReplicaSet") {
                vec!["all".to_string()]
            } else {
                Vec::new()
            },
            versions: vec![Version {
                name: s.version.into(),
                schema: None,
                columns: s.columns,
                status_subresource: s.status,
            }],
            verbs: ALL_VERBS.to_vec(),
            custom: false,
            hints: s.hints,
            field_selectors: s.field_selectors.to_vec(),
            extra_subresources: s.extra.to_vec(),
        })
        .collect();
    // Create-only review kinds: answered from the request, never stored.
    let reviews = [
        ("authentication.k8s.io", "tokenreviews", "TokenReview"),
        ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
        ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
        ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
    ];
    for (group, plural, kind) in reviews {
        out.push(ResourceType {
            group: group.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced: false,
            short_names: Vec::new(),
            categories: Vec::new(),
            versions: vec![Version { name: "v1".into(), schema: None, columns: Vec::new(), status_subresource: false }],
            verbs: vec!["create"],
            custom: false,
            hints: open(),
            field_selectors: Vec::new(),
            extra_subresources: Vec::new(),
        });
    }
    out
}
