//! The operator flag table in `docs/operator.md` is checked against the binary's own `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "../../e2e/shared/flagdoc.rs"]
mod flagdoc;

#[test]
fn every_operator_flag_is_documented_once_with_its_environment_variable() {
    let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operator.md");
    flagdoc::assert_documented(
        env!("CARGO_BIN_EXE_ephemera-operator"),
        &["--help"],
        doc,
        "# The operator (`operator/`)",
        20,
    );
}
