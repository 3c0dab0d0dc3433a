//! Conformance cases: each expected value below is the Status a real kube-apiserver (1.36,
//! `crd-apiserver`) returned for the same CRD schema and object (message, then causes).

use serde_json::{json, Value};

use super::*;

const WIDGET_SCHEMA: &str = r#"{"properties":{"spec":{"properties":{"b64":{"format":"byte","type":"string"},"big":{"format":"int64","type":"integer"},"count":{"format":"int32","multipleOf":3,"type":"integer"},"day":{"format":"date","type":"string"},"embedded":{"properties":{"spec":{"properties":{"x":{"type":"string"}},"type":"object"}},"type":"object","x-kubernetes-embedded-resource":true},"enabled":{"type":"boolean"},"free":{"type":"object","x-kubernetes-preserve-unknown-fields":true},"ios":{"x-kubernetes-int-or-string":true},"items":{"items":{"properties":{"name":{"minLength":1,"type":"string"},"val":{"default":"v","type":"string"}},"required":["name"],"type":"object"},"type":"array"},"labels":{"additionalProperties":{"maxLength":3,"type":"string"},"maxProperties":2,"minProperties":1,"type":"object"},"level":{"enum":[1,2,3],"type":"integer"},"mode":{"enum":["fast","slow"],"type":"string"},"name":{"maxLength":5,"minLength":2,"pattern":"^[a-zé]+$","type":"string"},"nested":{"default":{},"properties":{"a":{"default":"x","type":"string"},"b":{"nullable":true,"type":"integer"},"c":{"type":"string"}},"type":"object"},"nulld":{"default":"d","type":"string"},"num":{"type":"number"},"objset":{"items":{"properties":{"a":{"type":"string"}},"type":"object","x-kubernetes-map-type":"atomic"},"type":"array","x-kubernetes-list-type":"set"},"pairs":{"items":{"properties":{"a":{"type":"string"},"b":{"default":0,"type":"integer"}},"required":["a"],"type":"object"},"type":"array","x-kubernetes-list-map-keys":["a","b"],"x-kubernetes-list-type":"map"},"ports":{"items":{"properties":{"name":{"type":"string"},"port":{"default":80,"type":"integer"}},"required":["name"],"type":"object"},"type":"array","x-kubernetes-list-map-keys":["name"],"x-kubernetes-list-type":"map"},"priority":{"default":10,"maximum":1000,"minimum":1,"type":"integer"},"ratio":{"exclusiveMaximum":true,"exclusiveMinimum":true,"maximum":1,"minimum":0,"multipleOf":0.25,"type":"number"},"tags":{"items":{"type":"string"},"maxItems":3,"minItems":1,"type":"array","x-kubernetes-list-type":"set"},"uid":{"format":"uuid","type":"string"},"when":{"format":"date-time","type":"string"}},"required":["name"],"type":"object"},"status":{"properties":{"phase":{"type":"string"}},"type":"object"}},"type":"object"}"#;

const GADGET_SCHEMA: &str = r#"{"properties":{"spec":{"properties":{"all":{"allOf":[{"minLength":2},{"maxLength":3}],"type":"string"},"any":{"anyOf":[{"minimum":10},{"maximum":2}],"type":"integer"},"apf":{"additionalProperties":false,"type":"object"},"apt":{"additionalProperties":true,"type":"object"},"nt":{"not":{"enum":["bad"]},"type":"string"},"nullenum":{"enum":["a"],"nullable":true,"type":"string"},"one":{"oneOf":[{"pattern":"^a"},{"pattern":"b$"}],"type":"string"}},"type":"object"}},"required":["spec"],"type":"object"}"#;

/// Runs the request pipeline (prune, default, validate) on `{"spec": spec}`.
fn run(schema: &str, kind: &str, name: &str, spec: &str) -> (String, Vec<(String, String, String)>) {
    let schema: Value = serde_json::from_str(schema).unwrap();
    let spec: Value = serde_json::from_str(spec).unwrap();
    let mut obj =
        json!({"apiVersion": "schematest.example.com/v1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    prune(&mut obj, &schema);
    apply_defaults(&mut obj, &schema);
    let errs = validate(&obj, &schema);
    let msg = invalid_message(kind, "schematest.example.com", name, &errs);
    let causes = errs.into_iter().map(|e| (e.reason.to_string(), e.field, e.message)).collect();
    (msg, causes)
}

fn check(schema: &str, kind: &str, name: &str, spec: &str, msg: &str, causes: &[(&str, &str, &str)]) {
    let (got_msg, got) = run(schema, kind, name, spec);
    assert_eq!(got_msg, msg, "{name}");
    let want: Vec<(String, String, String)> =
        causes.iter().map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string())).collect();
    assert_eq!(got, want, "{name}");
}
#[test]
fn real_a1() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a1",
        r#"{"name":"ab","priority":0}"#,
        "Widget.schematest.example.com \"a1\" is invalid: spec.priority: Invalid value: 0: spec.priority in body should be greater than or equal to 1",
        &[
            ("FieldValueInvalid", "spec.priority", "Invalid value: 0: spec.priority in body should be greater than or equal to 1"),
        ],
    );
}

#[test]
fn real_a2() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a2",
        r#"{"name":"ab","priority":"x"}"#,
        "Widget.schematest.example.com \"a2\" is invalid: spec.priority: Invalid value: \"string\": spec.priority in body must be of type integer: \"string\"",
        &[
            ("FieldValueTypeInvalid", "spec.priority", "Invalid value: \"string\": spec.priority in body must be of type integer: \"string\""),
        ],
    );
}

#[test]
fn real_a4() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a4",
        r#"{"name":"ab","priority":3.5}"#,
        "Widget.schematest.example.com \"a4\" is invalid: [spec.priority: Invalid value: \"number\": spec.priority in body must be of type integer: \"number\", <nil>: Invalid value: \"\": Checked value must be of type integer (default format) in spec.priority]",
        &[
            ("FieldValueTypeInvalid", "spec.priority", "Invalid value: \"number\": spec.priority in body must be of type integer: \"number\""),
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": Checked value must be of type integer (default format) in spec.priority"),
        ],
    );
}

#[test]
fn real_a5() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a5",
        r#"{"name":"a"}"#,
        "Widget.schematest.example.com \"a5\" is invalid: spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long",
        &[
            ("FieldValueInvalid", "spec.name", "Invalid value: \"a\": spec.name in body should be at least 2 chars long"),
        ],
    );
}

#[test]
fn real_a6() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a6",
        r#"{"name":"abcdef"}"#,
        "Widget.schematest.example.com \"a6\" is invalid: spec.name: Too long: may not be more than 5 bytes",
        &[("FieldValueTooLong", "spec.name", "Too long: may not be more than 5 bytes")],
    );
}

#[test]
fn real_a7() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a7",
        r#"{"name":"éééééé"}"#,
        "Widget.schematest.example.com \"a7\" is invalid: spec.name: Too long: may not be more than 5 bytes",
        &[("FieldValueTooLong", "spec.name", "Too long: may not be more than 5 bytes")],
    );
}

#[test]
fn real_a8() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a8",
        r#"{"name":"AB1"}"#,
        "Widget.schematest.example.com \"a8\" is invalid: spec.name: Invalid value: \"AB1\": spec.name in body should match '^[a-zé]+$'",
        &[
            ("FieldValueInvalid", "spec.name", "Invalid value: \"AB1\": spec.name in body should match '^[a-zé]+$'"),
        ],
    );
}

#[test]
fn real_a9() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a9",
        r#"{"name":"ab","ratio":0}"#,
        "Widget.schematest.example.com \"a9\" is invalid: [spec.ratio: Invalid value: 0: factor MultipleOf declared for spec.ratio must be positive: 0, spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0]",
        &[
            ("FieldValueInvalid", "spec.ratio", "Invalid value: 0: factor MultipleOf declared for spec.ratio must be positive: 0"),
            ("FieldValueInvalid", "spec.ratio", "Invalid value: 0: spec.ratio in body should be greater than 0"),
        ],
    );
}

#[test]
fn real_a10() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a10",
        r#"{"name":"ab","ratio":1}"#,
        "Widget.schematest.example.com \"a10\" is invalid: [spec.ratio: Invalid value: 0: factor MultipleOf declared for spec.ratio must be positive: 0, spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1]",
        &[
            ("FieldValueInvalid", "spec.ratio", "Invalid value: 0: factor MultipleOf declared for spec.ratio must be positive: 0"),
            ("FieldValueInvalid", "spec.ratio", "Invalid value: 1: spec.ratio in body should be less than 1"),
        ],
    );
}

#[test]
fn real_a11() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a11",
        r#"{"name":"ab","ratio":0.3}"#,
        "Widget.schematest.example.com \"a11\" is invalid: spec.ratio: Invalid value: 0.3: spec.ratio in body should be a multiple of 0.25",
        &[
            ("FieldValueInvalid", "spec.ratio", "Invalid value: 0.3: spec.ratio in body should be a multiple of 0.25"),
        ],
    );
}

#[test]
fn real_a12() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a12",
        r#"{"name":"ab","count":4}"#,
        "Widget.schematest.example.com \"a12\" is invalid: spec.count: Invalid value: 4: spec.count in body should be a multiple of 3",
        &[
            ("FieldValueInvalid", "spec.count", "Invalid value: 4: spec.count in body should be a multiple of 3"),
        ],
    );
}

#[test]
fn real_a13() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a13",
        r#"{"name":"ab","count":3000000000}"#,
        "Widget.schematest.example.com \"a13\" is invalid: <nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.count",
        &[
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": Checked value must be of type integer with format int32 in spec.count"),
        ],
    );
}

#[test]
fn real_a14() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a14",
        r#"{"name":"ab","mode":"medium"}"#,
        "Widget.schematest.example.com \"a14\" is invalid: spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\"",
        &[
            ("FieldValueNotSupported", "spec.mode", "Unsupported value: \"medium\": supported values: \"fast\", \"slow\""),
        ],
    );
}

#[test]
fn real_a15() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a15",
        r#"{"name":"ab","level":4}"#,
        "Widget.schematest.example.com \"a15\" is invalid: spec.level: Unsupported value: 4: supported values: \"1\", \"2\", \"3\"",
        &[
            ("FieldValueNotSupported", "spec.level", "Unsupported value: 4: supported values: \"1\", \"2\", \"3\""),
        ],
    );
}

#[test]
fn real_a16() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a16",
        r#"{"name":"ab","level":"1"}"#,
        "Widget.schematest.example.com \"a16\" is invalid: [spec.level: Invalid value: \"string\": spec.level in body must be of type integer: \"string\", spec.level: Unsupported value: \"1\": supported values: \"1\", \"2\", \"3\"]",
        &[
            ("FieldValueTypeInvalid", "spec.level", "Invalid value: \"string\": spec.level in body must be of type integer: \"string\""),
            ("FieldValueNotSupported", "spec.level", "Unsupported value: \"1\": supported values: \"1\", \"2\", \"3\""),
        ],
    );
}

#[test]
fn real_a17() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a17",
        r#"{"name":"ab","enabled":"true"}"#,
        "Widget.schematest.example.com \"a17\" is invalid: spec.enabled: Invalid value: \"string\": spec.enabled in body must be of type boolean: \"string\"",
        &[
            ("FieldValueTypeInvalid", "spec.enabled", "Invalid value: \"string\": spec.enabled in body must be of type boolean: \"string\""),
        ],
    );
}

#[test]
fn real_a18() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a18",
        r#"{"name":"ab","when":"yesterday"}"#,
        "Widget.schematest.example.com \"a18\" is invalid: spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
        &[
            ("FieldValueTypeInvalid", "spec.when", "Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\""),
        ],
    );
}

#[test]
fn real_a19() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a19",
        r#"{"name":"ab","when":5}"#,
        "Widget.schematest.example.com \"a19\" is invalid: spec.when: Invalid value: \"int64\": spec.when in body must be of type date-time: \"int64\"",
        &[
            ("FieldValueTypeInvalid", "spec.when", "Invalid value: \"int64\": spec.when in body must be of type date-time: \"int64\""),
        ],
    );
}

#[test]
fn real_a20() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a20",
        r#"{"name":"ab","day":"2020-13-01"}"#,
        "Widget.schematest.example.com \"a20\" is invalid: spec.day: Invalid value: \"2020-13-01\": spec.day in body must be of type date: \"2020-13-01\"",
        &[
            ("FieldValueTypeInvalid", "spec.day", "Invalid value: \"2020-13-01\": spec.day in body must be of type date: \"2020-13-01\""),
        ],
    );
}

#[test]
fn real_a21() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a21",
        r#"{"name":"ab","uid":"nope"}"#,
        "Widget.schematest.example.com \"a21\" is invalid: spec.uid: Invalid value: \"nope\": spec.uid in body must be of type uuid: \"nope\"",
        &[
            ("FieldValueTypeInvalid", "spec.uid", "Invalid value: \"nope\": spec.uid in body must be of type uuid: \"nope\""),
        ],
    );
}

#[test]
fn real_a22() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a22",
        r#"{"name":"ab","b64":"!!"}"#,
        "Widget.schematest.example.com \"a22\" is invalid: spec.b64: Invalid value: \"!!\": spec.b64 in body must be of type byte: \"!!\"",
        &[
            ("FieldValueTypeInvalid", "spec.b64", "Invalid value: \"!!\": spec.b64 in body must be of type byte: \"!!\""),
        ],
    );
}

#[test]
fn real_a23() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a23",
        r#"{"name":"ab","tags":[]}"#,
        "Widget.schematest.example.com \"a23\" is invalid: spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
        &[
            ("FieldValueInvalid", "spec.tags", "Invalid value: 0: spec.tags in body should have at least 1 items"),
        ],
    );
}

#[test]
fn real_a24() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a24",
        r#"{"name":"ab","tags":["a","b","c","d"]}"#,
        "Widget.schematest.example.com \"a24\" is invalid: spec.tags: Too many: 4: must have at most 3 items",
        &[("FieldValueTooMany", "spec.tags", "Too many: 4: must have at most 3 items")],
    );
}

#[test]
fn real_a25() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a25",
        r#"{"name":"ab","tags":["a","b","a","a","b"]}"#,
        "Widget.schematest.example.com \"a25\" is invalid: [spec.tags: Too many: 5: must have at most 3 items, spec.tags[2]: Duplicate value: \"a\", spec.tags[4]: Duplicate value: \"b\"]",
        &[
            ("FieldValueTooMany", "spec.tags", "Too many: 5: must have at most 3 items"),
            ("FieldValueDuplicate", "spec.tags[2]", "Duplicate value: \"a\""),
            ("FieldValueDuplicate", "spec.tags[4]", "Duplicate value: \"b\""),
        ],
    );
}

#[test]
fn real_a26() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a26",
        r#"{"name":"ab","ports":[{"name":"x"},{"name":"x"},{"name":"y"},{"port":1}]}"#,
        "Widget.schematest.example.com \"a26\" is invalid: [spec.ports[3].name: Required value, spec.ports[1]: Duplicate value: {\"name\":\"x\"}]",
        &[
            ("FieldValueRequired", "spec.ports[3].name", "Required value"),
            ("FieldValueDuplicate", "spec.ports[1]", "Duplicate value: {\"name\":\"x\"}"),
        ],
    );
}

#[test]
fn real_a27() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a27",
        r#"{"name":"ab","labels":{}}"#,
        "Widget.schematest.example.com \"a27\" is invalid: spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties",
        &[
            ("FieldValueInvalid", "spec.labels", "Invalid value: 0: spec.labels in body should have at least 1 properties"),
        ],
    );
}

#[test]
fn real_a28() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a28",
        r#"{"name":"ab","labels":{"a":"b","c":"d","e":"f"}}"#,
        "Widget.schematest.example.com \"a28\" is invalid: spec.labels: Too many: 3: must have at most 2 items",
        &[("FieldValueTooMany", "spec.labels", "Too many: 3: must have at most 2 items")],
    );
}

#[test]
fn real_a29() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a29",
        r#"{"name":"ab","labels":{"a":"abcd","b":5}}"#,
        "Widget.schematest.example.com \"a29\" is invalid: [spec.labels.a: Too long: may not be more than 3 bytes, spec.labels.b: Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\"]",
        &[
            ("FieldValueTooLong", "spec.labels.a", "Too long: may not be more than 3 bytes"),
            ("FieldValueTypeInvalid", "spec.labels.b", "Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\""),
        ],
    );
}

#[test]
fn real_a30() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a30",
        r#"{"name":"ab","ios":true}"#,
        "Widget.schematest.example.com \"a30\" is invalid: spec.ios: Invalid value: \"boolean\": spec.ios in body must be of type integer,string: \"boolean\"",
        &[
            ("FieldValueTypeInvalid", "spec.ios", "Invalid value: \"boolean\": spec.ios in body must be of type integer,string: \"boolean\""),
        ],
    );
}

#[test]
fn real_a31() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a31",
        r#"{"name":"ab","ios":1.5}"#,
        "Widget.schematest.example.com \"a31\" is invalid: spec.ios: Invalid value: \"number\": spec.ios in body must be of type integer,string: \"number\"",
        &[
            ("FieldValueTypeInvalid", "spec.ios", "Invalid value: \"number\": spec.ios in body must be of type integer,string: \"number\""),
        ],
    );
}

#[test]
fn real_a33() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a33",
        r#"{"name":"ab","items":[{"name":""},{},{"name":"ok","zzz":1}]}"#,
        "Widget.schematest.example.com \"a33\" is invalid: [spec.items[0].name: Invalid value: \"\": spec.items[0].name in body should be at least 1 chars long, spec.items[1].name: Required value]",
        &[
            ("FieldValueInvalid", "spec.items[0].name", "Invalid value: \"\": spec.items[0].name in body should be at least 1 chars long"),
            ("FieldValueRequired", "spec.items[1].name", "Required value"),
        ],
    );
}

#[test]
fn real_a34() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a34",
        r#"{"name":"ab","embedded":{"spec":{"x":"a","y":"b"},"extra":1}}"#,
        "Widget.schematest.example.com \"a34\" is invalid: [spec.embedded.apiVersion: Required value, spec.embedded.kind: Required value]",
        &[
            ("FieldValueRequired", "spec.embedded.apiVersion", "Required value"),
            ("FieldValueRequired", "spec.embedded.kind", "Required value"),
        ],
    );
}

#[test]
fn real_a36() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a36",
        r#"{"name":"ab","objset":[{"a":"1"},{"a":"1"}]}"#,
        "Widget.schematest.example.com \"a36\" is invalid: spec.objset[1]: Duplicate value: {\"a\":\"1\"}",
        &[("FieldValueDuplicate", "spec.objset[1]", "Duplicate value: {\"a\":\"1\"}")],
    );
}

#[test]
fn real_a37() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a37",
        r#"{"name":"ab","pairs":[{"a":"x"},{"a":"x","b":0},{"a":"x","b":1}]}"#,
        "Widget.schematest.example.com \"a37\" is invalid: spec.pairs[1]: Duplicate value: {\"a\":\"x\",\"b\":0}",
        &[("FieldValueDuplicate", "spec.pairs[1]", "Duplicate value: {\"a\":\"x\",\"b\":0}")],
    );
}

#[test]
fn real_a38() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a38",
        r#"{"name":"ab","mode":5}"#,
        "Widget.schematest.example.com \"a38\" is invalid: [spec.mode: Invalid value: \"integer\": spec.mode in body must be of type string: \"integer\", spec.mode: Unsupported value: 5: supported values: \"fast\", \"slow\"]",
        &[
            ("FieldValueTypeInvalid", "spec.mode", "Invalid value: \"integer\": spec.mode in body must be of type string: \"integer\""),
            ("FieldValueNotSupported", "spec.mode", "Unsupported value: 5: supported values: \"fast\", \"slow\""),
        ],
    );
}

#[test]
fn real_a41() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a41",
        r#""str""#,
        "Widget.schematest.example.com \"a41\" is invalid: spec: Invalid value: \"string\": spec in body must be of type object: \"string\"",
        &[
            ("FieldValueTypeInvalid", "spec", "Invalid value: \"string\": spec in body must be of type object: \"string\""),
        ],
    );
}

#[test]
fn real_a42() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a42",
        r#"{"name":"ab","tags":"x"}"#,
        "Widget.schematest.example.com \"a42\" is invalid: spec.tags: Invalid value: \"string\": spec.tags in body must be of type array: \"string\"",
        &[
            ("FieldValueTypeInvalid", "spec.tags", "Invalid value: \"string\": spec.tags in body must be of type array: \"string\""),
        ],
    );
}

#[test]
fn real_a43() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a43",
        r#"{"name":"ab","labels":[]}"#,
        "Widget.schematest.example.com \"a43\" is invalid: spec.labels: Invalid value: \"array\": spec.labels in body must be of type object: \"array\"",
        &[
            ("FieldValueTypeInvalid", "spec.labels", "Invalid value: \"array\": spec.labels in body must be of type object: \"array\""),
        ],
    );
}

#[test]
fn real_a47() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a47",
        r#"{"name":"ab","items":[null]}"#,
        "Widget.schematest.example.com \"a47\" is invalid: spec.items[0]: Invalid value: \"null\": spec.items[0] in body must be of type object: \"null\"",
        &[
            ("FieldValueTypeInvalid", "spec.items[0]", "Invalid value: \"null\": spec.items[0] in body must be of type object: \"null\""),
        ],
    );
}

#[test]
fn real_a48() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "a48",
        r#"{"name":"ab","ports":[{"name":"x"},"s"]}"#,
        "Widget.schematest.example.com \"a48\" is invalid: [spec.ports[1]: Invalid value: \"string\": spec.ports[1] in body must be of type object: \"string\", spec.ports[1]: Invalid value: \"s\": must be an object for an array of list-type map]",
        &[
            ("FieldValueTypeInvalid", "spec.ports[1]", "Invalid value: \"string\": spec.ports[1] in body must be of type object: \"string\""),
            ("FieldValueInvalid", "spec.ports[1]", "Invalid value: \"s\": must be an object for an array of list-type map"),
        ],
    );
}

#[test]
fn real_b5() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "b5",
        r#"{"name":"ab","ios":"abc","tags":["a",1,1.0]}"#,
        "Widget.schematest.example.com \"b5\" is invalid: [spec.tags[1]: Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\", spec.tags[2]: Invalid value: \"number\": spec.tags[2] in body must be of type string: \"number\"]",
        &[
            ("FieldValueTypeInvalid", "spec.tags[1]", "Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\""),
            ("FieldValueTypeInvalid", "spec.tags[2]", "Invalid value: \"number\": spec.tags[2] in body must be of type string: \"number\""),
        ],
    );
}

#[test]
fn real_b7() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "b7",
        r#"{"name":"ab","level":2.5}"#,
        "Widget.schematest.example.com \"b7\" is invalid: [spec.level: Invalid value: \"number\": spec.level in body must be of type integer: \"number\", <nil>: Invalid value: \"\": Checked value must be of type integer (default format) in spec.level]",
        &[
            ("FieldValueTypeInvalid", "spec.level", "Invalid value: \"number\": spec.level in body must be of type integer: \"number\""),
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": Checked value must be of type integer (default format) in spec.level"),
        ],
    );
}

#[test]
fn real_b8() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "b8",
        r#"{"name":"ab","big":10000000000000000000}"#,
        "Widget.schematest.example.com \"b8\" is invalid: [spec.big: Invalid value: \"float64\": spec.big in body must be of type int64: \"float64\", <nil>: Invalid value: \"\": Checked value must be of type integer with format int64 in spec.big]",
        &[
            ("FieldValueTypeInvalid", "spec.big", "Invalid value: \"float64\": spec.big in body must be of type int64: \"float64\""),
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": Checked value must be of type integer with format int64 in spec.big"),
        ],
    );
}

#[test]
fn real_b9() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "b9",
        r#"{"name":"ab","embedded":{"apiVersion":"a/b/c","kind":"Foo_Bar","spec":{}}}"#,
        "Widget.schematest.example.com \"b9\" is invalid: [spec.embedded.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c, spec.embedded.kind: Invalid value: \"Foo_Bar\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]",
        &[
            ("FieldValueInvalid", "spec.embedded.apiVersion", "Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c"),
            ("FieldValueInvalid", "spec.embedded.kind", "Invalid value: \"Foo_Bar\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
        ],
    );
}

#[test]
fn real_b11() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "b11",
        r#"{"name":"ab","pairs":[{"b":1},{"b":1},{"a":"x"}]}"#,
        "Widget.schematest.example.com \"b11\" is invalid: [spec.pairs[0].a: Required value, spec.pairs[1].a: Required value, spec.pairs[1]: Duplicate value: {\"b\":1}]",
        &[
            ("FieldValueRequired", "spec.pairs[0].a", "Required value"),
            ("FieldValueRequired", "spec.pairs[1].a", "Required value"),
            ("FieldValueDuplicate", "spec.pairs[1]", "Duplicate value: {\"b\":1}"),
        ],
    );
}

#[test]
fn real_b15() {
    check(
        WIDGET_SCHEMA,
        "Widget",
        "b15",
        r#"{"name":"ab","ratio":1e-7,"num":12.5}"#,
        "Widget.schematest.example.com \"b15\" is invalid: spec.ratio: Invalid value: 1e-07: spec.ratio in body should be a multiple of 0.25",
        &[
            ("FieldValueInvalid", "spec.ratio", "Invalid value: 1e-07: spec.ratio in body should be a multiple of 0.25"),
        ],
    );
}

#[test]
fn real_g1() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g1",
        r#"{"apf":{"x":1,"y":{"z":2}},"apt":{"x":1,"y":{"z":2},"w":[{"q":1}]}}"#,
        "Gadget.schematest.example.com \"g1\" is invalid: [spec.apf: Invalid value: \"x\": spec.apf.x in body is a forbidden property, spec.apf: Invalid value: \"y\": spec.apf.y in body is a forbidden property]",
        &[
            ("FieldValueInvalid", "spec.apf", "Invalid value: \"x\": spec.apf.x in body is a forbidden property"),
            ("FieldValueInvalid", "spec.apf", "Invalid value: \"y\": spec.apf.y in body is a forbidden property"),
        ],
    );
}

#[test]
fn real_g2() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g2",
        r#"{"any":5}"#,
        "Gadget.schematest.example.com \"g2\" is invalid: [<nil>: Invalid value: \"\": \"spec.any\" must validate at least one schema (anyOf), spec.any: Invalid value: 5: spec.any in body should be greater than or equal to 10]",
        &[
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": \"spec.any\" must validate at least one schema (anyOf)"),
            ("FieldValueInvalid", "spec.any", "Invalid value: 5: spec.any in body should be greater than or equal to 10"),
        ],
    );
}

#[test]
fn real_g3() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g3",
        r#"{"one":"ab"}"#,
        "Gadget.schematest.example.com \"g3\" is invalid: <nil>: Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found 2 valid alternatives",
        &[
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found 2 valid alternatives"),
        ],
    );
}

#[test]
fn real_g4() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g4",
        r#"{"one":"x"}"#,
        "Gadget.schematest.example.com \"g4\" is invalid: [<nil>: Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found none valid, spec.one: Invalid value: \"x\": spec.one in body should match '^a']",
        &[
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found none valid"),
            ("FieldValueInvalid", "spec.one", "Invalid value: \"x\": spec.one in body should match '^a'"),
        ],
    );
}

#[test]
fn real_g5() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g5",
        r#"{"all":"abcdef"}"#,
        "Gadget.schematest.example.com \"g5\" is invalid: [spec.all: Too long: may not be more than 3 bytes, <nil>: Invalid value: \"\": \"spec.all\" must validate all the schemas (allOf)]",
        &[
            ("FieldValueTooLong", "spec.all", "Too long: may not be more than 3 bytes"),
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": \"spec.all\" must validate all the schemas (allOf)"),
        ],
    );
}

#[test]
fn real_g6() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g6",
        r#"{"nt":"bad"}"#,
        "Gadget.schematest.example.com \"g6\" is invalid: <nil>: Invalid value: \"\": \"spec.nt\" must not validate the schema (not)",
        &[
            ("FieldValueInvalid", "<nil>", "Invalid value: \"\": \"spec.nt\" must not validate the schema (not)"),
        ],
    );
}

#[test]
fn real_g7() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g7",
        r#"{"nullenum":null}"#,
        "Gadget.schematest.example.com \"g7\" is invalid: spec.nullenum: Unsupported value: null: supported values: \"a\"",
        &[
            ("FieldValueNotSupported", "spec.nullenum", "Unsupported value: null: supported values: \"a\""),
        ],
    );
}

#[test]
fn real_g8() {
    check(
        GADGET_SCHEMA,
        "Gadget",
        "g8",
        r#"{"any":"x"}"#,
        "Gadget.schematest.example.com \"g8\" is invalid: spec.any: Invalid value: \"string\": spec.any in body must be of type integer: \"string\"",
        &[
            ("FieldValueTypeInvalid", "spec.any", "Invalid value: \"string\": spec.any in body must be of type integer: \"string\""),
        ],
    );
}

fn crd(schema: &str, name: &str) -> String {
    let schema: Value = serde_json::from_str(schema).unwrap();
    let errs = check_structural(&schema, "spec.validation");
    invalid_message(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        &format!("{name}s.schematest.example.com"),
        &errs,
    )
}

#[test]
fn real_crd_schema_errors() {
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"properties":{"a":{"type":"string"}}}}}"#, "c1"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c1s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{}}}}}"#, "c2"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c2s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].type: Required value: must not be empty for specified object fields"
    );
    assert_eq!(
        crd(r#"{"properties":{"spec":{"type":"object"}}}"#, "c3"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c3s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.type: Required value: must not be empty at the root"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"array"}}}}}"#, "c4"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c4s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].items: Required value: must be specified"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"array","items":{"type":"string"},"uniqueItems":true}}}}}"#, "c5"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c5s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
    );
    assert!(check_structural(
        &serde_json::from_str(
            r#"{"type":"object","properties":{"spec":{"type":"object","additionalProperties":false}}}"#
        )
        .unwrap(),
        "spec.validation"
    )
    .is_empty());
    assert!(check_structural(
        &serde_json::from_str(
            r#"{"type":"object","properties":{"spec":{"type":"object","additionalProperties":true}}}"#
        )
        .unwrap(),
        "spec.validation"
    )
    .is_empty());
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}}}"#, "c8"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c8s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"foo"}}}}}"#, "c9"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c9s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].type: Unsupported value: \"foo\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
    );
    assert!(check_structural(&serde_json::from_str(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"x-kubernetes-int-or-string":true,"type":"string"}}}}}"#).unwrap(), "spec.validation").is_empty());
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"string","x-kubernetes-embedded-resource":true}}}}}"#, "c11"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c11s.schematest.example.com\" is invalid: [spec.validation.openAPIV3Schema.properties[spec].properties[a].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields, spec.validation.openAPIV3Schema.properties[spec].properties[a].type: Invalid value: \"string\": must be object if x-kubernetes-embedded-resource is true]"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"object","x-kubernetes-preserve-unknown-fields":false}}}}}"#, "c12"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c12s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","anyOf":[{"type":"object"}]}}}"#, "c13"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c13s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"integer","default":"x"}}}}}"#, "c14"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c14s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].default: Invalid value: \"string\":  in body must be of type integer: \"string\""
    );
    assert_eq!(
        crd(r#"{"type":"string"}"#, "c15"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c15s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"
    );
    assert!(check_structural(&serde_json::from_str(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"x-kubernetes-preserve-unknown-fields":true}}}}}"#).unwrap(), "spec.validation").is_empty());
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"array","items":{"type":"string"},"x-kubernetes-list-type":"map"}}}}}"#, "c17"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c17s.schematest.example.com\" is invalid: [spec.validation.openAPIV3Schema.properties[spec].properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map, spec.validation.openAPIV3Schema.properties[spec].properties[a].items.type: Invalid value: \"string\": must be object if parent array's x-kubernetes-list-type is map]"
    );
    assert!(check_structural(
        &serde_json::from_str(
            r#"{"type":"object","properties":{"metadata":{"type":"object","properties":{"name":{"type":"string"}}}}}"#
        )
        .unwrap(),
        "spec.validation"
    )
    .is_empty());
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"object","x-kubernetes-embedded-resource":true}}}}}"#, "c19"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c19s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
    );
    assert_eq!(
        crd(r#"{"type":"object","properties":{"spec":{"type":"object","properties":{"a":{"type":"array","items":{"type":"string"},"x-kubernetes-list-type":"bag"}}}}}"#, "c20"),
        "CustomResourceDefinition.apiextensions.k8s.io \"c20s.schematest.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[a].x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""
    );
}
