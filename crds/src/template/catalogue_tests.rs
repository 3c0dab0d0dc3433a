//! The Salesforce DevOps catalogue the chart ships (`charts/ephemera/files/catalogue`): every
//! template is valid, renders the `sf` command a user expects from typical params, and refuses the
//! params that would be dangerous or wrong.

use std::collections::BTreeMap;
use std::path::Path;

use super::{check, render, ClusterTaskTemplate, RenderError, RenderedTask, TemplateKind};
use crate::TaskSpec;

fn catalogue() -> BTreeMap<String, ClusterTaskTemplate> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ephemera/files/catalogue");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let t: ClusterTaskTemplate = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        out.insert(t.metadata.name.clone().unwrap(), t);
    }
    out
}

fn rendered(name: &str, params: &[(&str, &str)]) -> Result<RenderedTask, RenderError> {
    let t = &catalogue()[name];
    let spec =
        TaskSpec { params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() };
    render(TemplateKind::ClusterTaskTemplate, name, "", 1, &t.spec.body, &spec).map(|r| r.task)
}

#[test]
fn every_catalogue_template_is_valid() {
    let all = catalogue();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["salesforce-deploy", "salesforce-run-tests", "salesforce-validate"]);
    for (name, t) in &all {
        assert_eq!(check(&t.spec.body), Vec::<String>::new(), "{name}");
        assert!(!t.spec.body.description.is_empty(), "{name} says what it does");
        assert!(t.spec.body.params.iter().all(|p| !p.description.is_empty()), "{name} documents each param");
    }
}

#[test]
fn a_validation_renders_the_sf_command_with_the_defaults() {
    let t = rendered("salesforce-validate", &[("targetOrg", "uat-org")]).unwrap();
    assert_eq!(t.command[..2], ["sh", "-c"]);
    assert!(t.command[2].contains("sf project deploy validate --target-org target"), "{}", t.command[2]);
    assert_eq!(t.args, ["--source-dir", "force-app", "--test-level", "RunLocalTests", "--wait", "33"]);
    assert_eq!(t.credentials, ["uat-org"]);
    assert_eq!(t.params["tests"], "", "the command sees every param, defaults included");
}

#[test]
fn a_deploy_takes_specified_tests_a_dry_run_and_a_quick_deploy_job() {
    let params = [
        ("targetOrg", "prod-org"),
        ("testLevel", "RunSpecifiedTests"),
        ("tests", "AccountTest,OrderTest"),
        ("dryRun", "true"),
        ("waitMinutes", "90"),
        ("quickDeployJob", "0Af5g00000ABCDEFGH"),
    ];
    let t = rendered("salesforce-deploy", &params).unwrap();
    assert_eq!(t.args, ["--source-dir", "force-app", "--test-level", "RunSpecifiedTests", "--wait", "90"]);
    assert_eq!((t.params["tests"].as_str(), t.params["dryRun"].as_str()), ("AccountTest,OrderTest", "true"));
    assert!(t.command[2].contains("--job-id \"$EPHEMERA_PARAM_QUICKDEPLOYJOB\""), "{}", t.command[2]);
    assert_eq!((t.retry.max_attempts, t.timeout_seconds), (1, 7200), "a deploy is never retried on its own");
}

#[test]
fn the_catalogue_refuses_params_that_would_reach_a_shell_or_name_no_org() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 8] = [
        ("salesforce-deploy", &[], "targetOrg"),
        ("salesforce-deploy", &[("targetOrg", "prod-org"), ("tests", "A;rm -rf /")], "tests"),
        ("salesforce-validate", &[("targetOrg", "Prod Org")], "targetOrg"),
        ("salesforce-run-tests", &[("targetOrg", "o"), ("testLevel", "NoTestRun")], "testLevel"),
        ("salesforce-deploy", &[("targetOrg", "o"), ("sourceDir", "$(reboot)")], "sourceDir"),
        // The source directory stays inside the project.
        ("salesforce-deploy", &[("targetOrg", "o"), ("sourceDir", "force-app/../../etc")], "sourceDir"),
        ("salesforce-validate", &[("targetOrg", "o"), ("sourceDir", "/etc")], "sourceDir"),
        ("salesforce-validate", &[("targetOrg", "o"), ("sourceDir", "force-app/")], "sourceDir"),
    ];
    assert!(rendered("salesforce-deploy", &[("targetOrg", "o"), ("sourceDir", "src/main.app/v1")]).is_ok());
    for (name, params, param) in cases {
        match rendered(name, params) {
            Err(RenderError::InvalidParams(p)) => assert_eq!(p[0].param, param, "{name} {params:?}: {p:?}"),
            other => panic!("{name} {params:?}: {other:?}"),
        }
    }
}
