//! CRD validation rules (`x-kubernetes-validations`): each rule is a CEL expression evaluated with
//! `self` bound to the value of the schema node that declares it (and `oldSelf` to the same value
//! before an update, for transition rules), as kube-apiserver's apiextensions CEL validator does.
//!
//! Kept to the real server's behaviour where a client can see it: the node's own rules before its
//! children's; transition rules only where an old value correlates (object properties, map keys,
//! `listType: map` items by key, `listType: set` items by value); unchanged values are not
//! re-checked (ratcheting) unless the rule reads `oldSelf`; `reason` and `fieldPath` shape the cause;
//! the message is `message`, `messageExpression`'s result, or `failed rule: <rule>`.
//!
//! Not modelled: the cost budget (the real server refuses CRDs whose rules could cost too much),
//! refusing a CRD whose rule does not compile (here that rule fails every write instead),
//! `optionalOldSelf` (such rules are checked only on updates), Kubernetes' CEL library extensions
//! beyond the standard ones the `cel` crate has (e.g. `quantity`, `url`, `isSorted`), and timestamp or
//! duration typing of `format: date-time`/`duration` strings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use super::format::{self, Bad};
use super::node::{sorted_keys, Additional, Node};
use super::path;
use super::FieldError;

/// Evaluates every validation rule of `schema` against `new` (and `old`, on an update).
pub fn validate(new: &Value, old: Option<&Value>, schema: &Value) -> Vec<FieldError> {
    let mut cx = Walk { errs: Vec::new(), programs: HashMap::new() };
    walk(new, old, Node::new(schema), "", &mut cx);
    cx.errs
}

/// One validation: the errors so far, and each rule looked up once (a rule on a list's items would
/// otherwise be looked up again for every item).
struct Walk<'s> {
    errs: Vec<FieldError>,
    programs: HashMap<&'s str, Compiled>,
}

/// CEL's standard library, declared once per process: `Context::default()` declares every overload
/// again for each rule it evaluates (a tenth of the local cluster's time in `bench create`).
fn stdlib() -> Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

/// A rule compiled, or why it does not compile.
type Compiled = Arc<Result<cel::Program, String>>;

/// Rules compiled once per process, as kube-apiserver compiles a CRD's rules once when it is written
/// (parsing a rule took most of a Task write's time). Bounded: CRDs are written by admins, but a
/// stream of changing rules must not grow the cache without limit.
fn compiled(text: &str) -> Compiled {
    const MAX_CACHED: usize = 4096;
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().ok().and_then(|c| c.get(text).cloned()) {
        return p;
    }
    let p = Arc::new(compile(text));
    if let Ok(mut c) = cache.lock() {
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(text.to_string(), p.clone());
    }
    p
}

fn walk<'s>(new: &Value, old: Option<&Value>, node: Node<'s>, at: &str, cx: &mut Walk<'s>) {
    if new.is_null() {
        return;
    }
    for rule in node.list("x-kubernetes-validations") {
        if let Some(e) = check_rule(&mut cx.programs, rule, new, old, node, at) {
            cx.errs.push(e);
        }
    }
    match new {
        Value::Object(m) => {
            if let Some(props) = node.properties() {
                for k in sorted_keys(m) {
                    if let Some(sub) = props.get(k.as_str()) {
                        walk(
                            &m[k.as_str()],
                            old.and_then(|o| o.get(k.as_str())),
                            Node::new(sub),
                            &path::child(at, k),
                            cx,
                        );
                    }
                }
            } else if let Additional::Schema(sub) = node.additional() {
                for k in sorted_keys(m) {
                    walk(&m[k.as_str()], old.and_then(|o| o.get(k.as_str())), Node::new(sub), &path::key(at, k), cx);
                }
            }
        }
        Value::Array(items) => {
            let Some(sub) = node.items() else { return };
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let before = old_items.and_then(|olds| correlate(node, item, olds));
                walk(item, before, Node::new(sub), &path::index(at, i), cx);
            }
        }
        _ => {}
    }
}

/// The old item a new list item corresponds to: by key for map lists, by value for sets; atomic
/// lists do not correlate.
fn correlate<'a>(node: Node<'_>, item: &Value, olds: &'a [Value]) -> Option<&'a Value> {
    match node.str("x-kubernetes-list-type") {
        Some("map") => {
            let keys: Vec<&str> = node.list("x-kubernetes-list-map-keys").iter().filter_map(Value::as_str).collect();
            olds.iter().find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
        }
        Some("set") => olds.iter().find(|o| *o == item),
        _ => None,
    }
}

/// One rule on one value: `None` when it holds (or does not apply).
fn check_rule<'s>(
    programs: &mut HashMap<&'s str, Compiled>,
    rule: &'s Value,
    new: &Value,
    old: Option<&Value>,
    node: Node<'s>,
    at: &str,
) -> Option<FieldError> {
    let text = rule.get("rule").and_then(Value::as_str)?;
    let own = if at.is_empty() { "<nil>".to_string() } else { at.to_string() };
    let program = match &**programs.entry(text).or_insert_with(|| compiled(text)) {
        Ok(p) => p,
        // Upstream refuses such a CRD when it is written; here the rule fails every write instead
        // of passing silently.
        Err(why) => return Some(format::invalid(&own, &Bad::Str(node.type_name().to_string()), why)),
    };
    let transition = program.references().has_variable("oldSelf");
    if transition && old.is_none() {
        return None;
    }
    if !transition && old == Some(new) {
        return None; // ratcheting: an unchanged value is not judged again
    }
    let mut ctx = cel::Context::with_env(stdlib());
    let bound = ctx.add_variable("self", new).and_then(|()| match old.filter(|_| transition) {
        Some(o) => ctx.add_variable("oldSelf", o),
        None => Ok(()),
    });
    if let Err(e) = bound {
        let why = format!("the value cannot be given to the rule: {e}");
        return Some(format::invalid(&own, &Bad::Str(node.type_name().to_string()), &why));
    }
    let detail = match run(program, &ctx) {
        Ok(cel::Value::Bool(true)) => return None,
        Ok(cel::Value::Bool(false)) => message(rule, text, &ctx),
        // An evaluation error is reported at the rule's own node (not `fieldPath`), with the node's
        // type as the value, naming the rule by its message when it has one.
        other => {
            let why = match other {
                Err(e) => lower_first(&e),
                Ok(_) => "rule did not evaluate to a boolean".to_string(),
            };
            let named = rule.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty());
            let named = named.unwrap_or(text.trim());
            let bad = Bad::Str(node.type_name().to_string());
            return Some(format::invalid(&own, &bad, &format!("{why} evaluating rule: {named}")));
        }
    };
    let field = match rule.get("fieldPath").and_then(Value::as_str) {
        Some(fp) => join_field_path(at, fp),
        None => at.to_string(),
    };
    let field = if field.is_empty() { "<nil>".to_string() } else { field };
    Some(match rule.get("reason").and_then(Value::as_str) {
        Some("FieldValueRequired") => format::required(&field, &detail),
        Some("FieldValueForbidden") => format::forbidden(&field, &detail),
        Some("FieldValueDuplicate") => format::duplicate(&field, &Bad::of(new)),
        // A scalar is quoted as the value; an object or a list is left out of the message.
        _ => match new {
            Value::Object(_) | Value::Array(_) => {
                FieldError { reason: "FieldValueInvalid", field, message: format!("Invalid value: {detail}") }
            }
            scalar => format::invalid(&field, &Bad::of(scalar), &detail),
        },
    })
}

/// cel-go's errors start in lower case ("no such key: x"); the `cel` crate's in upper case.
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The message of a failed rule: `messageExpression` when it yields a non-empty string, else
/// `message`, else `failed rule: <rule>`.
fn message(rule: &Value, text: &str, ctx: &cel::Context<'_, '_>) -> String {
    if let Some(expr) = rule.get("messageExpression").and_then(Value::as_str) {
        if let Some(cel::Value::String(s)) = compiled(expr).as_ref().as_ref().ok().and_then(|p| run(p, ctx).ok()) {
            // Upstream falls back to `message` for an empty, multi-line or over-long result.
            let s = s.trim();
            if !s.is_empty() && !s.contains('\n') && s.len() <= MESSAGE_EXPRESSION_MAX {
                return s.to_string();
            }
        }
    }
    match rule.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => format!("failed rule: {}", text.trim()),
    }
}

/// `fieldPath` (`.a.b`, `.a['k']`, `.a[0]`) appended to the rule's own path.
fn join_field_path(at: &str, fp: &str) -> String {
    let mut out = at.to_string();
    let mut rest = fp;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out = path::child(&out, &r[..end]);
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']").unwrap_or(r.len());
            out = path::key(&out, &r[..end]);
            rest = r.get(end + 2..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            out = format!("{out}[{}]", &r[..end]);
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            break;
        }
    }
    out
}

/// Longest `messageExpression` result used as the message (upstream's limit).
const MESSAGE_EXPRESSION_MAX: usize = 5 * 1024;

/// Most operator characters a rule may have: the `cel` crate's parser recurses once per chained
/// operator and a few thousand overflow a thread's stack (no `catch_unwind` survives that), so a
/// hostile CRD could bring the local cluster down. Real rules use a few dozen.
const MAX_OPERATORS: usize = 500;

/// Compiles a rule; the parser can panic on some malformed input, which is "does not compile".
fn compile(text: &str) -> Result<cel::Program, String> {
    if text.bytes().filter(|b| b"+-*/%!<>=&|?:.[(,".contains(b)).count() > MAX_OPERATORS {
        return Err(format!("compilation failed: more than {MAX_OPERATORS} operators"));
    }
    match std::panic::catch_unwind(|| cel::Program::compile(text)) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(format!("compilation failed: {e}")),
        Err(_) => Err("compilation failed: the rule does not parse".to_string()),
    }
}

fn run(p: &cel::Program, ctx: &cel::Context<'_, '_>) -> Result<cel::Value, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.execute(ctx))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the rule could not be evaluated".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"},
            {"rule": "!has(self.forbidden)", "reason": "FieldValueForbidden", "message": "forbidden is not allowed"}
        ],
        "properties": {
            "min": {"type": "integer"}, "max": {"type": "integer"}, "forbidden": {"type": "string"},
            "queue": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "queue is immutable"}]},
            "env": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                "x-kubernetes-validations": [{"rule": "self.all(e, !e.name.startsWith('LD_'))"}]}
        }}}})
    }

    #[test]
    fn failed_rules_name_their_field_with_message_reason_and_type() {
        let obj = json!({"spec": {"min": 3, "max": 1, "forbidden": "x", "env": [{"name": "LD_PRELOAD"}]}});
        let errs = validate(&obj, None, &schema());
        let got: Vec<(&str, &str, &str)> =
            errs.iter().map(|e| (e.reason, e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("FieldValueInvalid", "spec.min", "Invalid value: min must not exceed max"),
                ("FieldValueForbidden", "spec", "Forbidden: forbidden is not allowed"),
                ("FieldValueInvalid", "spec.env", "Invalid value: failed rule: self.all(e, !e.name.startsWith('LD_'))"),
            ]
        );
    }

    #[test]
    fn transition_rules_apply_to_updates_and_unchanged_values_are_not_judged_again() {
        let old = json!({"spec": {"queue": "a", "min": 5, "max": 1}});
        let created = validate(&json!({"spec": {"queue": "a", "min": 1, "max": 2}}), None, &schema());
        assert!(created.is_empty(), "created: no oldSelf, {created:?}");
        let moved = validate(&json!({"spec": {"queue": "b", "min": 5, "max": 1}}), Some(&old), &schema());
        // spec changed, so its own rule (min <= max) is judged again; queue's transition rule fails.
        let messages: Vec<&str> = moved.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["Invalid value: min must not exceed max", "Invalid value: \"b\": queue is immutable"]);
        assert!(validate(&old, Some(&old), &schema()).is_empty(), "an unchanged invalid spec ratchets");
    }

    #[test]
    fn a_rule_that_does_not_compile_fails_instead_of_passing_and_a_huge_one_is_not_parsed() {
        let bad = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==", "message": "m"}]});
        let errs = validate(&json!({"a": 1}), None, &bad);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("compilation failed"), "{errs:?}");
        // 2,000 chained additions overflow the parser's stack; they must be refused before parsing.
        let huge = format!("1{} > 0", "+1".repeat(2000));
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": huge}]});
        let errs = validate(&json!({}), None, &schema);
        assert!(errs[0].message.contains("more than 500 operators"), "{errs:?}");
    }

    #[test]
    fn field_paths_join_children_keys_and_indexes() {
        assert_eq!(join_field_path("spec", ".a.b"), "spec.a.b");
        assert_eq!(join_field_path("spec", ".labels['x.y/z']"), "spec.labels[x.y/z]");
        assert_eq!(join_field_path("", ".items[2].name"), "items[2].name");
    }
}
