//! The resource verbs: get, list, create, update, patch (merge, JSON, strategic, apply), delete and
//! deletecollection, plus the subresources that are not plain objects (token, log, binding).

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::merge;
use crate::meta;
use crate::resources;
use crate::store::{ResKey, Write};

use super::request::{flag, Query, Target};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Subject};
use super::write::{self, Ctx, FieldValidation, Op};
use super::{respond, reviews, table, watch, App};

/// The object as served in the URL's version.
pub fn present(t: &Target, obj: &Value) -> Value {
    let mut o = resources::to_served(&t.rt, obj);
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(t.rt.api_version(&t.version)));
        m.insert("kind".into(), json!(t.rt.kind));
    }
    o
}

fn subject<'a>(t: &'a Target, name: &'a str) -> Subject<'a> {
    Subject { group: &t.rt.group, resource: &t.rt.plural, name }
}

fn header(h: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Dispatches one resource request.
pub async fn handle(
    app: &Arc<App>,
    method: &Method,
    t: Target,
    q: Query,
    headers: &HeaderMap,
    body: Bytes,
    user: &UserInfo,
) -> Result<Response, ApiError> {
    let accept = header(headers, http::header::ACCEPT);
    let sub = t.sub.clone();
    match (method.as_str(), t.name.as_deref(), sub.as_deref()) {
        ("GET", None, _) if t.legacy_watch || flag(&q, "watch") => watch::serve(app, t, &q, table::wants_table(accept)),
        ("GET", Some(_), None) if t.legacy_watch => watch::serve(app, t, &q, table::wants_table(accept)),
        ("GET", None, None) => list(app, &t, &q, accept),
        ("GET", Some(name), None | Some("status")) => get(app, &t, name, accept),
        ("GET", Some(name), Some("log")) if t.rt.kind == "Pod" => pod_logs(app, &t, name, &q),
        ("POST", None, None) if t.rt.group == "authentication.k8s.io" && t.rt.plural == "tokenreviews" => {
            reviews::token_review(app, &decode(headers, &body)?)
        }
        ("POST", None, None)
            if !t.rt.custom && matches!(t.rt.group.as_str(), "authentication.k8s.io" | "authorization.k8s.io") =>
        {
            reviews::authorization_review(app, &t.rt.kind, &decode(headers, &body)?, user)
        }
        ("POST", None, None) => create(app, &t, &q, headers, &body),
        ("POST", Some(name), Some("token")) if t.rt.plural == "serviceaccounts" => {
            reviews::token_request(app, t.namespace.as_deref().unwrap_or_default(), name, &decode(headers, &body)?)
        }
        ("POST", Some(name), Some("binding")) if t.rt.kind == "Pod" => bind(app, &t, name, &decode(headers, &body)?),
        ("POST", Some(name), Some("eviction")) if t.rt.kind == "Pod" => evict(app, &t, name, &decode(headers, &body)?),
        ("PUT", Some(name), None | Some("status")) => update(app, &t, name, &q, headers, &body),
        ("PATCH", Some(name), None | Some("status")) => patch(app, &t, name, &q, headers, &body),
        ("DELETE", Some(name), None) => delete(app, &t, name, &q, headers, &body),
        ("DELETE", None, None) => delete_collection(app, &t, &q, headers, &body),
        (_, _, Some(s)) if !t.rt.version(&t.version).is_some_and(|v| v.status_subresource) && s == "status" => {
            Err(ApiError::path_not_found())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The object as field selectors see it: in the served form (e.g. `regarding.name` for
/// events.k8s.io Events stored as core Events).
pub fn field_view<'a>(rt: &crate::resources::ResourceType, o: &'a Value) -> std::borrow::Cow<'a, Value> {
    if resources::converts(rt) {
        std::borrow::Cow::Owned(resources::to_served(rt, o))
    } else {
        std::borrow::Cow::Borrowed(o)
    }
}

/// Create and update bodies of custom resources must say what they are, as the unstructured decoder
/// requires; for built-in kinds kube-apiserver's typed decoder takes kind and apiVersion from the URL
/// (the official Python client relies on it), and `check_type` fills them in.
fn require_kind(rt: &crate::resources::ResourceType, obj: &Value) -> Result<(), ApiError> {
    if !rt.custom || obj.get("kind").and_then(Value::as_str).is_some_and(|k| !k.is_empty()) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!("Object 'Kind' is missing in '{obj}'")))
}

/// Whole-number floats become integers, as Kubernetes' JSON decoding does (`3.0` is stored as `3`).
fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    *v = json!(f as i64);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_numbers),
        Value::Object(o) => o.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// Decodes a JSON or YAML request body.
fn decode(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let mut v = decode_raw(headers, body)?;
    normalize_numbers(&mut v);
    Ok(v)
}

fn decode_raw(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = header(headers, http::header::CONTENT_TYPE).unwrap_or("application/json");
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("request body is not UTF-8"))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return super::protobuf::decode(body).map_err(|e| ApiError::unsupported_media_type(&format!("{ct}: {e}")));
    }
    if !(ct.starts_with("application/json") || ct.contains("+json") || ct.contains("yaml")) {
        return Err(ApiError::unsupported_media_type(ct));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn manager(q: &Query, headers: &HeaderMap) -> Result<String, ApiError> {
    let m = match q.get("fieldManager") {
        Some(m) => m.clone(),
        None => header(headers, http::header::USER_AGENT)
            .unwrap_or("unknown")
            .split('/')
            .next()
            .unwrap_or("unknown")
            .to_string(),
    };
    if m.chars().count() > 128 {
        return Err(ApiError::bad_request("fieldManager: Too long: may not be more than 128 bytes"));
    }
    Ok(m)
}

fn ctx<'a>(t: &'a Target, q: &Query, headers: &HeaderMap) -> Result<Ctx<'a>, ApiError> {
    Ok(Ctx {
        target: t,
        manager: manager(q, headers)?,
        validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?,
        warnings: Vec::new(),
        patched: None,
        service_ips: None,
    })
}

/// Service creates are serialised, so two never get the same ClusterIP.
static SERVICE_IPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// For a Service write: holds the allocation lock and reads the range's state (before the store
/// lock, which is not re-entrant).
fn service_ips(app: &App, t: &Target, c: &mut Ctx<'_>) -> Option<std::sync::MutexGuard<'static, ()>> {
    if !(t.rt.group.is_empty() && t.rt.kind == "Service") {
        return None;
    }
    let guard = SERVICE_IPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (services, _) = app.store.list(&t.rt.key(), None);
    let used: Vec<String> = services
        .iter()
        .map(|s| resources::service::requested_ip(s).to_string())
        .filter(|ip| !ip.is_empty() && ip != "None")
        .collect();
    // The `kubernetes` Service in `default` owns the range's first address.
    let first = t.namespace.as_deref() == Some("default") && t.name.as_deref().unwrap_or_default() == "kubernetes";
    let next = resources::service::next_free(&used, first);
    c.service_ips = Some(write::ServiceIps { used, next });
    Some(guard)
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => {
            Err(ApiError::bad_request(format!("Invalid dryRun value: {other:?}: supported values: \"All\"")))
        }
    }
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {}", serde_json::to_string(w).unwrap_or_default())) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn get(app: &App, t: &Target, name: &str, accept: Option<&str>) -> Result<Response, ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    let obj = app.store.get(&t.rt.key(), ns, name).ok_or_else(|| ApiError::not_found(subject(t, name)))?;
    let obj = present(t, &obj);
    if table::wants_table(accept) {
        let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
        return Ok(respond::ok(&table::table(&t.rt, &t.version, &[&obj], json!({"resourceVersion": rv}), true)));
    }
    Ok(respond::ok(&obj))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    start: String,
}

fn list(app: &App, t: &Target, q: &Query, accept: Option<&str>) -> Result<Response, ApiError> {
    let labels =
        LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str), &t.rt.field_selectors)
        .map_err(ApiError::bad_request)?;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 0usize,
        Some(l) => {
            l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?.max(0) as usize
        }
    };
    let (items, current_rv) = app.store.list(&t.rt.key(), t.namespace.as_deref());
    let (list_rv, start) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let token: Continue = URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid: invalid continue token"))?;
            (token.rv, Some(token.start))
        }
        None => (current_rv, None),
    };
    let key_of = |o: &Value| {
        format!("{}/{}", meta::meta_str(o, "namespace").unwrap_or(""), meta::meta_str(o, "name").unwrap_or(""))
    };
    let matched: Vec<&Arc<Value>> = items
        .iter()
        .filter(|o| start.as_ref().is_none_or(|s| key_of(o) > *s))
        .filter(|o| labels.matches(o) && fields.matches(&field_view(&t.rt, o)))
        .collect();
    let full = limit > 0 && matched.len() > limit;
    let shown = if full { &matched[..limit] } else { &matched[..] };
    let mut page: Vec<Value> = shown.iter().map(|o| present(t, o)).collect();
    let mut list_meta = json!({"resourceVersion": list_rv.to_string()});
    if let (true, Some(last)) = (full, shown.last()) {
        let token = serde_json::to_vec(&Continue { rv: list_rv, start: key_of(last) }).unwrap_or_default();
        list_meta["continue"] = json!(URL_SAFE_NO_PAD.encode(token));
        // Without selectors every later object matches, so the rest of `matched` is what is left.
        if labels.is_empty() && fields.is_empty() {
            list_meta["remainingItemCount"] = json!(matched.len() - limit);
        }
    }
    if table::wants_table(accept) {
        let refs: Vec<&Value> = page.iter().collect();
        return Ok(respond::ok(&table::table(&t.rt, &t.version, &refs, list_meta, true)));
    }
    if !t.rt.custom {
        for item in &mut page {
            if let Some(m) = item.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
        }
    }
    Ok(respond::ok(&json!({
        "apiVersion": t.rt.api_version(&t.version),
        "kind": t.rt.list_kind,
        "metadata": list_meta,
        "items": page,
    })))
}

/// Checks the namespace of a new object exists and is not terminating.
fn check_namespace(app: &App, t: &Target, name: &str) -> Result<(), ApiError> {
    let Some(ns) = t.namespace.as_deref().filter(|_| t.rt.namespaced) else { return Ok(()) };
    match app.store.get(&ResKey::new("", "namespaces"), "", ns) {
        None => Err(ApiError::not_found(Subject { group: "", resource: "namespaces", name: ns })),
        Some(n) if n["metadata"].get("deletionTimestamp").is_some() => Err(ApiError {
            details: Some(json!({"name": name, "group": t.rt.group, "kind": t.rt.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})),
            ..ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                if t.rt.group.is_empty() { t.rt.plural.clone() } else { format!("{}.{}", t.rt.plural, t.rt.group) }
            ))
        }),
        Some(_) => Ok(()),
    }
}

fn after_write(app: &App, t: &Target) {
    if write::is_crd(&t.rt) {
        establish_crds(app, &t.rt);
        app.refresh_registry();
    }
}

/// What the CRD controllers do after a CRD write: accept its names and mark it Established, in a
/// write of their own (as on a real server, the create response still shows the empty status).
fn establish_crds(app: &App, rt: &crate::resources::ResourceType) {
    let (crds, _) = app.store.list(&rt.key(), None);
    for crd in crds {
        if crd["metadata"].get("deletionTimestamp").is_some() {
            continue;
        }
        let name = meta::meta_str(&crd, "name").unwrap_or_default().to_string();
        let _ = app.store.write::<()>(&rt.key(), "", &name, |cur| {
            let Some(cur) = cur else { return Ok(Write::Keep) };
            match write::established_status(cur) {
                Some(status) => {
                    let mut next = cur.clone();
                    next["status"] = status;
                    Ok(Write::Put(next))
                }
                None => Ok(Write::Keep),
            }
        });
    }
}

fn create(app: &Arc<App>, t: &Target, q: &Query, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let mut obj = decode(headers, body)?;
    require_kind(&t.rt, &obj)?;
    let mut c = ctx(t, q, headers)?;
    write::check_type(&c, &mut obj)?;
    let mut name = meta::meta_str(&obj, "name").unwrap_or_default().to_string();
    if name.is_empty() {
        let Some(prefix) = meta::meta_str(&obj, "generateName").filter(|g| !g.is_empty()) else {
            let msg = "name or generateName is required";
            return Err(ApiError::invalid(
                &t.rt.group,
                &t.rt.kind,
                "",
                format!("{} \"\" is invalid: metadata.name: Required value: {msg}", write::qualified_kind(&t.rt)),
                json!([{"reason": "FieldValueRequired", "message": format!("Required value: {msg}"), "field": "metadata.name"}]),
            ));
        };
        name = format!("{prefix}{}", meta::name_suffix());
        obj["metadata"]["name"] = json!(name);
    }
    check_namespace(app, t, &name)?;
    let named = Target { name: Some(name.clone()), ..t.clone() };
    let _allocating = service_ips(app, &named, &mut c);
    let new = write::admit(&mut c, None, obj, Op::Create)?;
    let dry = dry_run(q)?;
    let ns = t.namespace.as_deref().unwrap_or("");
    if dry {
        if app.store.get(&t.rt.key(), ns, &name).is_some() {
            return Err(ApiError::already_exists(subject(t, &name)));
        }
        return Ok(with_warnings(respond::created(&present(t, &new)), &c.warnings));
    }
    let stored = resources::to_storage(&t.rt, &new);
    let written = app.store.write(&t.rt.key(), ns, &name, |cur| match cur {
        Some(_) => Err(ApiError::already_exists(subject(t, &name))),
        None => Ok(Write::Put(stored)),
    })?;
    after_write(app, t);
    let obj = written.object.ok_or_else(|| ApiError::internal("create stored nothing"))?;
    Ok(with_warnings(respond::created(&present(t, &obj)), &c.warnings))
}

/// The state a request asks for; `patched` carries a patch result's JSON for error messages.
struct Requested {
    object: Value,
    patched: Option<String>,
}

impl From<Value> for Requested {
    fn from(object: Value) -> Self {
        Self { object, patched: None }
    }
}

/// Applies a computed change to the stored object under the store lock, with optimistic concurrency.
/// `compute` gets the current object and returns the requested new state.
fn store_update(
    app: &App,
    t: &Target,
    name: &str,
    c: &mut Ctx<'_>,
    op: Op,
    dry: bool,
    compute: impl FnOnce(Option<&Value>) -> Result<Requested, ApiError>,
) -> Result<(Value, bool), ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    // Checked before taking the store lock (the store is not re-entrant). An apply that creates
    // needs an existing namespace.
    if op == Op::Apply && app.store.get(&t.rt.key(), ns, name).is_none() {
        check_namespace(app, t, name)?;
    }
    let _allocating = service_ips(app, t, c);
    let mut created = false;
    let mut result: Option<Value> = None;
    let written = app.store.write(&t.rt.key(), ns, name, |cur| {
        let Requested { object: requested, patched } = compute(cur)?;
        c.patched = patched;
        if let (Some(cur), Some(want)) = (cur, meta::meta_str(&requested, "resourceVersion").filter(|s| !s.is_empty()))
        {
            if meta::meta_str(cur, "resourceVersion") != Some(want) {
                return Err(ApiError::stale(subject(t, name)));
            }
        }
        if cur.is_none() {
            if op != Op::Apply {
                return Err(ApiError::not_found(subject(t, name)));
            }
            created = true;
        }
        let requested_name = meta::meta_str(&requested, "name").unwrap_or(name);
        if requested_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({requested_name}) does not match the name on the URL ({name})"
            )));
        }
        let cur_served = cur.map(|c| resources::to_served(&t.rt, c));
        let new = write::admit(c, cur_served.as_ref(), requested, op)?;
        let new = resources::to_storage(&t.rt, &new);
        if let Some(cur) = cur {
            if !write::meaningfully_changed(cur, &new) {
                result = Some(cur.clone());
                return Ok(Write::Keep);
            }
            // Clearing the last finalizer of a deleting object completes its deletion.
            if cur["metadata"].get("deletionTimestamp").is_some() && meta::finalizers(&new).is_empty() {
                result = Some(new);
                return Ok(if dry { Write::Keep } else { Write::Delete });
            }
        }
        if dry {
            result = Some(new);
            return Ok(Write::Keep);
        }
        Ok(Write::Put(new))
    })?;
    if written.changed {
        after_write(app, t);
    }
    let obj = match (written.changed, written.object, result) {
        (true, Some(o), _) => (*o).clone(),
        (_, _, Some(r)) => r,
        (_, Some(o), None) => (*o).clone(),
        (_, None, None) => return Err(ApiError::internal("update stored nothing")),
    };
    Ok((obj, created))
}

fn update(
    app: &Arc<App>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let obj = decode(headers, body)?;
    require_kind(&t.rt, &obj)?;
    let mut c = ctx(t, q, headers)?;
    let dry = dry_run(q)?;
    let custom = t.rt.custom;
    let (out, _) = store_update(app, t, name, &mut c, Op::Update, dry, |cur| {
        let body_name = meta::meta_str(&obj, "name").unwrap_or(name);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if custom && cur.is_some() && meta::meta_str(&obj, "resourceVersion").unwrap_or("").is_empty() {
            let msg = "must be specified for an update";
            return Err(ApiError::invalid(
                &t.rt.group,
                &t.rt.kind,
                name,
                format!(
                    "{}.{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0: {msg}",
                    t.rt.plural, t.rt.group
                ),
                json!([{"reason": "FieldValueInvalid", "message": format!("Invalid value: 0: {msg}"), "field": "metadata.resourceVersion"}]),
            ));
        }
        Ok(obj.into())
    })?;
    Ok(with_warnings(respond::ok(&present(t, &out)), &c.warnings))
}

fn patch(
    app: &Arc<App>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let ct =
        header(headers, http::header::CONTENT_TYPE).unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
    let dry = dry_run(q)?;
    let mut c = ctx(t, q, headers)?;
    let is_status = t.sub.as_deref() == Some("status");
    let hints = write::hints_with_metadata(&t.rt.hints);
    if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+json" {
        let Some(field_manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
            let msg = "Required value: is required for apply patch";
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                format!("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: {msg}"),
                json!([{"reason": "FieldValueRequired", "message": msg, "field": "fieldManager"}]),
            ));
        };
        let field_manager = field_manager.clone();
        let force = flag(q, "force");
        let mut config = decode(headers, body)?;
        write::check_type(&c, &mut config)?;
        let api_version = c.api_version();
        let status_split = t.rt.version(&t.version).is_some_and(|v| v.status_subresource);
        if let Some(m) = config.as_object_mut() {
            if is_status {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            } else if status_split {
                m.remove("status");
            }
        }
        if let Some(schema) = t.rt.version(&t.version).and_then(|v| v.schema.clone()) {
            let unknown = crate::schema::prune(&mut config, &schema);
            if !unknown.is_empty() && c.validation == FieldValidation::Strict {
                let list: Vec<String> = unknown.iter().map(|u| format!(".{u}: field not declared in schema")).collect();
                return Err(ApiError::bad_request(format!(
                    "failed to create typed patch object ({}/{}, Kind={}): {}",
                    t.rt.group,
                    t.version,
                    t.rt.kind,
                    list.join(", ")
                )));
            }
        }
        let (out, created) = store_update(app, t, name, &mut c, Op::Apply, dry, |cur| {
            let now = meta::now();
            let mut applied = merge::apply(merge::ApplyRequest {
                live: cur,
                config: &config,
                manager: &field_manager,
                force,
                hints: &hints,
                api_version: &api_version,
                now: &now,
                subresource: is_status.then_some("status"),
            })
            .map_err(|conflicts| ApiError {
                details: Some(json!({
                    "name": name,
                    "group": t.rt.group,
                    "kind": t.rt.plural,
                    "causes": conflicts.iter().map(|k| json!({"reason": "FieldManagerConflict", "message": k.message, "field": k.field})).collect::<Vec<_>>(),
                })),
                ..ApiError::new(409, "Conflict", merge::conflict_message(&conflicts))
            })?;
            // Apply never carries a precondition unless the config names one.
            if meta::meta_str(&config, "resourceVersion").is_none() {
                if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
            }
            Ok(applied.into())
        })?;
        let resp = if created { respond::created(&present(t, &out)) } else { respond::ok(&present(t, &out)) };
        return Ok(with_warnings(resp, &c.warnings));
    }
    if flag(q, "force") {
        return Err(ApiError::bad_request("force: Invalid value: true: may not be specified for non-apply patch"));
    }
    let patch_doc: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let kind = match ct.as_str() {
        "application/merge-patch+json" => 0,
        "application/json-patch+json" => 1,
        "application/strategic-merge-patch+json" if !t.rt.custom => 2,
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ))
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let (out, _) = store_update(app, t, name, &mut c, Op::Update, dry, |cur| {
        let Some(cur) = cur else { return Err(ApiError::not_found(subject(t, name))) };
        let mut doc = present(t, cur);
        match kind {
            0 => json_patch::merge(&mut doc, &patch_doc),
            1 => {
                let ops: json_patch::Patch = serde_json::from_value(patch_doc.clone())
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                apply_json_patch(&mut doc, ops).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: {e}"),
                    )
                })?;
            }
            _ => {
                doc = merge::strategic_merge(&doc, &patch_doc, &hints).map_err(ApiError::bad_request)?;
            }
        }
        let patched = Some(serde_json::to_string(&doc).unwrap_or_default());
        // A patch that does not name a resourceVersion is unconditional.
        let requested_rv = meta::meta_str(&doc, "resourceVersion").map(String::from);
        if requested_rv.as_deref() == meta::meta_str(cur, "resourceVersion") && !patch_names_rv(&patch_doc) {
            if let Some(m) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
        }
        Ok(Requested { object: doc, patched })
    })?;
    Ok(with_warnings(respond::ok(&present(t, &out)), &c.warnings))
}

/// RFC 6902 as the apiserver applies it: a `test` for `null` also passes when the path is absent
/// (kube-runtime's finalizer helper relies on this to add the first finalizer).
fn apply_json_patch(doc: &mut Value, ops: json_patch::Patch) -> Result<(), json_patch::PatchError> {
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op {
            if t.value.is_null() && doc.pointer(t.path.as_str()).is_none() {
                continue;
            }
        }
        json_patch::patch(doc, &[op])?;
    }
    Ok(())
}

fn patch_names_rv(patch: &Value) -> bool {
    patch.pointer("/metadata/resourceVersion").is_some()
        || patch.as_array().is_some_and(|ops| ops.iter().any(|o| o["path"] == "/metadata/resourceVersion"))
}

#[derive(Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    rv: Option<String>,
    dry: bool,
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions {
        propagation: q.get("propagationPolicy").cloned(),
        grace: q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
        dry: dry_run(q)?,
        ..Default::default()
    };
    if !body.is_empty() {
        let b = decode(headers, body)?;
        if let Some(g) = b["gracePeriodSeconds"].as_i64() {
            o.grace = Some(g);
        }
        if let Some(p) = b["propagationPolicy"].as_str() {
            o.propagation = Some(p.into());
        }
        o.uid = b.pointer("/preconditions/uid").and_then(Value::as_str).map(String::from);
        o.rv = b.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(String::from);
        if b["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All")) {
            o.dry = true;
        }
    }
    if let Some(p) = &o.propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!("propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\"")));
        }
    }
    Ok(o)
}

/// Deletes one object: immediately, or by marking it when finalizers (or foreground/orphan
/// propagation) must run first. Returns the response body and whether it is the object.
fn delete_one(app: &App, t: &Target, name: &str, opts: &DeleteOptions) -> Result<Value, ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    let mut marked = false;
    let written = app.store.write(&t.rt.key(), ns, name, |cur| {
        let Some(cur) = cur else { return Err(ApiError::not_found(subject(t, name))) };
        if let Some(uid) = &opts.uid {
            let actual = meta::meta_str(cur, "uid").unwrap_or("");
            if actual != uid {
                return Err(ApiError::conflict(subject(t, name), &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}")));
            }
        }
        if let Some(rv) = &opts.rv {
            let actual = meta::meta_str(cur, "resourceVersion").unwrap_or("");
            if actual != rv {
                return Err(ApiError::conflict(subject(t, name), &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}")));
            }
        }
        let mut finalizers = meta::finalizers(cur);
        let extra = match opts.propagation.as_deref() {
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            _ => None,
        };
        let is_namespace = t.rt.kind == "Namespace" && t.rt.group.is_empty();
        if let Some(grace) = pod_grace(app, t, cur, opts.grace) {
            // A running Pod is deleted gracefully: the kubelet stops it, then removes the object.
            let mut next = cur.clone();
            let shorter = next["metadata"]["deletionGracePeriodSeconds"].as_i64().is_none_or(|g| grace < g);
            if shorter {
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|_| meta::now());
                next["metadata"]["deletionTimestamp"] = json!(at);
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
            marked = true;
            return Ok(if opts.dry || !shorter { Write::Keep } else { Write::Put(next) });
        }
        if finalizers.is_empty() && extra.is_none() && !is_namespace {
            return Ok(if opts.dry { Write::Keep } else { Write::Delete });
        }
        let mut next = cur.clone();
        if let Some(f) = extra {
            if !finalizers.iter().any(|x| x == f) {
                finalizers.push(f.into());
            }
            next["metadata"]["finalizers"] = json!(finalizers);
        }
        if next["metadata"].get("deletionTimestamp").is_none() {
            next["metadata"]["deletionTimestamp"] = json!(meta::now());
            next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            // Starting a deletion is a change of desired state: the generation moves on.
            if let Some(g) = next["metadata"]["generation"].as_i64() {
                next["metadata"]["generation"] = json!(g + 1);
            }
        }
        if is_namespace {
            next["status"]["phase"] = json!("Terminating");
        }
        marked = true;
        if opts.dry || !write::meaningfully_changed(cur, &next) {
            return Ok(Write::Keep);
        }
        Ok(Write::Put(next))
    })?;
    after_write(app, t);
    let obj = written.object.ok_or_else(|| ApiError::not_found(subject(t, name)))?;
    if marked || t.rt.kind == "Pod" {
        return Ok(present(t, &obj));
    }
    let mut details = json!({"name": name, "kind": t.rt.plural, "uid": meta::meta_str(&obj, "uid").unwrap_or("")});
    if !t.rt.group.is_empty() {
        details["group"] = json!(t.rt.group);
    }
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
}

/// The grace period for deleting a Pod that a kubelet is running, or None to delete at once.
fn pod_grace(app: &App, t: &Target, pod: &Value, requested: Option<i64>) -> Option<i64> {
    if t.rt.kind != "Pod" || !t.rt.group.is_empty() {
        return None;
    }
    let node = app.kubelet_node.read().ok()?.clone()?;
    if pod["spec"]["nodeName"].as_str() != Some(node.as_str()) {
        return None;
    }
    if matches!(pod["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed")) {
        return None;
    }
    let grace = requested.or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30);
    (grace > 0).then_some(grace)
}

/// Namespaces a real cluster refuses to delete.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

fn delete(
    app: &Arc<App>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if t.rt.kind == "Namespace" && t.rt.group.is_empty() && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError {
            details: Some(json!({"name": name, "kind": "namespaces"})),
            ..ApiError::forbidden(format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"))
        });
    }
    let opts = delete_options(q, headers, body)?;
    let out = delete_one(app, t, name, &opts)?;
    // A still-present object (finalizers pending) is 202 Accepted only for foreground/orphan in
    // some kinds; a real server answers 200 for custom resources.
    Ok(respond::ok(&out))
}

fn delete_collection(
    app: &Arc<App>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    // The namespaces storage has no collection delete upstream (and `default` and the system
    // namespaces must never go).
    if t.rt.group.is_empty() && t.rt.plural == "namespaces" {
        return Err(ApiError::method_not_allowed());
    }
    let opts = delete_options(q, headers, body)?;
    let labels =
        LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str), &t.rt.field_selectors)
        .map_err(ApiError::bad_request)?;
    let (items, _) = app.store.list(&t.rt.key(), t.namespace.as_deref());
    let mut deleted = Vec::new();
    for o in items.iter().filter(|o| labels.matches(o) && fields.matches(&field_view(&t.rt, o))) {
        let mut per = t.clone();
        per.namespace = meta::meta_str(o, "namespace").map(String::from);
        let name = meta::meta_str(o, "name").unwrap_or_default().to_string();
        match delete_one(app, &per, &name, &opts) {
            Ok(_) => deleted.push(present(t, o)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(respond::ok(&json!({
        "apiVersion": t.rt.api_version(&t.version),
        "kind": t.rt.list_kind,
        "metadata": {"resourceVersion": app.store.current_rv().to_string()},
        "items": deleted,
    })))
}

fn pod_logs(app: &App, t: &Target, name: &str, q: &Query) -> Result<Response, ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    if app.store.get(&t.rt.key(), ns, name).is_none() {
        return Err(ApiError::not_found(subject(t, name)));
    }
    let source = app.logs.read().ok().and_then(|l| l.clone());
    let Some(source) = source else {
        return Err(ApiError::bad_request(format!(
            "container logs for pod \"{name}\" are not available: no kubelet is running"
        )));
    };
    let body = source.logs(ns, name, q)?;
    let mut resp = Response::new(body);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// `pods/{name}/eviction`: no PodDisruptionBudgets exist here, so an eviction is a delete with the
/// Eviction's options.
fn evict(app: &App, t: &Target, name: &str, body: &Value) -> Result<Response, ApiError> {
    let o = &body["deleteOptions"];
    let opts = DeleteOptions {
        grace: o["gracePeriodSeconds"].as_i64(),
        propagation: o["propagationPolicy"].as_str().map(String::from),
        uid: o.pointer("/preconditions/uid").and_then(Value::as_str).map(String::from),
        rv: o.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(String::from),
        dry: o["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All")),
    };
    delete_one(app, t, name, &opts)?;
    Ok(respond::created(
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn bind(app: &App, t: &Target, name: &str, body: &Value) -> Result<Response, ApiError> {
    let node = body.pointer("/target/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let ns = t.namespace.as_deref().unwrap_or("");
    app.store.write(&t.rt.key(), ns, name, |cur| {
        let Some(cur) = cur else { return Err(ApiError::not_found(subject(t, name))) };
        if cur.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
            return Err(ApiError::conflict(subject(t, name), "pod is already assigned to a node"));
        }
        let mut next = cur.clone();
        next["spec"]["nodeName"] = json!(node);
        Ok(Write::Put(next))
    })?;
    Ok(respond::created(
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
