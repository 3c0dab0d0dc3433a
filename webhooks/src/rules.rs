//! A trigger's rules, compiled once per trigger generation: which rule a delivery matches (first wins)
//! and the params, concurrency key and Task it makes. CEL sees `body` (the JSON payload), `headers`
//! (lowercase names → values) and `event`. A rule that fails to evaluate refuses the delivery with the
//! reason; it never takes the server down or makes a Task from half-evaluated params.

use std::collections::BTreeMap;

use serde_json::Value;

/// A rule as a trigger writes it (the API server fills this from the TaskTrigger).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// The event names it takes (empty: any).
    pub events: Vec<String>,
    /// A CEL expression that must be true.
    pub filter: Option<String>,
    /// Param name → CEL expression.
    pub params: BTreeMap<String, String>,
    /// A CEL expression naming the concurrency key.
    pub concurrency_key: Option<String>,
}

/// How large expressions and param values may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest expression, in bytes.
    pub expression: usize,
    /// Longest param value or key, in bytes.
    pub value: usize,
}

/// A rule, its expressions compiled.
pub struct Compiled {
    name: String,
    events: Vec<String>,
    limits: Limits,
    filter: Option<cel::Program>,
    params: Vec<(String, cel::Program)>,
    concurrency: Option<cel::Program>,
}

/// An expression that does not compile (the trigger is not Ready, and says which).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule:?}: {field}: {message}")]
pub struct CompileError {
    /// The rule.
    pub rule: String,
    /// `filter`, `params.<name>` or `concurrency.key`.
    pub field: String,
    /// The CEL parser's message.
    pub message: String,
}

/// What the rules make of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Rule `index` matched; its params and concurrency key are evaluated.
    Matched {
        /// Which rule.
        index: usize,
        /// The Task's params.
        params: BTreeMap<String, String>,
        /// The concurrency key, when the rule has one.
        concurrency_key: Option<String>,
    },
    /// No rule matched (acknowledged and ignored).
    NoMatch,
    /// A rule's expression failed on this delivery (refused, with the reason in the delivery log).
    Failed {
        /// Which rule.
        rule: String,
        /// Why.
        reason: String,
    },
}

/// Most operators an expression may have (far below the recursion that overflows a stack).
const MAX_OPERATORS: usize = 256;
/// Most comprehensions (map, filter, all, exists, exists_one) an expression may have.
const MAX_COMPREHENSIONS: usize = 8;

/// The deepest nesting of comprehensions under `e` (`depth` above it) and how many there are.
fn comprehensions(e: &cel::IdedExpr, depth: usize) -> (usize, usize) {
    use cel::common::ast::{EntryExpr, Expr};
    let mut children: Vec<&cel::IdedExpr> = Vec::new();
    let here = match &e.expr {
        Expr::Comprehension(c) => {
            children.extend([&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]);
            1
        }
        Expr::Call(c) => {
            children.extend(c.target.as_deref());
            children.extend(c.args.iter());
            0
        }
        Expr::List(l) => {
            children.extend(l.elements.iter());
            0
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    children.extend([&me.key, &me.value]);
                }
            }
            0
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    children.push(&f.value);
                }
            }
            0
        }
        Expr::Select(s) => {
            children.push(&s.operand);
            0
        }
        _ => 0,
    };
    let (mut deepest, mut total) = (depth + here, here);
    for c in children {
        let (d, t) = comprehensions(c, depth + here);
        deepest = deepest.max(d);
        total += t;
    }
    (deepest, total)
}

/// Compiles every rule of a trigger.
pub fn compile(rules: &[Rule], limits: Limits) -> Result<Vec<Compiled>, CompileError> {
    rules
        .iter()
        .map(|r| {
            let program = |field: String, expr: &str| {
                let refuse =
                    |message: String| Err(CompileError { rule: r.name.clone(), field: field.clone(), message });
                if expr.len() > limits.expression {
                    return refuse(format!("longer than {} characters", limits.expression));
                }
                // The parser and interpreter recurse once per chained operator: a few thousand
                // (`1+1+1...`) overflow a thread's stack, which no `catch_unwind` survives. Counted
                // before parsing; real rules use a few dozen.
                let operators = expr.bytes().filter(|b| b"+-*/%!<>=&|?:.[(,".contains(b)).count();
                if operators > MAX_OPERATORS {
                    return refuse(format!("more than {MAX_OPERATORS} operators: simplify it or split it into params"));
                }
                // The parser can panic on some malformed input; that is a compile error, not a crash.
                let program = match std::panic::catch_unwind(|| cel::Program::compile(expr)) {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return refuse(e.to_string()),
                    Err(_) => return refuse("does not parse".into()),
                };
                // A comprehension inside a comprehension costs the product of two list sizes, and
                // the lists come from the sender: quadratic (or worse) work per delivery.
                let (nested, total) = comprehensions(program.expression(), 0);
                if nested > 1 {
                    return refuse(
                        "nested comprehensions (map/filter/all/exists inside another) are not allowed".into(),
                    );
                }
                if total > MAX_COMPREHENSIONS {
                    return refuse(format!("more than {MAX_COMPREHENSIONS} comprehensions"));
                }
                Ok(program)
            };
            let filter = r.filter.as_deref().map(|f| program("filter".into(), f)).transpose()?;
            let params = r
                .params
                .iter()
                .map(|(k, e)| Ok((k.clone(), program(format!("params.{k}"), e)?)))
                .collect::<Result<_, CompileError>>()?;
            let concurrency = r.concurrency_key.as_deref().map(|k| program("concurrency.key".into(), k)).transpose()?;
            Ok(Compiled { name: r.name.clone(), events: r.events.clone(), limits, filter, params, concurrency })
        })
        .collect()
}

/// The first rule that takes the delivery.
pub fn evaluate(rules: &[Compiled], event: &str, body: &Value, headers: &BTreeMap<String, String>) -> Outcome {
    let mut ctx = cel::Context::default();
    let vars = [("body", body.clone()), ("headers", serde_json::json!(headers)), ("event", Value::from(event))];
    for (name, value) in vars {
        if let Err(e) = ctx.add_variable(name, value) {
            return Outcome::Failed { rule: String::new(), reason: format!("the delivery cannot be read: {e}") };
        }
    }
    for (index, c) in rules.iter().enumerate() {
        if !c.events.is_empty() && !c.events.iter().any(|e| e == event) {
            continue;
        }
        let failed =
            |what: &str, why: String| Outcome::Failed { rule: c.name.clone(), reason: format!("{what}: {why}") };
        if let Some(f) = &c.filter {
            match run(f, &ctx) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => continue,
                Ok(other) => return failed("filter", format!("is {}, not a bool", kind(&other))),
                Err(e) => return failed("filter", e),
            }
        }
        let mut params = BTreeMap::new();
        for (name, p) in &c.params {
            match run(p, &ctx).and_then(|v| scalar(&v, c.limits.value)) {
                Ok(v) => {
                    params.insert(name.clone(), v);
                }
                Err(e) => return failed(&format!("params.{name}"), e),
            }
        }
        let concurrency_key = match &c.concurrency {
            Some(p) => match run(p, &ctx).and_then(|v| scalar(&v, c.limits.value)) {
                Ok(k) => Some(k),
                Err(e) => return failed("concurrency.key", e),
            },
            None => None,
        };
        return Outcome::Matched { index, params, concurrency_key };
    }
    Outcome::NoMatch
}

/// Runs a program; a panic inside the interpreter is an evaluation error.
fn run(p: &cel::Program, ctx: &cel::Context) -> Result<cel::Value, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.execute(ctx))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the expression could not be evaluated".into()),
    }
}

/// A scalar CEL value as a param's text (at most `max` bytes).
fn scalar(v: &cel::Value, max: usize) -> Result<String, String> {
    let text = match v {
        cel::Value::String(s) => s.to_string(),
        cel::Value::Int(i) => i.to_string(),
        cel::Value::UInt(u) => u.to_string(),
        cel::Value::Float(f) => f.to_string(),
        cel::Value::Bool(b) => b.to_string(),
        cel::Value::Null => String::new(),
        other => return Err(format!("is {}, not a string, number or bool", kind(other))),
    };
    if text.len() > max {
        return Err(format!("is longer than {max} bytes"));
    }
    Ok(text)
}

fn kind(v: &cel::Value) -> &'static str {
    match v {
        cel::Value::List(_) => "a list",
        cel::Value::Map(_) => "a map",
        cel::Value::Bytes(_) => "bytes",
        _ => "not a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits { expression: 4096, value: 4096 };

    fn rule(v: Value) -> Rule {
        let s = |k: &str| v[k].as_str().map(str::to_string);
        let strings = |x: &Value| {
            x.as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
                .unwrap_or_default()
        };
        Rule {
            name: s("name").unwrap_or_else(|| "r".into()),
            events: v["events"]
                .as_array()
                .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
            filter: s("filter"),
            params: strings(&v["params"]),
            concurrency_key: v["concurrency"]["key"].as_str().map(str::to_string),
        }
    }

    fn compile(rules: &[Rule]) -> Result<Vec<Compiled>, CompileError> {
        super::compile(rules, LIMITS)
    }

    fn push() -> Value {
        json!({"ref": "refs/heads/main", "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "repository": {"full_name": "acme/app", "id": 1296269}, "commits": [{"id": "a"}, {"id": "b"}]})
    }

    #[test]
    fn the_first_matching_rule_wins_and_its_params_are_evaluated() {
        let rules = compile(&[
            rule(json!({"name": "tags", "events": ["push"], "filter": "body.ref.startsWith('refs/tags/')"})),
            rule(json!({"name": "branch-push", "events": ["push"], "filter": "body.ref.startsWith('refs/heads/')",
                "params": {"repo": "body.repository.full_name", "sha": "body.after", "commits": "size(body.commits)", "id": "body.repository.id"}})),
        ])
        .unwrap();
        let got = evaluate(&rules, "push", &push(), &BTreeMap::new());
        let Outcome::Matched { index, params, concurrency_key } = got else { panic!("{got:?}") };
        assert_eq!((index, concurrency_key), (1, None));
        assert_eq!(params["repo"], "acme/app");
        assert_eq!(params["sha"], "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!((params["commits"].as_str(), params["id"].as_str()), ("2", "1296269"));
    }

    #[test]
    fn events_headers_and_no_match() {
        let rules =
            compile(&[rule(json!({"events": ["pull_request"], "filter": "headers['x-github-hook-id'] == '42'"}))])
                .unwrap();
        let headers = BTreeMap::from([("x-github-hook-id".to_string(), "42".to_string())]);
        assert_eq!(evaluate(&rules, "push", &push(), &headers), Outcome::NoMatch, "another event");
        assert!(matches!(evaluate(&rules, "pull_request", &push(), &headers), Outcome::Matched { .. }));
        let any = compile(&[rule(json!({"filter": "event == 'ping'"}))]).unwrap();
        assert!(
            matches!(evaluate(&any, "ping", &json!({}), &BTreeMap::new()), Outcome::Matched { .. }),
            "no events: any"
        );
    }

    #[test]
    fn an_expression_that_fails_on_a_delivery_refuses_it_with_the_reason() {
        let missing = compile(&[rule(json!({"filter": "body.pull_request.number > 0"}))]).unwrap();
        let Outcome::Failed { rule: which, reason } = evaluate(&missing, "push", &push(), &BTreeMap::new()) else {
            panic!()
        };
        assert_eq!(which, "r");
        assert!(reason.starts_with("filter:"), "{reason}");
        let not_bool = compile(&[rule(json!({"filter": "body.ref"}))]).unwrap();
        assert!(matches!(evaluate(&not_bool, "push", &push(), &BTreeMap::new()), Outcome::Failed { .. }));
        let list_param = compile(&[rule(json!({"params": {"c": "body.commits"}}))]).unwrap();
        let Outcome::Failed { reason, .. } = evaluate(&list_param, "push", &push(), &BTreeMap::new()) else { panic!() };
        assert!(reason.contains("params.c") && reason.contains("a list"), "{reason}");
    }

    #[test]
    fn expressions_that_do_not_compile_name_their_rule_and_field() {
        let e = compile(&[rule(json!({"name": "bad", "params": {"x": "body.ref.("}}))]).err().unwrap();
        assert_eq!((e.rule.as_str(), e.field.as_str()), ("bad", "params.x"));
        let e = compile(&[rule(json!({"concurrency": {"key": "))"}}))]).err().unwrap();
        assert_eq!(e.field, "concurrency.key");
    }

    #[test]
    fn expressions_that_could_exhaust_the_stack_or_the_cpu_are_refused_at_compile_time() {
        // 2,000 chained additions overflow a 2 MiB stack in the parser: refused before parsing.
        let deep = format!("1{}", "+1".repeat(2000));
        let e = compile(&[rule(json!({"filter": deep}))]).err().unwrap();
        assert!(e.message.contains("operators"), "{e}");
        let nested = "body.commits.all(a, body.commits.all(b, a.id != b.id))";
        let e = compile(&[rule(json!({"filter": nested}))]).err().unwrap();
        assert!(e.message.contains("nested comprehensions"), "{e}");
        let many = (0..9).map(|_| "body.commits.exists(c, c.id == 'a')").collect::<Vec<_>>().join(" || ");
        assert!(compile(&[rule(json!({"filter": many}))]).is_err());
        // One level, a few times, is fine.
        let fine = "body.commits.exists(c, c.id == 'a') && size(body.commits.filter(c, c.id != 'b')) > 0";
        assert!(compile(&[rule(json!({"filter": fine}))]).is_ok());
    }

    #[test]
    fn a_concurrency_key_is_evaluated_like_a_param() {
        let rules =
            compile(&[rule(json!({"concurrency": {"key": "body.repository.full_name + '#' + body.ref"}}))]).unwrap();
        let Outcome::Matched { concurrency_key, .. } = evaluate(&rules, "push", &push(), &BTreeMap::new()) else {
            panic!()
        };
        assert_eq!(concurrency_key.as_deref(), Some("acme/app#refs/heads/main"));
    }
}
