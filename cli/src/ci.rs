//! What a CI job brings: a run identity, so a retried step sends the same `Idempotency-Key` and
//! gets the Task it started instead of a second one, and a way to an OIDC ID token, so no secret
//! needs storing. Pure: the environment comes in as a lookup.

use sha2::{Digest, Sha256};

/// The CI system a command runs in, and the identity of the step within the run attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiRun {
    /// `github`, `gitlab`, `bitbucket`, `azure` or `jenkins`.
    pub provider: &'static str,
    /// Run, attempt, job and step ids joined by `-`: the same for a retried step, different for a
    /// re-run of the pipeline (which should start a new Task).
    pub step: String,
}

impl CiRun {
    /// The CI run the environment describes, if any.
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Option<CiRun> {
        let all = |names: &[&str]| -> Option<String> {
            let parts: Option<Vec<String>> = names.iter().map(|n| env(n).filter(|v| !v.is_empty())).collect();
            parts.map(|p| p.join("-"))
        };
        let flag = |name: &str, value: &str| env(name).is_some_and(|v| v.eq_ignore_ascii_case(value));
        // GitHub: a re-run raises GITHUB_RUN_ATTEMPT; GITHUB_ACTION tells the steps of a job apart.
        if flag("GITHUB_ACTIONS", "true") {
            let step = all(&["GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB", "GITHUB_ACTION"])?;
            return Some(CiRun { provider: "github", step });
        }
        // GitLab: a retried job is a new job with a new CI_JOB_ID.
        if flag("GITLAB_CI", "true") {
            return all(&["CI_JOB_ID"]).map(|step| CiRun { provider: "gitlab", step });
        }
        if env("BITBUCKET_BUILD_NUMBER").is_some() {
            let step = all(&["BITBUCKET_PIPELINE_UUID", "BITBUCKET_STEP_UUID"])?;
            return Some(CiRun { provider: "bitbucket", step });
        }
        if flag("TF_BUILD", "true") {
            let step = all(&["BUILD_BUILDID", "SYSTEM_JOBID", "SYSTEM_JOBATTEMPT"])?;
            return Some(CiRun { provider: "azure", step });
        }
        if env("JENKINS_URL").is_some() {
            return all(&["BUILD_TAG"]).map(|step| CiRun { provider: "jenkins", step });
        }
        None
    }

    /// The default `Idempotency-Key` of a create with this `body`: the step and a hash of the body,
    /// so two different Tasks of one step never share a key (the API would refuse the second), and
    /// the same one retried does. 1-255 printable ASCII characters, as the API requires.
    pub fn idempotency_key(&self, body: &[u8]) -> String {
        let hash: String = Sha256::digest(body).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let step: String =
            self.step.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).take(255 - 32).collect();
        format!("ci:{}:{step}:{hash}", self.provider)
    }
}

/// Where a CI job's OIDC ID token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcSource {
    /// GitHub Actions (`permissions: id-token: write`): GET this URL (with `&audience=`) with the
    /// request token as bearer; the answer is `{"value": "<jwt>"}`.
    GithubRequest {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        bearer: String,
    },
    /// A token the job already holds in `EPHEMERA_ID_TOKEN` (GitLab's `id_tokens:`, any CI that
    /// can put an ID token in a variable).
    Variable(String),
}

impl OidcSource {
    /// The source the environment offers, if any.
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Option<OidcSource> {
        if let Some(t) = env("EPHEMERA_ID_TOKEN").filter(|t| !t.is_empty()) {
            return Some(OidcSource::Variable(t));
        }
        match (env("ACTIONS_ID_TOKEN_REQUEST_URL"), env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")) {
            (Some(url), Some(bearer)) if !url.is_empty() && !bearer.is_empty() => {
                Some(OidcSource::GithubRequest { url, bearer })
            }
            _ => None,
        }
    }

    /// The GitHub request URL for `audience` (the URL already has a query string).
    pub fn github_url(url: &str, audience: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}audience={}", crate::url::component(audience))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    /// Environment variables, and the provider and step they should give.
    type Row = (&'static [(&'static str, &'static str)], Option<(&'static str, &'static str)>);

    #[test]
    fn each_ci_system_names_its_step_within_the_run_attempt() {
        #[rustfmt::skip]
        let rows: [Row; 7] = [
            (&[("GITHUB_ACTIONS", "true"), ("GITHUB_RUN_ID", "42"), ("GITHUB_RUN_ATTEMPT", "2"), ("GITHUB_JOB", "deploy"), ("GITHUB_ACTION", "__run_2")],
             Some(("github", "42-2-deploy-__run_2"))),
            (&[("GITHUB_ACTIONS", "true"), ("GITHUB_RUN_ID", "42")], None),
            (&[("GITLAB_CI", "true"), ("CI_JOB_ID", "9001")], Some(("gitlab", "9001"))),
            (&[("BITBUCKET_BUILD_NUMBER", "7"), ("BITBUCKET_PIPELINE_UUID", "{p}"), ("BITBUCKET_STEP_UUID", "{s}")], Some(("bitbucket", "{p}-{s}"))),
            (&[("TF_BUILD", "True"), ("BUILD_BUILDID", "5"), ("SYSTEM_JOBID", "j"), ("SYSTEM_JOBATTEMPT", "1")], Some(("azure", "5-j-1"))),
            (&[("JENKINS_URL", "https://ci"), ("BUILD_TAG", "jenkins-app-12")], Some(("jenkins", "jenkins-app-12"))),
            (&[("CI", "true")], None),
        ];
        for (vars, want) in rows {
            let got = CiRun::detect(&env(vars));
            assert_eq!(got.as_ref().map(|r| (r.provider, r.step.as_str())), want, "{vars:?}");
        }
    }

    #[test]
    fn a_retried_step_sends_the_same_key_and_another_task_of_the_step_a_different_one() {
        let run = CiRun { provider: "github", step: "42-1-deploy-__run".into() };
        let a = run.idempotency_key(br#"{"command":["make","deploy"]}"#);
        assert_eq!(a, run.idempotency_key(br#"{"command":["make","deploy"]}"#));
        assert_ne!(a, run.idempotency_key(br#"{"command":["make","test"]}"#));
        let rerun = CiRun { provider: "github", step: "42-2-deploy-__run".into() };
        assert_ne!(a, rerun.idempotency_key(br#"{"command":["make","deploy"]}"#));
        // Whatever the CI put in its ids, the key is what the API accepts.
        let odd = CiRun { provider: "jenkins", step: format!("job with spaces/é{}", "x".repeat(400)) };
        let k = odd.idempotency_key(b"{}");
        assert!(k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()), "{k}");
    }

    #[test]
    fn an_id_token_comes_from_the_variable_or_from_githubs_token_request() {
        assert_eq!(OidcSource::detect(&env(&[("EPHEMERA_ID_TOKEN", "jwt")])), Some(OidcSource::Variable("jwt".into())));
        let gh = env(&[
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://t/x?api-version=2.0"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "r"),
        ]);
        assert_eq!(
            OidcSource::detect(&gh),
            Some(OidcSource::GithubRequest { url: "https://t/x?api-version=2.0".into(), bearer: "r".into() })
        );
        assert_eq!(OidcSource::detect(&env(&[("ACTIONS_ID_TOKEN_REQUEST_URL", "https://t")])), None);
        assert_eq!(OidcSource::github_url("https://t/x?v=2", "eph mera&x"), "https://t/x?v=2&audience=eph%20mera%26x");
        assert_eq!(OidcSource::github_url("https://t/x", "ephemera"), "https://t/x?audience=ephemera");
    }
}
