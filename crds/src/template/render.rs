//! Checking a template, checking the params a Task gives it, and rendering the Task: pure, shared by
//! the operator (which renders) and the API server (which refuses bad params before creating).

use std::collections::BTreeMap;

use super::{ParamType, RenderedTask, TemplateBody, TemplateKind, TemplateParam, TemplateResolution, MAX_PARAM_VALUE};
use crate::task::limits::{self, dns_label};
use crate::{TaskEnv, TaskSpec};

/// What is wrong with one param a Task gave (or failed to give).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamProblem {
    /// The param's name.
    pub param: String,
    /// What is wrong, e.g. `must be an integer, not "x"`.
    pub message: String,
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "param {:?} {}", self.param, self.message)
    }
}

/// Why a Task could not be rendered from its template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template itself is wrong (its owner must fix it).
    #[error("the template is invalid: {}", .0.join("; "))]
    InvalidTemplate(Vec<String>),
    /// The Task's params do not fit the template (the Task's author must fix them).
    #[error("{}", join(.0))]
    InvalidParams(Vec<ParamProblem>),
}

fn join(problems: &[ParamProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// One piece of a template string: literal text or a parameter reference.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(String),
    Param(&'a str),
}

const OPEN: &str = "$(params.";

/// Splits `s` at its `$(params.NAME)` references (`$$(` is a literal `$(`; any other `$(` is text,
/// so shell command substitution in a script stays as written).
fn pieces(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$(") {
            text.push_str("$(");
            rest = after;
        } else if let Some(after) = tail.strip_prefix(OPEN) {
            let Some(end) = after.find(')') else { return Err(format!("{s:?} has an unclosed $(params.")) };
            let name = &after[..end];
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("{s:?} refers to {name:?}, which is not a param name"));
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Param(name));
            rest = &after[end + 1..];
        } else {
            text.push('$');
            rest = &tail[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() || out.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Where a template string sits, and what references it may hold there.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// A reference may be a whole value, or embedded where the param allows it.
    Value,
    /// Only a whole-value reference (a credential name).
    Whole,
}

/// The template strings a template has, by field path.
fn strings(body: &TemplateBody) -> Vec<(String, &str, Place)> {
    let t = &body.task;
    let mut out = Vec::new();
    if let Some(i) = &t.image {
        out.push(("task.image".to_string(), i.as_str(), Place::Value));
    }
    out.extend(t.command.iter().enumerate().map(|(i, s)| (format!("task.command[{i}]"), s.as_str(), Place::Value)));
    out.extend(t.args.iter().enumerate().map(|(i, s)| (format!("task.args[{i}]"), s.as_str(), Place::Value)));
    out.extend(t.env.iter().map(|e| (format!("task.env[{}]", e.name), e.value.as_str(), Place::Value)));
    out.extend(
        t.credentials.iter().enumerate().map(|(i, s)| (format!("task.credentials[{i}]"), s.as_str(), Place::Whole)),
    );
    out
}

/// Everything wrong with a template, each a sentence naming the field (empty: it is valid).
pub fn check(body: &TemplateBody) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for p in &body.params {
        if !seen.insert(p.name.as_str()) {
            problems.push(format!("param {:?} is declared twice", p.name));
        }
        problems.extend(declaration_problems(p).into_iter().map(|m| format!("param {:?}: {m}", p.name)));
    }
    let declared: BTreeMap<&str, &TemplateParam> = body.params.iter().map(|p| (p.name.as_str(), p)).collect();
    for (field, s, place) in strings(body) {
        let parts = match pieces(s) {
            Ok(parts) => parts,
            Err(e) => {
                problems.push(format!("{field}: {e}"));
                continue;
            }
        };
        let whole = parts.len() == 1;
        for part in &parts {
            let Piece::Param(name) = part else { continue };
            match declared.get(name) {
                None => problems.push(format!("{field} refers to $(params.{name}), which is not declared")),
                Some(_) if place == Place::Whole && !whole => problems.push(format!(
                    "{field}: a credential is a whole $(params.{name}), never part of a longer name"
                )),
                Some(p) if !whole && !p.embed => problems.push(format!(
                    "{field} splices $(params.{name}) into a longer string: declare the param `embed: true` (with a pattern) to allow that"
                )),
                Some(_) => {}
            }
        }
    }
    for e in &body.task.env {
        if e.name == "HOME" || e.name.starts_with("EPHEMERA_") || e.name.starts_with("LD_") {
            problems.push(format!("task.env[{}]: HOME, EPHEMERA_* and LD_* are reserved", e.name));
        }
    }
    // Params reach the command as EPHEMERA_PARAM_<NAME in upper case>: two must not meet there.
    let mut upper: BTreeMap<String, &str> = BTreeMap::new();
    for p in &body.params {
        let first = *upper.entry(p.name.to_ascii_uppercase()).or_insert(p.name.as_str());
        if first != p.name {
            problems.push(format!(
                "param {:?} differs from another only in case (both would be EPHEMERA_PARAM_{})",
                p.name,
                p.name.to_ascii_uppercase()
            ));
        }
    }
    if body.task.command.is_empty() {
        problems.push("task.command is empty".into());
    }
    problems
}

/// What is wrong with one declaration (its type's attributes and its default).
fn declaration_problems(p: &TemplateParam) -> Vec<String> {
    let mut out = Vec::new();
    let t = p.type_;
    if (t == ParamType::Enum) == p.values.is_empty() {
        out.push("an enum param lists its values, and only an enum param has values".into());
    }
    if p.pattern.is_some() && t != ParamType::String {
        out.push("pattern applies to string params only".into());
    }
    if (p.minimum.is_some() || p.maximum.is_some()) && t != ParamType::Integer {
        out.push("minimum and maximum apply to integer params only".into());
    }
    if let (Some(lo), Some(hi)) = (p.minimum, p.maximum) {
        if lo > hi {
            out.push(format!("minimum {lo} is above maximum {hi}"));
        }
    }
    if p.embed && t == ParamType::String && p.pattern.is_none() {
        out.push("a string param declared embed gives a pattern (it is spliced into a larger string)".into());
    }
    if let Some(pattern) = &p.pattern {
        if let Err(e) = compile(pattern) {
            out.push(format!("pattern {pattern:?} is not a regular expression: {e}"));
        }
    }
    if p.required && p.default.is_some() {
        out.push("a required param has no default".into());
    }
    if let Some(d) = &p.default {
        if let Err(m) = value(p, d) {
            out.push(format!("the default {m}"));
        }
    }
    out
}

fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    // Anchored: the whole value must match. Bounded: a template cannot make the operator build a huge
    // automaton (the regex crate matches in linear time, so there is no backtracking blow-up).
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build()
}

/// The value a param takes from `given` (its canonical form), or what is wrong with it.
fn value(p: &TemplateParam, given: &str) -> Result<String, String> {
    if given.len() > MAX_PARAM_VALUE {
        return Err(format!("is longer than {MAX_PARAM_VALUE} bytes"));
    }
    if given.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    match p.type_ {
        ParamType::String => match p.pattern.as_deref().map(compile) {
            Some(Ok(re)) if !re.is_match(given) => {
                Err(format!("{given:?} does not match the pattern {:?}", p.pattern.as_deref().unwrap_or_default()))
            }
            Some(Err(_)) => Err("cannot be checked: the template's pattern is invalid".into()),
            _ => Ok(given.to_string()),
        },
        ParamType::Integer => {
            let n: i64 = given.trim().parse().map_err(|_| format!("must be an integer, not {given:?}"))?;
            match (p.minimum, p.maximum) {
                (Some(lo), _) if n < lo => Err(format!("must be at least {lo}, not {n}")),
                (_, Some(hi)) if n > hi => Err(format!("must be at most {hi}, not {n}")),
                _ => Ok(n.to_string()),
            }
        }
        ParamType::Boolean => match given {
            "true" | "false" => Ok(given.to_string()),
            _ => Err(format!("must be true or false, not {given:?}")),
        },
        ParamType::Enum if p.values.iter().any(|v| v == given) => Ok(given.to_string()),
        ParamType::Enum => Err(format!("must be one of {}, not {given:?}", p.values.join(", "))),
    }
}

/// The params a Task gives a template, checked and completed with the defaults: every param that has
/// a value, by name, or every problem (unknown, missing, wrong value), each naming its param.
pub fn params(
    body: &TemplateBody,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<ParamProblem>> {
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for name in given.keys().filter(|n| !body.params.iter().any(|p| &p.name == *n)) {
        let known: Vec<&str> = body.params.iter().map(|p| p.name.as_str()).collect();
        let message = match known.is_empty() {
            true => "is not a param of the template (it takes none)".to_string(),
            false => format!("is not a param of the template (it takes {})", known.join(", ")),
        };
        problems.push(ParamProblem { param: name.clone(), message });
    }
    for p in &body.params {
        let problem = |message: String| ParamProblem { param: p.name.clone(), message };
        match (given.get(&p.name), &p.default) {
            (Some(v), _) => match value(p, v) {
                Ok(v) => {
                    out.insert(p.name.clone(), v);
                }
                Err(m) => problems.push(problem(m)),
            },
            (None, Some(d)) => {
                out.insert(p.name.clone(), d.clone());
            }
            (None, None) if p.required => problems.push(problem("is required".into())),
            (None, None) => {}
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `s` with its references replaced by `values` (a param without a value becomes empty); the params
/// it used.
fn substitute<'a>(s: &'a str, values: &BTreeMap<String, String>) -> (String, Vec<&'a str>) {
    let mut out = String::new();
    let mut used = Vec::new();
    // `check` has parsed every template string already.
    for piece in pieces(s).unwrap_or_default() {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Param(name) => {
                out.push_str(values.get(name).map(String::as_str).unwrap_or_default());
                used.push(name);
            }
        }
    }
    (out, used)
}

/// Renders the Task `spec` asks for from the template `body` (`kind`/`name`, at `uid`/`generation`).
pub fn render(
    kind: TemplateKind,
    name: &str,
    uid: &str,
    generation: i64,
    body: &TemplateBody,
    spec: &TaskSpec,
) -> Result<TemplateResolution, RenderError> {
    let problems = check(body);
    if !problems.is_empty() {
        return Err(RenderError::InvalidTemplate(problems));
    }
    let values = params(body, &spec.params).map_err(RenderError::InvalidParams)?;
    let t = &body.task;
    let mut problems = Vec::new();
    // A value that makes a rendered field invalid is the param's problem, named as such.
    let mut blame = |used: &[&str], message: String| {
        let param = used.first().map(ToString::to_string).unwrap_or_default();
        problems.push(ParamProblem { param, message });
    };
    let image = t.image.as_deref().map(|i| {
        let (image, used) = substitute(i, &values);
        let ok = !image.is_empty() && image.len() <= limits::IMAGE_MAX && image.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            blame(&used, format!("makes the image {image:?}, which is not an image reference"));
        }
        image
    });
    let mut command = Vec::with_capacity(t.command.len());
    for (i, word) in t.command.iter().enumerate() {
        let (word, used) = substitute(word, &values);
        if i == 0 && word.is_empty() {
            blame(&used, "makes the program (command[0]) empty".into());
        }
        command.push(word);
    }
    let args = t.args.iter().map(|a| substitute(a, &values).0).collect();
    let env = t.env.iter().map(|e| TaskEnv { name: e.name.clone(), value: substitute(&e.value, &values).0 }).collect();
    let mut credentials = Vec::new();
    for c in &t.credentials {
        let (name, used) = substitute(c, &values);
        match name.as_str() {
            // An optional credential param left empty names no credential.
            "" if !used.is_empty() => {}
            n if dns_label(n) => {
                if !credentials.contains(&name) {
                    credentials.push(name);
                }
            }
            n => blame(&used, format!("{n:?} is not a credential name (lowercase letters, digits and '-')")),
        }
    }
    if !problems.is_empty() {
        return Err(RenderError::InvalidParams(problems));
    }
    let task = RenderedTask {
        image,
        command,
        args,
        env,
        params: values,
        credentials,
        queue: t.queue.clone().unwrap_or_else(|| "default".into()),
        priority: if spec.priority != 0 { spec.priority } else { t.priority.unwrap_or(0) },
        timeout_seconds: t.timeout_seconds.unwrap_or(limits::TIMEOUT_DEFAULT),
        retry: t.retry.clone().unwrap_or_default(),
        resources: t.resources.clone(),
    };
    Ok(TemplateResolution { kind, name: name.to_string(), uid: uid.to_string(), generation, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateTask;

    fn param(name: &str, type_: ParamType) -> TemplateParam {
        TemplateParam { name: name.into(), type_, ..Default::default() }
    }

    fn deploy() -> TemplateBody {
        TemplateBody {
            description: "deploy".into(),
            params: vec![
                TemplateParam { required: true, ..param("org", ParamType::String) },
                TemplateParam {
                    values: vec!["NoTestRun".into(), "RunLocalTests".into()],
                    default: Some("RunLocalTests".into()),
                    ..param("testLevel", ParamType::Enum)
                },
                TemplateParam {
                    minimum: Some(1),
                    maximum: Some(120),
                    default: Some("33".into()),
                    ..param("wait", ParamType::Integer)
                },
                TemplateParam { default: Some("false".into()), ..param("dryRun", ParamType::Boolean) },
                TemplateParam {
                    pattern: Some("[A-Za-z0-9_./-]+".into()),
                    embed: true,
                    ..param("dir", ParamType::String)
                },
            ],
            task: TemplateTask {
                image: Some("registry.example/sf:2".into()),
                command: vec!["sf".into(), "project".into(), "deploy".into(), "start".into()],
                args: vec![
                    "--test-level".into(),
                    "$(params.testLevel)".into(),
                    "--wait".into(),
                    "$(params.wait)".into(),
                    "--source-dir=$(params.dir)".into(),
                ],
                env: vec![TaskEnv { name: "DRY_RUN".into(), value: "$(params.dryRun)".into() }],
                credentials: vec!["$(params.org)".into()],
                queue: Some("deploys".into()),
                priority: Some(5),
                ..Default::default()
            },
        }
    }

    fn spec(params: &[(&str, &str)]) -> TaskSpec {
        TaskSpec { params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() }
    }

    fn rendered(params: &[(&str, &str)]) -> Result<RenderedTask, RenderError> {
        render(TemplateKind::ClusterTaskTemplate, "deploy", "u", 3, &deploy(), &spec(params)).map(|r| r.task)
    }

    #[test]
    fn a_task_is_rendered_with_its_params_and_the_defaults_in_their_declared_places() {
        let t = rendered(&[("org", "prod-org"), ("dir", "force-app")]).unwrap();
        assert_eq!(t.args, ["--test-level", "RunLocalTests", "--wait", "33", "--source-dir=force-app"]);
        assert_eq!(t.env, [TaskEnv { name: "DRY_RUN".into(), value: "false".into() }]);
        assert_eq!(t.credentials, ["prod-org"]);
        assert_eq!((t.queue.as_str(), t.priority, t.timeout_seconds), ("deploys", 5, limits::TIMEOUT_DEFAULT));
        assert_eq!(t.params["testLevel"], "RunLocalTests", "the command gets the defaults as EPHEMERA_PARAM_ too");
        assert_eq!(t.command, ["sf", "project", "deploy", "start"]);
    }

    #[test]
    fn each_wrong_param_is_named_with_what_is_wrong() {
        let Err(RenderError::InvalidParams(p)) =
            rendered(&[("testLevel", "All"), ("wait", "soon"), ("dryRun", "yes"), ("colour", "red"), ("dir", "a b")])
        else {
            panic!("params accepted")
        };
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "param \"colour\" is not a param of the template (it takes org, testLevel, wait, dryRun, dir)",
                "param \"org\" is required",
                "param \"testLevel\" must be one of NoTestRun, RunLocalTests, not \"All\"",
                "param \"wait\" must be an integer, not \"soon\"",
                "param \"dryRun\" must be true or false, not \"yes\"",
                "param \"dir\" \"a b\" does not match the pattern \"[A-Za-z0-9_./-]+\"",
            ]
        );
    }

    #[test]
    fn integers_are_bounded_and_written_canonically() {
        let Err(RenderError::InvalidParams(p)) = rendered(&[("org", "o"), ("wait", "500")]) else { panic!() };
        assert_eq!(p[0].message, "must be at most 120, not 500");
        assert_eq!(rendered(&[("org", "o"), ("wait", "+7")]).unwrap().params["wait"], "7");
    }

    #[test]
    fn a_param_value_never_splits_into_more_arguments_or_reaches_a_shell() {
        let t = rendered(&[("org", "o"), ("testLevel", "NoTestRun"), ("dir", "x;rm")]);
        assert!(t.is_err(), "the embed pattern refuses ;");
        let mut body = deploy();
        body.params[4].pattern = Some(".*".into());
        let t = render(TemplateKind::TaskTemplate, "d", "", 1, &body, &spec(&[("org", "o"), ("dir", "a b; rm -rf /")]))
            .unwrap()
            .task;
        assert_eq!(t.args.len(), 5, "one argument stays one argument");
        assert_eq!(t.args[4], "--source-dir=a b; rm -rf /");
    }

    #[test]
    fn a_credential_param_must_name_a_credential() {
        let Err(RenderError::InvalidParams(p)) = rendered(&[("org", "Prod Org")]) else { panic!() };
        assert_eq!(p[0].param, "org");
        assert!(p[0].message.contains("not a credential name"), "{}", p[0].message);
    }

    #[test]
    fn the_tasks_own_priority_wins_over_the_templates() {
        let mut s = spec(&[("org", "o")]);
        s.priority = -3;
        let r = render(TemplateKind::ClusterTaskTemplate, "d", "", 1, &deploy(), &s).unwrap();
        assert_eq!(r.task.priority, -3);
    }

    #[test]
    fn a_bad_template_is_refused_with_every_problem_named() {
        let mut body = deploy();
        body.params.push(param("org", ParamType::Integer));
        body.params.push(TemplateParam { values: vec![], ..param("level", ParamType::Enum) });
        body.params.push(TemplateParam { pattern: Some("(".into()), ..param("bad", ParamType::String) });
        body.params.push(TemplateParam { default: Some("x".into()), ..param("n", ParamType::Integer) });
        body.params.push(param("plain", ParamType::String));
        body.task.args.push("$(params.nope)".into());
        body.task.args.push("--x=$(params.plain)".into());
        body.task.credentials.push("org-$(params.org)".into());
        let problems = check(&body);
        let want = [
            "param \"org\" is declared twice",
            "param \"level\": an enum param lists its values",
            "param \"bad\": pattern \"(\" is not a regular expression",
            "param \"n\": the default must be an integer, not \"x\"",
            "task.args[5] refers to $(params.nope), which is not declared",
            "task.args[6] splices $(params.plain) into a longer string",
            "task.credentials[1]: a credential is a whole $(params.org)",
        ];
        for w in want {
            assert!(problems.iter().any(|p| p.starts_with(w)), "missing {w:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        let err = render(TemplateKind::ClusterTaskTemplate, "d", "", 1, &body, &spec(&[])).unwrap_err();
        assert!(matches!(err, RenderError::InvalidTemplate(_)));
    }

    #[test]
    fn a_template_cannot_set_reserved_variables_or_collide_params() {
        let mut body = deploy();
        body.task.env.push(TaskEnv { name: "LD_PRELOAD".into(), value: "/tmp/x.so".into() });
        body.params.push(param("Org", ParamType::String));
        let problems = check(&body);
        assert!(
            problems.iter().any(|p| p.contains("task.env[LD_PRELOAD]: HOME, EPHEMERA_* and LD_* are reserved")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("param \"Org\" differs from another only in case")), "{problems:?}");
    }

    #[test]
    fn only_params_references_are_substituted_and_dollar_dollar_escapes() {
        let values = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(
            substitute("echo $(date) $HOME $(params.a) $$(params.a)", &values).0,
            "echo $(date) $HOME 1 $(params.a)"
        );
        assert!(pieces("$(params.a").is_err());
        assert!(pieces("$(params.a-b)").is_err());
        assert_eq!(pieces("").unwrap(), [Piece::Text(String::new())]);
    }

    #[test]
    fn an_optional_credential_param_left_empty_names_no_credential() {
        let mut body = deploy();
        body.params[0].required = false;
        let r = render(TemplateKind::ClusterTaskTemplate, "d", "", 1, &body, &spec(&[])).unwrap();
        assert!(r.task.credentials.is_empty());
    }
}
