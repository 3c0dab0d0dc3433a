//! The write pipeline every create/update/patch/apply goes through before it is stored: identity and
//! metadata rules, the status subresource split, CRD schema pruning/defaulting/validation, generation,
//! managed fields, and no-op detection.

use serde_json::{json, Map, Value};

use crate::meta;
use crate::resources::{crd_status, ResourceType};
use crate::{merge, schema};

use super::request::Target;
use super::status::ApiError;

/// How unknown fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValidation {
    /// Drop silently.
    Ignore,
    /// Drop and warn (the server default).
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// From the query parameter.
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// The kind of write, which decides how managed fields are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// POST.
    Create,
    /// PUT, or a non-apply PATCH.
    Update,
    /// Server-side apply (managed fields already computed).
    Apply,
}

/// Per-request context for [`admit`].
pub struct Ctx<'a> {
    /// What the URL addressed.
    pub target: &'a Target,
    /// Field manager recorded in managedFields.
    pub manager: String,
    /// Unknown-field policy.
    pub validation: FieldValidation,
    /// Warnings to return in `Warning` headers.
    pub warnings: Vec<String>,
    /// For merge/JSON/strategic patches: the patched object as JSON, which a real server quotes when
    /// strict field validation rejects the result.
    pub patched: Option<String>,
    /// For Services: the ClusterIPs in use and the one a create without one gets.
    pub service_ips: Option<ServiceIps>,
}

/// The service range's state when a Service is written (read before the store lock is taken).
#[derive(Debug, Default)]
pub struct ServiceIps {
    /// ClusterIPs of existing Services.
    pub used: Vec<String>,
    /// The address a new Service without one is given.
    pub next: Option<String>,
}

impl Ctx<'_> {
    fn rt(&self) -> &ResourceType {
        &self.target.rt
    }

    fn is_status(&self) -> bool {
        self.target.sub.as_deref() == Some("status")
    }

    fn status_split(&self) -> bool {
        self.rt().version(&self.target.version).is_some_and(|v| v.status_subresource)
    }

    /// `apiVersion` the URL serves.
    pub fn api_version(&self) -> String {
        self.rt().api_version(&self.target.version)
    }
}

/// Checks apiVersion/kind of a request body against the URL and fills them in.
pub fn check_type(ctx: &Ctx<'_>, obj: &mut Value) -> Result<(), ApiError> {
    let expected = ctx.api_version();
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    };
    if let Some(v) = map.get("apiVersion").and_then(Value::as_str) {
        if v != expected {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
    }
    if let Some(k) = map.get("kind").and_then(Value::as_str) {
        if k != ctx.rt().kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                ctx.rt().kind
            )));
        }
    }
    map.insert("apiVersion".into(), json!(expected));
    map.insert("kind".into(), json!(ctx.rt().kind));
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    Ok(())
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

/// Everything but metadata and status: a change here bumps `metadata.generation`.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Kinds whose spec changes bump `metadata.generation` (controllers report `observedGeneration`).
fn has_generation(rt: &ResourceType) -> bool {
    rt.custom
        || matches!(
            (rt.group.as_str(), rt.kind.as_str()),
            ("apiextensions.k8s.io", "CustomResourceDefinition")
                | ("", "Pod")
                | ("apps", "Deployment" | "ReplicaSet")
                | ("policy", "PodDisruptionBudget")
                | ("networking.k8s.io", "NetworkPolicy")
                | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding")
        )
}

/// Produces the object to store from the requested `new` state and the stored `old` one.
pub fn admit(ctx: &mut Ctx<'_>, old: Option<&Value>, mut new: Value, op: Op) -> Result<Value, ApiError> {
    check_type(ctx, &mut new)?;
    let rt = ctx.target.rt.clone();
    let name = meta::meta_str(&new, "name").unwrap_or_default().to_string();

    // Identity and system metadata come from the server, never from the request.
    {
        let m = meta_mut(&mut new);
        match (&ctx.target.namespace, rt.namespaced) {
            (Some(ns), true) => {
                if m.get("namespace").and_then(Value::as_str).is_some_and(|n| !n.is_empty() && n != ns) {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                m.insert("namespace".into(), json!(ns));
            }
            (_, false) => {
                m.remove("namespace");
            }
            (None, true) => return Err(ApiError::bad_request("a namespace is required for namespaced resources")),
        }
        match old {
            None => {
                m.insert("uid".into(), json!(meta::uid()));
                m.insert("creationTimestamp".into(), json!(meta::now()));
                m.remove("deletionTimestamp");
                m.remove("deletionGracePeriodSeconds");
                if has_generation(&rt) {
                    m.insert("generation".into(), json!(1));
                } else {
                    m.remove("generation");
                }
            }
            Some(old) => {
                // A body naming another uid is a precondition that fails (the object was replaced).
                if let (Some(want), Some(have)) =
                    (m.get("uid").and_then(Value::as_str), old["metadata"]["uid"].as_str())
                {
                    if !want.is_empty() && want != have {
                        return Err(ApiError::conflict(
                            super::status::Subject { group: &rt.group, resource: &rt.plural, name: &name },
                            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
                        ));
                    }
                }
                for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                    match old["metadata"].get(f) {
                        Some(v) => m.insert(f.into(), v.clone()),
                        None => m.remove(f),
                    };
                }
            }
        }
        m.remove("selfLink");
        // Empty collections are omitted, as Go's `omitempty` does on a real server.
        for f in ["labels", "annotations", "finalizers", "ownerReferences", "generateName"] {
            let empty = match m.get(f) {
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                m.remove(f);
            }
        }
    }

    // The status subresource: the main endpoint cannot change status, `/status` only status.
    if ctx.status_split() || ctx.is_status() {
        if ctx.is_status() {
            let Some(old) = old else {
                return Err(ApiError::internal("status update of a missing object"));
            };
            let status = new.get("status").cloned();
            let managed = new["metadata"].get("managedFields").cloned();
            let mut base = old.clone();
            match status {
                Some(s) => base["status"] = s,
                None => {
                    if let Some(m) = base.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = managed {
                base["metadata"]["managedFields"] = mf;
            }
            new = base;
        } else if let Some(m) = new.as_object_mut() {
            match old.and_then(|o| o.get("status")) {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
    }

    // Custom resources: prune unknown fields, default, validate against the CRD schema.
    if rt.custom {
        if let Some(schema) = rt.version(&ctx.target.version).and_then(|v| v.schema.clone()) {
            let mut unknown = prune_metadata(&mut new);
            unknown.extend(schema::prune(&mut new, &schema));
            unknown.sort();
            report_unknown(ctx, &rt, &unknown)?;
            schema::apply_defaults(&mut new, &schema);
            let mut errs = Vec::new();
            if let Some(msg) = meta::dns_subdomain_error(&name) {
                errs.push(schema::FieldError {
                    reason: "FieldValueInvalid",
                    field: "metadata.name".into(),
                    message: format!("Invalid value: {:?}: {msg}", name),
                });
            }
            errs.extend(meta_errors(&new));
            let mut schema_errs = schema::validate(&new, &schema);
            if let Some(old) = old {
                // Validation ratcheting (GA upstream): a value that is unchanged by this write may stay
                // invalid, so tightening a CRD never blocks status writes, labels or finalizer removal.
                schema_errs.retain(|e| !unchanged_at(old, &new, &e.field));
            }
            // The CRD's CEL rules, after the schema's own errors; a real server skips them after a
            // "blocking" schema error (unsupported enum value, missing required field, wrong type,
            // too long, too many: the errors that leave the rules' cost unbounded) and says so.
            let blocking = schema_errs.iter().any(|e| {
                matches!(
                    e.reason,
                    "FieldValueNotSupported"
                        | "FieldValueRequired"
                        | "FieldValueTypeInvalid"
                        | "FieldValueTooLong"
                        | "FieldValueTooMany"
                )
            });
            errs.extend(schema_errs);
            if !blocking {
                errs.extend(schema::cel::validate(&new, old, &schema));
            }
            if blocking && schema.to_string().contains("\"x-kubernetes-validations\"") {
                errs.push(schema::FieldError {
                    reason: "FieldValueInvalid",
                    field: "<nil>".into(),
                    message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
                });
            }
            if !errs.is_empty() {
                return Err(invalid(&rt, &name, &errs));
            }
        }
    } else {
        let unknown = prune_metadata(&mut new);
        report_unknown(ctx, &rt, &unknown)?;
        validate_builtin(&rt, &name, &new)?;
        if let Some(old) = old.filter(|_| rt.group == "rbac.authorization.k8s.io" && rt.kind.ends_with("RoleBinding")) {
            role_ref_unchanged(&rt, &name, old, &new)?;
        }
        if rt.group.is_empty() && rt.kind == "Service" {
            admit_service(ctx, &rt, &name, old, &mut new)?;
        }
    }

    if rt.kind == "Secret" && rt.group.is_empty() {
        secret_string_data(&mut new);
    }

    if rt.kind == "Pod" && rt.group.is_empty() && old.is_none() {
        crate::resources::pod_defaults(&mut new);
    }

    // Defaulting runs on every write, as upstream decodes every request with defaults: an update
    // or apply that leaves a defaulted field out gets it back.
    if rt.group == "apps" && matches!(rt.kind.as_str(), "Deployment" | "ReplicaSet") {
        crate::resources::workload_defaults(&rt.kind, &mut new);
    }

    if rt.kind == "Namespace" && rt.group.is_empty() {
        // The NamespaceDefaultLabelName feature: every namespace carries its own name as a label.
        new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        if old.is_none() {
            new["spec"]["finalizers"] = json!(["kubernetes"]);
            new["status"] = json!({"phase": "Active"});
        }
    }

    if is_crd(&rt) {
        validate_crd(&new)?;
        if old.is_none() {
            // The real server stores a CRD with empty names and lets its controllers establish it
            // in a later write (see `establish_crd`).
            let storage: Vec<Value> = new["spec"]["versions"]
                .as_array()
                .map(|vs| vs.iter().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect())
                .unwrap_or_default();
            new["status"] =
                json!({"acceptedNames": {"kind": "", "plural": ""}, "conditions": null, "storedVersions": storage});
        }
    }

    // Finalizers cannot be added once deletion started.
    if let Some(old) = old {
        if old["metadata"].get("deletionTimestamp").is_some() {
            let before = meta::finalizers(old);
            if let Some(added) = meta::finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    format!("{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}", qualified_kind(&rt)),
                    {
                        let cause = json!({"reason": "FieldValueForbidden", "message": format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"), "field": "metadata.finalizers"});
                        // A real server runs object-meta update validation twice for custom
                        // resources and reports the cause twice; clients see exactly that.
                        if rt.custom { json!([cause, cause]) } else { json!([cause]) }
                    },
                ));
            }
        }
    }

    if let (Some(old), true) = (old, has_generation(&rt)) {
        if spec_part(old) != spec_part(&new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(g);
        }
    }

    if op != Op::Apply {
        let hints = hints_with_metadata(&rt.hints);
        merge::record_update(
            old,
            &mut new,
            &ctx.manager,
            &hints,
            &ctx.api_version(),
            &meta::now(),
            ctx.target.sub.as_deref().filter(|s| *s == "status"),
        );
    }
    Ok(new)
}

/// `stringData` is write-only: merged into `data` (base64), as the real Secret strategy does.
fn secret_string_data(secret: &mut Value) {
    use base64::Engine as _;
    if let Some(m) = secret.as_object_mut() {
        if let Some(Value::Object(sd)) = m.remove("stringData") {
            let data = m.entry("data").or_insert_with(|| json!({}));
            if !data.is_object() {
                *data = json!({});
            }
            for (k, v) in sd {
                let text = v.as_str().unwrap_or_default();
                data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
            }
        }
        m.entry("type").or_insert_with(|| json!("Opaque"));
    }
}

/// Applies `fieldValidation` to the unknown fields a write contained.
fn report_unknown(ctx: &mut Ctx<'_>, rt: &ResourceType, unknown: &[String]) -> Result<(), ApiError> {
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> =
        unknown.iter().map(|u| format!("unknown field \"{}\"", u.trim_start_matches('.'))).collect();
    match ctx.validation {
        FieldValidation::Strict if ctx.patched.is_some() => {
            let cause = format!(
                "Invalid value: {}: strict decoding error: {}",
                serde_json::to_string(ctx.patched.as_deref().unwrap_or("")).unwrap_or_default(),
                list.join(", ")
            );
            return Err(ApiError::invalid(
                "",
                "",
                "",
                format!(" \"\" is invalid: patch: {cause}"),
                json!([{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}]),
            ));
        }
        FieldValidation::Strict => {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                list.join(", "),
                kind = rt.kind,
                v = ctx.target.version
            )))
        }
        FieldValidation::Warn => ctx.warnings.extend(list),
        FieldValidation::Ignore => {}
    }
    Ok(())
}

/// Unknown fields under `metadata` (dropped; reported like schema pruning).
fn prune_metadata(obj: &mut Value) -> Vec<String> {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return Vec::new() };
    let unknown: Vec<String> = m.keys().filter(|k| !meta::OBJECT_META_FIELDS.contains(&k.as_str())).cloned().collect();
    for k in &unknown {
        m.remove(k);
    }
    unknown.into_iter().map(|k| format!("metadata.{k}")).collect()
}

fn meta_errors(obj: &Value) -> Vec<schema::FieldError> {
    meta::label_and_annotation_errors(obj)
        .into_iter()
        .map(|(field, reason, message)| schema::FieldError { reason, field, message })
        .collect()
}

/// Looks up a field path as written in validation errors (`spec.items[2].name`).
fn at_path<'a>(obj: &'a Value, path: &str) -> Option<Option<&'a Value>> {
    let mut cur = Some(obj);
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            cur = cur.and_then(|c| c.get(key));
        }
        for idx in indexes.split('[').filter(|x| !x.is_empty()) {
            let idx = idx.strip_suffix(']')?;
            cur = match idx.parse::<usize>() {
                Ok(n) => cur.and_then(|c| c.get(n)),
                Err(_) => cur.and_then(|c| c.get(idx.trim_matches('"'))),
            };
        }
    }
    Some(cur)
}

/// Whether the value at a validation error's path is the same before and after the write.
fn unchanged_at(old: &Value, new: &Value, path: &str) -> bool {
    if path.is_empty() || path == "<nil>" {
        return false;
    }
    match (at_path(old, path), at_path(new, path)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Whether a resource type is CustomResourceDefinition.
pub fn is_crd(rt: &ResourceType) -> bool {
    rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io"
}

/// The status the CRD controllers converge to, if it differs from the stored one.
pub fn established_status(crd: &Value) -> Option<Value> {
    let status = crd_status(crd, &meta::now());
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(c) = c.as_object_mut() {
                    c.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    (strip(&status) != strip(&crd["status"])).then_some(status)
}

/// `Kind.group` as used in Invalid messages.
pub fn qualified_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

/// A 422 Invalid built from schema field errors.
pub fn invalid(rt: &ResourceType, name: &str, errs: &[schema::FieldError]) -> ApiError {
    let causes: Vec<Value> =
        errs.iter().map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field})).collect();
    ApiError::invalid(
        &rt.group,
        &rt.kind,
        name,
        schema::invalid_message(&rt.kind, &rt.group, name, errs),
        json!(causes),
    )
}

/// The list-type hints with ObjectMeta's merged in.
pub fn hints_with_metadata(hints: &Value) -> Value {
    let mut h = hints.clone();
    if let Some(obj) = h.as_object_mut() {
        let props = obj.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("metadata".into(), merge::metadata_hints());
        }
    }
    h
}

fn validate_builtin(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let check = if rt.kind == "Namespace" { meta::dns_label_error(name) } else { meta::dns_subdomain_error(name) };
    let mut errs: Vec<schema::FieldError> = check
        .map(|msg| schema::FieldError {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: format!("Invalid value: {name:?}: {msg}"),
        })
        .into_iter()
        .collect();
    errs.extend(meta_errors(obj));
    if errs.is_empty() {
        return Ok(());
    }
    Err(invalid(rt, name, &errs))
}

fn admit_service(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    name: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<(), ApiError> {
    use crate::resources::service;
    let ips = ctx.service_ips.as_ref();
    if let Some(old) = old {
        service::keep_allocated(old, new);
    }
    let errs = service::validate(old, new, |ip| ips.is_some_and(|i| i.used.iter().any(|u| u == ip)));
    if !errs.is_empty() {
        return Err(invalid(rt, name, &errs));
    }
    service::defaults(new, if old.is_none() { ips.and_then(|i| i.next.as_deref()) } else { None });
    Ok(())
}

/// A binding's `roleRef` is immutable (a binding to another role is a new binding), as upstream.
fn role_ref_unchanged(rt: &ResourceType, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let (before, after) = (&old["roleRef"], &new["roleRef"]);
    if before == after {
        return Ok(());
    }
    let text = |k: &str| after[k].as_str().unwrap_or_default().to_string();
    let shown =
        format!("rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}", text("apiGroup"), text("kind"), text("name"));
    let errs = [schema::FieldError {
        reason: "FieldValueInvalid",
        field: "roleRef".into(),
        message: format!("Invalid value: {shown}: cannot change roleRef"),
    }];
    Err(invalid(rt, name, &errs))
}

fn validate_crd(crd: &Value) -> Result<(), ApiError> {
    let name = meta::meta_str(crd, "name").unwrap_or_default();
    let spec = &crd["spec"];
    let mut errs = Vec::new();
    let mut structural = Vec::new();
    let mut err = |field: &str, reason: &'static str, message: String| {
        errs.push(schema::FieldError { reason, field: field.into(), message });
    };
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() {
        err("spec.group", "FieldValueRequired", "Required value".into());
    }
    if plural.is_empty() {
        err("spec.names.plural", "FieldValueRequired", "Required value".into());
    }
    if spec["names"]["kind"].as_str().unwrap_or_default().is_empty() {
        err("spec.names.kind", "FieldValueRequired", "Required value".into());
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        err(
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        );
    }
    match spec["scope"].as_str() {
        Some("Namespaced") | Some("Cluster") => {}
        other => err(
            "spec.scope",
            "FieldValueNotSupported",
            format!("Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"", other.unwrap_or("")),
        ),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if versions.is_empty() {
        err(
            "spec.versions",
            "FieldValueInvalid",
            "Invalid value: \"null\": must have exactly one version marked as storage version".into(),
        );
    } else if storage != 1 {
        err("spec.versions", "FieldValueInvalid", format!("Invalid value: []apiextensions.CustomResourceDefinitionVersion{{...}}: must have exactly one version marked as storage version, status.storedVersions: Invalid value: {storage}"));
    }
    for (i, v) in versions.iter().enumerate() {
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) => {
                structural.extend(schema::check_structural(s, &format!("spec.versions[{i}].schema.openAPIV3Schema")))
            }
            None => err(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "FieldValueRequired",
                "Required value: schemas are required".into(),
            ),
        }
    }
    errs.extend(structural);
    if errs.is_empty() {
        return Ok(());
    }
    let causes: Vec<Value> =
        errs.iter().map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field})).collect();
    Err(ApiError::invalid(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        name,
        schema::invalid_message("CustomResourceDefinition", "apiextensions.k8s.io", name, &errs),
        json!(causes),
    ))
}

/// Whether two versions of an object differ in anything but bookkeeping (managed field times, rv).
pub fn meaningfully_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(mf) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
                for e in mf {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(old) != strip(new)
}
