//! Rendering of field errors exactly as the real server's Go code prints them (`fmt` verbs,
//! `strconv.Quote`, `encoding/json`), and the 422 Status message.

use serde_json::Value;

use super::FieldError;

/// The "bad value" of a field error, typed the way Go holds it (int64 vs float64 matters).
#[derive(Debug, Clone)]
pub(crate) enum Bad {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Anything printed as JSON: null, arrays, objects.
    Json(Value),
}

impl Bad {
    /// The value as the Go server decoded it: integers are int64, everything else float64.
    pub(crate) fn of(v: &Value) -> Bad {
        match v {
            Value::String(s) => Bad::Str(s.clone()),
            Value::Bool(b) => Bad::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Bad::Int(i),
                None => Bad::Float(n.as_f64().unwrap_or(0.0)),
            },
            other => Bad::Json(other.clone()),
        }
    }

    /// Go's `%v` of the value (strings quoted, as field errors do).
    pub(crate) fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Float(f) => go_float(*f),
            Bad::Bool(b) => b.to_string(),
            Bad::Json(v) => go_json(v),
        }
    }

    /// Go's `%v` without quoting strings (for numbers in OpenAPI messages).
    pub(crate) fn plain(&self) -> String {
        match self {
            Bad::Str(s) => s.clone(),
            other => other.render(),
        }
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

fn err(reason: &'static str, field: &str, message: String) -> FieldError {
    FieldError { reason, field: field.to_string(), message }
}

/// `field.Invalid`.
pub(crate) fn invalid(field: &str, bad: &Bad, detail: &str) -> FieldError {
    let msg = with_detail(format!("Invalid value: {}", bad.render()), detail);
    err("FieldValueInvalid", field, msg)
}

/// `field.TypeInvalid`.
pub(crate) fn type_invalid(field: &str, bad: &Bad, detail: &str) -> FieldError {
    let msg = with_detail(format!("Invalid value: {}", bad.render()), detail);
    err("FieldValueTypeInvalid", field, msg)
}

/// `field.Required`.
pub(crate) fn required(field: &str, detail: &str) -> FieldError {
    err("FieldValueRequired", field, with_detail("Required value".into(), detail))
}

/// `field.Forbidden`.
pub(crate) fn forbidden(field: &str, detail: &str) -> FieldError {
    err("FieldValueForbidden", field, with_detail("Forbidden".into(), detail))
}

/// `field.NotSupported`.
pub(crate) fn not_supported(field: &str, bad: &Bad, values: &[String]) -> FieldError {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    let detail = if quoted.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
    let msg = with_detail(format!("Unsupported value: {}", bad.render()), &detail);
    err("FieldValueNotSupported", field, msg)
}

/// `field.TooLong` (the server says "bytes" although it counts characters).
pub(crate) fn too_long(field: &str, max: i64) -> FieldError {
    let detail = match max {
        m if m < 0 => "value is too long".to_string(),
        1 => "may not be more than 1 byte".to_string(),
        m => format!("may not be more than {m} bytes"),
    };
    err("FieldValueTooLong", field, format!("Too long: {detail}"))
}

/// `field.TooMany`.
pub(crate) fn too_many(field: &str, actual: i64, max: i64) -> FieldError {
    let detail = match max {
        m if m < 0 => "has too many items".to_string(),
        1 => "must have at most 1 item".to_string(),
        m => format!("must have at most {m} items"),
    };
    err("FieldValueTooMany", field, format!("Too many: {actual}: {detail}"))
}

/// `field.Duplicate`.
pub(crate) fn duplicate(field: &str, bad: &Bad) -> FieldError {
    let msg = format!("Duplicate value: {}", bad.render());
    err("FieldValueDuplicate", field, msg)
}

/// Whole message of a 422 Invalid Status: `Kind.group "name" is invalid: ...`, with the
/// de-duplicated errors joined in brackets when there is more than one.
pub fn invalid_message(kind: &str, group: &str, name: &str, errs: &[FieldError]) -> String {
    let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    let head = format!("{qualified} {} is invalid", go_quote(name));
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let line = format!("{}: {}", e.field, e.message);
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    match seen.len() {
        0 => head,
        1 => format!("{head}: {}", seen[0]),
        _ => format!("{head}: [{}]", seen.join(", ")),
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Splits Rust's shortest `{:e}` rendering into mantissa and exponent.
fn sci_parts(f: f64) -> (String, i32) {
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// Go's `%v` of a float64: shortest digits, exponent form when exp < -4 or >= 21.
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let (mant, exp) = sci_parts(f);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `encoding/json` rendering of a float64.
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mant, exp) = sci_parts(f);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `json.Marshal` of a decoded JSON value: sorted keys, HTML-safe escaping.
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => out.push_str(&i.to_string()),
            None => out.push_str(&go_json_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => write_json_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, k) in super::node::sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(k, out);
                out.push(':');
                if let Some(x) = m.get(k) {
                    write_json(x, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go escapes these for safe embedding in HTML and JavaScript.
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(0.3), "0.3");
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e-5), "1e-05");
        assert_eq!(go_json_float(1e30), "1e+30");
        assert_eq!(go_json_float(1e-7), "1e-7");
    }

    #[test]
    fn json_sorts_keys_and_escapes_html() {
        assert_eq!(go_json(&json!({"b": 1, "a": "<x>"})), r#"{"a":"\u003cx\u003e","b":1}"#);
    }

    #[test]
    fn quote_escapes_like_strconv() {
        assert_eq!(go_quote("a\"b\n\u{1}é"), r#""a\"b\n\x01é""#);
    }

    #[test]
    fn status_message_brackets_only_for_several() {
        // Real: Widget.schematest.example.com "w1" is invalid: [spec.priority: Invalid value: 2000:
        // spec.priority in body should be less than or equal to 1000, spec.name: Required value]
        let a = invalid("spec.priority", &Bad::Int(2000), "spec.priority in body should be less than or equal to 1000");
        let b = required("spec.name", "");
        assert_eq!(
            invalid_message("Widget", "schematest.example.com", "w1", &[a.clone(), b]),
            "Widget.schematest.example.com \"w1\" is invalid: [spec.priority: Invalid value: 2000: spec.priority in body should be less than or equal to 1000, spec.name: Required value]"
        );
        assert_eq!(
            invalid_message("Widget", "schematest.example.com", "w1", &[a.clone(), a]),
            "Widget.schematest.example.com \"w1\" is invalid: spec.priority: Invalid value: 2000: spec.priority in body should be less than or equal to 1000"
        );
    }
}
