//! Rule compilation and evaluation on hostile expressions and payloads: a compile error or a
//! refusal, never a panic or a hang past libFuzzer's timeout.
#![no_main]

use std::collections::BTreeMap;

use ephemera_webhooks::rules::{compile, evaluate, Limits, Rule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: an expression, a NUL, then the payload.
    let (expr, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(expr) = std::str::from_utf8(expr) else { return };
    let body: serde_json::Value = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
    let rule = Rule {
        name: "r".into(),
        events: vec![],
        filter: Some(expr.to_string()),
        params: BTreeMap::from([("p".to_string(), expr.to_string())]),
        concurrency_key: None,
    };
    let limits = Limits { expression: 4096, value: 4096 };
    if let Ok(rules) = compile(&[rule], limits) {
        let headers = BTreeMap::from([("x-github-event".to_string(), "push".to_string())]);
        let _ = evaluate(&rules, "push", &body, &headers);
    }
});
