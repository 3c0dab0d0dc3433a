//! Numeric checks (`multipleOf`, `minimum`, `maximum`, integer/format ranges) with the real
//! server's quirks: integer values are compared against bounds truncated to int64, and a value that
//! does not fit the declared type/format yields a path-less "Checked value" error.

use super::format::Bad;
use super::node::Node;
use super::validate::Errs;

/// A JSON number as the Go server holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn of(n: &serde_json::Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(0.0)),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn bad(self) -> Bad {
        match self {
            Num::Int(i) => Bad::Int(i),
            Num::Float(f) => Bad::Float(f),
        }
    }
}

/// go-openapi's `IsFloat64AJSONInteger`.
pub(crate) fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_992.0; // 1<<53
    if !f.is_finite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    if f == f.trunc() {
        return true;
    }
    let g = f.trunc();
    let diff = (f - g).abs();
    diff / (f.abs() + g.abs()).min(f64::MAX) < 1e-9
}

/// go-openapi's `IsValueValidAgainstRange`: does the number fit the single declared type/format?
fn range_error(v: Num, ty: &str, format: &str, prefix: &str, path: &str) -> Option<String> {
    let rep = match v {
        Num::Int(i) => i.to_string(),
        // Go's FormatFloat(f, 'f', -1, 64) equals Rust's shortest non-exponent Display.
        Num::Float(f) => format!("{f}"),
    };
    let ok = match (ty, format) {
        ("integer", "int32") => rep.parse::<i32>().is_ok(),
        ("integer", _) => rep.parse::<i64>().is_ok(),
        (_, "float") => rep.parse::<f32>().is_ok_and(f32::is_finite),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(if format.is_empty() {
        format!("{prefix} value must be of type {ty} (default format) in {path}")
    } else {
        format!("{prefix} value must be of type {ty} with format {format} in {path}")
    })
}

/// Runs the number validator for `v` at `path`.
pub(crate) fn check(v: Num, node: Node<'_>, path: &str, errs: &mut Errs) {
    let (ty, format) = match node.types().as_slice() {
        ["integer"] => ("integer", node.format()),
        ["number"] => ("number", node.format()),
        _ => ("", ""),
    };
    if let Some(msg) = range_error(v, ty, format, "Checked", path) {
        errs.plain(msg);
    }
    let mut bounds = Errs::default();
    if let Some(factor) = node.f64("multipleOf") {
        match range_error(Num::Float(factor), ty, format, "MultipleOf", path) {
            None => multiple_native(v, factor, path, &mut bounds),
            Some(msg) => {
                bounds.plain(msg);
                multiple_float(v.as_f64(), factor, path, &mut bounds);
            }
        }
    }
    if let Some(min) = node.f64("minimum") {
        let excl = node.flag("exclusiveMinimum");
        let native = match range_error(Num::Float(min), ty, format, "Minimum boundary", path) {
            None => true,
            Some(msg) => {
                bounds.plain(msg);
                false
            }
        };
        bound(v, min, excl, native, false, path, &mut bounds);
    }
    if let Some(max) = node.f64("maximum") {
        let excl = node.flag("exclusiveMaximum");
        let native = match range_error(Num::Float(max), ty, format, "Maximum boundary", path) {
            None => true,
            Some(msg) => {
                bounds.plain(msg);
                false
            }
        };
        bound(v, max, excl, native, true, path, &mut bounds);
    }
    errs.merge(bounds);
}

fn multiple_native(v: Num, factor: f64, path: &str, errs: &mut Errs) {
    match v {
        Num::Int(i) => {
            // Go truncates the factor to int64 for integer values.
            let f = factor as i64;
            if f <= 0 {
                positive_error(Bad::Int(f), path, errs);
            } else if i % f != 0 {
                let msg = format!("{path} in body should be a multiple of {f}");
                errs.invalid(path, Bad::Int(i), msg);
            }
        }
        Num::Float(x) => multiple_float(x, factor, path, errs),
    }
}

fn multiple_float(x: f64, factor: f64, path: &str, errs: &mut Errs) {
    if factor <= 0.0 {
        positive_error(Bad::Float(factor), path, errs);
        return;
    }
    let mult = if factor < 1.0 { 1.0 / factor * x } else { x / factor };
    if !is_json_integer(mult) {
        let msg = format!("{path} in body should be a multiple of {}", Bad::Float(factor).plain());
        errs.invalid(path, Bad::Float(x), msg);
    }
}

fn positive_error(factor: Bad, path: &str, errs: &mut Errs) {
    let msg = format!("factor MultipleOf declared for {path} must be positive: {}", factor.plain());
    errs.invalid(path, factor, msg);
}

/// One `minimum`/`maximum` check; `native` compares integers against the truncated bound.
fn bound(v: Num, b: f64, excl: bool, native: bool, upper: bool, path: &str, errs: &mut Errs) {
    let (bad, shown, fails) = match (v, native) {
        (Num::Int(i), true) => {
            let bi = b as i64;
            let fails = if upper { i > bi || (excl && i == bi) } else { i < bi || (excl && i == bi) };
            (Bad::Int(i), Bad::Int(bi), fails)
        }
        _ => {
            let x = v.as_f64();
            let fails = if upper { x > b || (excl && x == b) } else { x < b || (excl && x == b) };
            let bad = if native { v.bad() } else { Bad::Float(x) };
            (bad, Bad::Float(b), fails)
        }
    };
    if !fails {
        return;
    }
    let rel = match (upper, excl) {
        (true, false) => "less than or equal to",
        (true, true) => "less than",
        (false, false) => "greater than or equal to",
        (false, true) => "greater than",
    };
    let msg = format!("{path} in body should be {rel} {}", shown.plain());
    errs.invalid(path, bad, msg);
}
