//! One attempt's two steps. `hand_off` (init container): claim the wrapping token from the operator
//! with the Pod's identity, unwrap once, read, sign with Transit, mint provider tokens, revoke the
//! Vault token, hand the provider tokens to the task container. `run` (task container): take them, run
//! the command, then revoke the provider tokens, wipe files and memory, and produce the report. Every
//! path out of either revokes what was minted.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use ephemera_crds::worker::{HandoffRequest, WorkerFailure, WorkerReport, ENV_RESULT_FILE};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use zeroize::Zeroize;

use crate::claim::{self, ClaimError};
use crate::command::{self, Exit};
use crate::handoff;
use crate::mask::Masker;
use crate::providers::{self, Grant};
use crate::settings::{Settings, WORKER_ONLY};
use crate::vault::{self, Vault, VaultError};

/// Bytes of the task's result kept (the report must fit in 4 KiB with its other fields).
const MAX_RESULT: u64 = 3072;

/// How long one provider revocation may take (they run concurrently; the operator keeps 10 s of the
/// Pod's grace for the worker after the command: pipes 2 s + revocations 5 s + progress 2 s).
const REVOKE_WITHIN: Duration = Duration::from_secs(5);

/// How long a stop waits for a credential request already on the wire.
const IN_FLIGHT_MINT: Duration = Duration::from_secs(5);

/// Why a `credentials` step ended early on SIGTERM.
const STOPPED_OBTAINING: &str = "stopped while obtaining credentials";

/// Failure before the command ran.
struct Failed(WorkerFailure, String);

/// The `credentials` step (init container, operator's image): obtains every credential and hands
/// the result to the task container; on any failure revokes what it minted. `stop` flips on SIGTERM.
pub async fn hand_off(settings: &Settings, mut stop: watch::Receiver<bool>) -> WorkerReport {
    let http = match http_client() {
        Ok(h) => h,
        Err(report) => return report,
    };
    let mut masker = Masker::default();
    let mut grants: Vec<Grant> = Vec::new();
    let obtained = {
        let obtaining = obtain(settings, &http, &mut grants, &mut masker, stop.clone());
        tokio::pin!(obtaining);
        tokio::select! {
            r = &mut obtaining => r,
            _ = stopped(&mut stop) => {
                // A token being minted right now would be lost if this were dropped: let it land
                // (briefly) so it is revoked with the others.
                let _ = tokio::time::timeout(IN_FLIGHT_MINT, &mut obtaining).await;
                Err(Failed(WorkerFailure::Terminated, STOPPED_OBTAINING.into()))
            }
        }
    };
    let failure = match obtained {
        Ok(()) => match handoff::write(&settings.handoff_file, &grants) {
            Ok(()) => {
                tracing::info!(credentials = grants.len(), "credentials handed to the task container");
                return WorkerReport {
                    exit_code: Some(0),
                    message: "credentials handed off".into(),
                    ..Default::default()
                };
            }
            Err(e) => Failed(WorkerFailure::Misconfigured, e.to_string()),
        },
        Err(f) => f,
    };
    let Failed(failure, message) = failure;
    let message = masker.apply_str(&message);
    tracing::error!(reason = ?failure, "{message}");
    let (revoked, revoke_failed) = release(&http, grants).await;
    WorkerReport { failure: Some(failure), message, revoked, revoke_failed, ..Default::default() }
}

fn http_client() -> Result<reqwest::Client, WorkerReport> {
    crate::trust::client_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| failed(WorkerFailure::Misconfigured, format!("HTTP client: {e}")))
}

/// The `run` step (task container, the Task's image): takes the hand-off, runs the command, then
/// revokes and wipes. `stop` flips to true on SIGTERM.
pub async fn run(settings: &Settings, argv: &[String], mut stop: watch::Receiver<bool>) -> WorkerReport {
    let http = match http_client() {
        Ok(h) => h,
        Err(report) => return report,
    };
    let mut masker = Masker::default();
    let mut grants: Vec<Grant> = Vec::new();
    if !settings.credentials.is_empty() {
        match handoff::take(&settings.handoff_file) {
            Ok(g) => grants = g,
            Err(e) => return failed(WorkerFailure::Misconfigured, e.to_string()),
        }
        for s in grants.iter().flat_map(|g| g.secrets.iter()) {
            masker.add(s.expose_secret());
        }
    }
    let masker = Arc::new(masker);
    let _ = std::fs::remove_file(&settings.result_file);
    let mut env: Vec<(String, SecretString)> = grants.iter().flat_map(|g| g.env.iter().cloned()).collect();
    env.push((ENV_RESULT_FILE.into(), SecretString::from(settings.result_file.to_string_lossy().into_owned())));
    let reporter = Arc::new(reporter(settings));
    let spec = command::Spec {
        argv,
        env: &env,
        remove: &WORKER_ONLY,
        restore: &settings.command_only_env,
        grace: settings.grace,
    };
    let exit = command::run(spec, masker.clone(), reporter.clone(), stopped(&mut stop)).await;
    drop(env);
    let (revoked, revoke_failed) = release(&http, grants).await;
    let result = read_result(settings, &masker);
    let progress = reporter.last().map(|p| (p.pct.unwrap_or(0), p.msg));
    // A bounded wait: an unreachable API server never holds the attempt's end hostage.
    let progress_undelivered = match Arc::try_unwrap(reporter) {
        Ok(r) => r.finish(Duration::from_secs(2)).await,
        Err(_) => 0,
    };
    if progress_undelivered > 0 {
        tracing::warn!(undelivered = progress_undelivered, "some progress events were not delivered to the API server");
    }
    let mut report =
        WorkerReport { result, revoked, revoke_failed, progress, progress_undelivered, ..Default::default() };
    match exit {
        Ok(Exit::Code(c)) => report.exit_code = Some(c),
        Ok(Exit::Signal(s)) => {
            // As a shell reports it, so the attempt fails with a recognisable code.
            report.exit_code = Some(128 + s);
            report.message = format!("the task command was killed by signal {s}");
        }
        Ok(Exit::Stopped(code)) => {
            report.exit_code = code;
            report.failure = Some(WorkerFailure::Terminated);
            report.message = "the worker was asked to stop; the task command was stopped".into();
        }
        Err(e) => {
            report.failure = Some(WorkerFailure::CommandFailedToStart);
            report.message = masker
                .apply_str(&format!("could not start {:?}: {e}", argv.first().map(String::as_str).unwrap_or_default()));
        }
    }
    report
}

/// Live progress reporting, when the operator configured it and gave the attempt a token.
fn reporter(settings: &Settings) -> crate::reporter::Reporter {
    use crate::reporter::{Reporter, Target};
    let Some(url) = settings.progress_url.clone() else { return Reporter::disabled() };
    let Ok(raw) = std::fs::read_to_string(&settings.progress_token_file) else {
        tracing::warn!("no reporting token mounted: progress is not reported live");
        return Reporter::disabled();
    };
    let (namespace, task, attempt) = settings.task.clone();
    Reporter::start(Target { url, token: SecretString::from(raw.trim().to_string()), namespace, task, attempt })
}

/// The exit code the worker leaves: the command's own when it ran to its end; never 0 when the
/// worker ended the attempt (a command stopped by SIGTERM that exits 0 did not finish its task).
pub fn exit_code(report: &WorkerReport) -> i32 {
    match (report.exit_code, report.failure) {
        (Some(c), None) => c,
        (Some(c), Some(_)) if c != 0 => c,
        (_, Some(WorkerFailure::Terminated)) => 143,
        (_, Some(_)) => 1,
        (None, None) => 1,
    }
}

fn failed(failure: WorkerFailure, message: String) -> WorkerReport {
    WorkerReport { failure: Some(failure), message, ..Default::default() }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn obtain(
    settings: &Settings,
    http: &reqwest::Client,
    grants: &mut Vec<Grant>,
    masker: &mut Masker,
    stop: watch::Receiver<bool>,
) -> Result<(), Failed> {
    let addr = settings.vault_addr.as_deref().unwrap_or_default();
    let misconfigured = |m: String| Failed(WorkerFailure::Misconfigured, m);
    let handoff_url = settings
        .handoff_url
        .as_deref()
        .ok_or_else(|| misconfigured("no credential hand-off configured (EPHEMERA_HANDOFF_URL)".into()))?;
    let mut raw = String::new();
    std::fs::File::open(&settings.identity_token_file).and_then(|mut f| f.read_to_string(&mut raw)).map_err(|e| {
        misconfigured(format!("no Pod identity token at {}: {e}", settings.identity_token_file.display()))
    })?;
    let identity = SecretString::from(raw.trim().to_string());
    raw.zeroize();
    masker.add(identity.expose_secret());
    let (namespace, task, attempt) = settings.task.clone();
    let me = vault::AttemptIdentity { namespace, task, task_uid: settings.task_uid.clone(), attempt };
    let request = HandoffRequest {
        namespace: me.namespace.clone(),
        task: me.task.clone(),
        task_uid: me.task_uid.clone(),
        attempt: me.attempt,
    };
    // The operator is inside the cluster: never through the egress proxy meant for Vault and the
    // providers (which would see the wrapping token).
    let direct = crate::trust::client_builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| misconfigured(format!("HTTP client: {e}")))?;
    let wrapping = claim::wrapping_token(&direct, handoff_url, &identity, &request).await.map_err(|e| match e {
        ClaimError::AlreadyClaimed(_) => Failed(WorkerFailure::CredentialUnwrapFailed, e.to_string()),
        ClaimError::Refused { .. } => Failed(WorkerFailure::HandoffRefused, e.to_string()),
        ClaimError::Unavailable { .. } => Failed(WorkerFailure::HandoffRefused, e.to_string()),
    })?;
    drop(identity);
    masker.add(wrapping.expose_secret());
    let vault = Vault::new(addr).map_err(vault_failure)?;
    let token = vault.unwrap(&wrapping, &settings.creation_path, Some(&me)).await.map_err(vault_failure)?;
    drop(wrapping);
    masker.add(token.expose_secret());
    let client = vault.with_token(&token).map_err(vault_failure)?;
    let outcome = read_and_mint(settings, http, &vault, &client, &token, grants, masker, stop).await;
    // The Vault token has done its job (its uses are spent but this one): revoke it now rather
    // than at the end.
    if let Err(e) = vault.revoke_self(&client).await {
        tracing::warn!(error = %e, "could not revoke the Vault token (the operator revokes it when the attempt ends)");
    }
    vault::forget(client);
    drop(token);
    outcome
}

/// Reads every credential's KV secret, then mints each provider token (Transit signs the assertions
/// with `token`).
#[allow(clippy::too_many_arguments)]
async fn read_and_mint(
    settings: &Settings,
    http: &reqwest::Client,
    vault: &Vault,
    client: &vaultrs::client::VaultClient,
    token: &SecretString,
    grants: &mut Vec<Grant>,
    masker: &mut Masker,
    stop: watch::Receiver<bool>,
) -> Result<(), Failed> {
    let mut secrets = Vec::with_capacity(settings.credentials.len());
    for cred in &settings.credentials {
        secrets.push((cred, vault.read(client, &cred.mount, &cred.path).await.map_err(vault_failure)?));
    }
    for (cred, kv) in secrets {
        // Asked to stop while a mint was in flight: that one landed; mint no more.
        if *stop.borrow() {
            return Err(Failed(WorkerFailure::Terminated, STOPPED_OBTAINING.into()));
        }
        let grant = providers::obtain(http, cred, &kv, vault, token).await.map_err(|e| {
            let failure =
                if e.is_invalid_secret() { WorkerFailure::CredentialInvalid } else { WorkerFailure::ProviderFailed };
            Failed(failure, e.to_string())
        })?;
        for s in &grant.secrets {
            masker.add(s.expose_secret());
        }
        tracing::info!(credential = %cred.name, provider = ?cred.provider, "credential ready");
        grants.push(grant);
    }
    Ok(())
}

fn vault_failure(e: VaultError) -> Failed {
    match e {
        VaultError::Unwrap(_) => Failed(WorkerFailure::CredentialUnwrapFailed, e.to_string()),
        VaultError::NotGenuine(_) => Failed(WorkerFailure::CredentialNotGenuine, e.to_string()),
        VaultError::Unavailable { .. } => Failed(WorkerFailure::VaultUnavailable, e.to_string()),
        VaultError::Refused { .. } => Failed(WorkerFailure::CredentialInvalid, e.to_string()),
    }
}

/// Revokes every provider token (all at once, each within [`REVOKE_WITHIN`], so the whole release
/// fits the Pod's grace reserve) and wipes every file; returns (revoked, failed).
async fn release(http: &reqwest::Client, grants: Vec<Grant>) -> (u32, u32) {
    let revocations = grants.iter().filter_map(|g| g.revoke.as_ref()).map(|r| async move {
        match tokio::time::timeout(REVOKE_WITHIN, providers::revoke(http, r)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not revoke a provider token (it expires on its own)");
                false
            }
            Err(_) => {
                tracing::warn!("revoking a provider token timed out (it expires on its own)");
                false
            }
        }
    });
    let outcomes = futures::future::join_all(revocations).await;
    for grant in &grants {
        for f in &grant.files {
            wipe(f);
        }
    }
    let revoked = outcomes.iter().filter(|ok| **ok).count();
    (u32::try_from(revoked).unwrap_or(u32::MAX), u32::try_from(outcomes.len() - revoked).unwrap_or(u32::MAX))
}

/// Overwrites a file with zeros, then removes it.
fn wipe(path: &std::path::Path) {
    if let Ok(len) = std::fs::metadata(path).map(|m| m.len()) {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let _ = std::fs::write(path, vec![0u8; usize::try_from(len).unwrap_or(0)]);
    }
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// The command's result file: bounded, masked, then removed.
fn read_result(settings: &Settings, masker: &Masker) -> String {
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(&settings.result_file) {
        let _ = f.take(MAX_RESULT).read_to_end(&mut buf);
    }
    let _ = std::fs::remove_file(&settings.result_file);
    let text = masker.apply_str(&String::from_utf8_lossy(&buf));
    buf.zeroize();
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(exit_code: Option<i32>, failure: Option<WorkerFailure>) -> WorkerReport {
        WorkerReport { exit_code, failure, ..Default::default() }
    }

    #[test]
    fn the_worker_never_exits_0_for_an_attempt_it_ended() {
        assert_eq!(exit_code(&report(Some(0), None)), 0);
        assert_eq!(exit_code(&report(Some(3), None)), 3);
        assert_eq!(exit_code(&report(Some(0), Some(WorkerFailure::Terminated))), 143, "stopped, then exited 0");
        assert_eq!(exit_code(&report(Some(2), Some(WorkerFailure::Terminated))), 2);
        assert_eq!(exit_code(&report(None, Some(WorkerFailure::VaultUnavailable))), 1);
    }
}
