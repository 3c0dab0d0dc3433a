//! The contract between the operator and `ephemera-worker`: what the operator tells the worker through
//! its environment, and the report the worker leaves in its termination message. Nothing here is
//! secret: the only secret the worker gets from the operator is the wrapping token, and only over the
//! credential hand-off, to the attempt's own Pod (proven by its Pod-bound ServiceAccount token).

use serde::{Deserialize, Serialize};

use crate::{GithubScope, Provider, TransitKey};

/// The worker binary inside the worker image (the image's entrypoint).
pub const WORKER_IN_IMAGE: &str = "/ephemera-worker";
/// Where the install step puts the worker (and its TLS roots) for the Task's container: a volume
/// shared between the two.
pub const WORKER_DIR: &str = "/ephemera/bin";
/// Environment variable: Vault address as seen from worker Pods.
pub const ENV_VAULT_ADDR: &str = "EPHEMERA_VAULT_ADDR";
/// Environment variable: the `creation_path` a genuine wrapping token has (checked before unwrapping).
pub const ENV_VAULT_CREATION_PATH: &str = "EPHEMERA_VAULT_CREATION_PATH";
/// Environment variable: JSON list of [`CredentialRef`].
pub const ENV_CREDENTIALS: &str = "EPHEMERA_CREDENTIALS";
/// Environment variable: file the task command may write its result to (bounded, masked).
pub const ENV_RESULT_FILE: &str = "EPHEMERA_RESULT_FILE";
/// Environment variable: seconds the worker gives the command between SIGTERM and SIGKILL.
pub const ENV_GRACE_SECONDS: &str = "EPHEMERA_GRACE_SECONDS";
/// Environment variable: the egress proxy for the worker's own calls (Vault, providers), set by the
/// admin through the operator; the Task's own proxy variables never apply to them.
pub const ENV_WORKER_PROXY: &str = "EPHEMERA_WORKER_PROXY";
/// Environment variable: hosts the worker reaches without [`ENV_WORKER_PROXY`] (`NO_PROXY` syntax).
pub const ENV_WORKER_NO_PROXY: &str = "EPHEMERA_WORKER_NO_PROXY";
/// Environment variable: where the worker posts progress (the API server's base URL).
pub const ENV_PROGRESS_URL: &str = "EPHEMERA_PROGRESS_URL";
/// Environment variable: the operator's credential hand-off endpoint (base URL), where the
/// `credentials` step exchanges its Pod-bound identity for the attempt's wrapping token, once.
pub const ENV_HANDOFF_URL: &str = "EPHEMERA_HANDOFF_URL";
/// Environment variable: the Task's uid (with the attempt, it names the operator's attempt record).
pub const ENV_TASK_UID: &str = "EPHEMERA_TASK_UID";
/// Where the per-attempt Secret (the reporting token) is mounted in the task container.
pub const ATTEMPT_SECRET_DIR: &str = "/var/run/ephemera/attempt";
/// File name of the reporting token inside [`ATTEMPT_SECRET_DIR`].
pub const PROGRESS_TOKEN_FILE: &str = "progress-token";
/// Where the `credentials` step's projected, Pod-bound ServiceAccount token is mounted.
pub const IDENTITY_TOKEN_DIR: &str = "/var/run/ephemera/identity";
/// File name of that token inside [`IDENTITY_TOKEN_DIR`].
pub const IDENTITY_TOKEN_FILE: &str = "token";
/// Audience of the hand-off identity token (TokenReview checks it: no other token is accepted, and
/// this one is accepted by nothing else).
pub const HANDOFF_AUDIENCE: &str = "ephemera.dev/credential-handoff";
/// Path of the hand-off endpoint under [`ENV_HANDOFF_URL`].
pub const HANDOFF_PATH: &str = "/v1/handoff";
/// Memory-backed folder for credentials delivered as files.
pub const SECRETS_DIR: &str = "/var/run/ephemera/secrets";
/// File in [`SECRETS_DIR`] where the `credentials` init container leaves the grants for the task
/// container (removed as soon as it is read).
pub const HANDOFF_FILE: &str = ".handoff";
/// Name of the init container that obtains the credentials (in the operator's worker image).
pub const CREDENTIALS_CONTAINER: &str = "credentials";
/// Environment variable: where the worker writes its report (default `/dev/termination-log`).
pub const ENV_TERMINATION_LOG: &str = "EPHEMERA_TERMINATION_LOG";
/// Largest termination message Kubernetes keeps (bytes); the report always fits.
pub const MAX_REPORT_BYTES: usize = 4096;

/// One credential the worker must obtain: the resolved, non-secret part of a `Credential`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRef {
    /// Logical name (as in the Task).
    pub name: String,
    /// Provider type.
    pub provider: Provider,
    /// KV v2 mount.
    pub mount: String,
    /// KV v2 path under the mount.
    pub path: String,
    /// GitHub installation-token scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubScope>,
    /// Static values as files under [`SECRETS_DIR`]`/<name>/` instead of environment variables.
    #[serde(default)]
    pub files: bool,
    /// The Transit key that signs this credential's JWT assertions (None: legacy KV `private_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<TransitKey>,
}

/// What the `credentials` step asks the hand-off for (its bearer token proves which Pod it is).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HandoffRequest {
    /// The Task's namespace.
    pub namespace: String,
    /// The Task's name.
    pub task: String,
    /// The Task's uid.
    pub task_uid: String,
    /// The attempt.
    pub attempt: i32,
}

/// Field of the hand-off's answer holding the wrapping token (JSON `{"wrappingToken": "..."}`).
pub const HANDOFF_TOKEN_FIELD: &str = "wrappingToken";

/// Vault token metadata the operator sets on every per-attempt token; the worker checks it names its
/// own attempt, and the operator checks it before revoking anything by accessor.
pub mod token_meta {
    /// The Task's namespace.
    pub const NAMESPACE: &str = "namespace";
    /// The Task's name.
    pub const TASK: &str = "task";
    /// The Task's uid.
    pub const TASK_UID: &str = "task_uid";
    /// The attempt number.
    pub const ATTEMPT: &str = "attempt";
}

/// Why the worker ended an attempt itself (the command's own failures are plain exit codes).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerFailure {
    /// The wrapping token was already used, expired or not genuine: possible interception.
    CredentialUnwrapFailed,
    /// The wrapping token is valid but was not issued through the operator's token role: forged.
    CredentialNotGenuine,
    /// Vault could not be reached or answered with an error.
    VaultUnavailable,
    /// Vault held no usable secret at a credential's path (missing keys, bad key).
    CredentialInvalid,
    /// Salesforce or GitHub refused or could not be reached.
    ProviderFailed,
    /// The task command could not be started.
    CommandFailedToStart,
    /// The worker was stopped (SIGTERM) before the command finished.
    Terminated,
    /// The worker's settings from the operator are unusable (a version mismatch or a hand-made Pod).
    Misconfigured,
    /// The operator refused to hand this Pod the attempt's token (not the attempt's Pod, or the token
    /// was already handed out: possible interception).
    HandoffRefused,
}

impl WorkerFailure {
    /// Every failure the worker reports.
    pub const ALL: [WorkerFailure; 9] = [
        WorkerFailure::CredentialUnwrapFailed,
        WorkerFailure::CredentialNotGenuine,
        WorkerFailure::VaultUnavailable,
        WorkerFailure::CredentialInvalid,
        WorkerFailure::ProviderFailed,
        WorkerFailure::CommandFailedToStart,
        WorkerFailure::Terminated,
        WorkerFailure::Misconfigured,
        WorkerFailure::HandoffRefused,
    ];

    /// The failure as written in the report and in the Task's `status.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerFailure::CredentialUnwrapFailed => "CredentialUnwrapFailed",
            WorkerFailure::CredentialNotGenuine => "CredentialNotGenuine",
            WorkerFailure::VaultUnavailable => "VaultUnavailable",
            WorkerFailure::CredentialInvalid => "CredentialInvalid",
            WorkerFailure::ProviderFailed => "ProviderFailed",
            WorkerFailure::CommandFailedToStart => "CommandFailedToStart",
            WorkerFailure::Terminated => "Terminated",
            WorkerFailure::Misconfigured => "Misconfigured",
            WorkerFailure::HandoffRefused => "HandoffRefused",
        }
    }
}

/// The worker's report, written as JSON to the termination message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerReport {
    /// Set when the worker, not the command, ended the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<WorkerFailure>,
    /// Human-readable, never secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The command's exit code (128 + the signal when a signal killed it; None when it never ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The task's bounded result (masked).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result: String,
    /// Provider tokens the worker minted and revoked.
    #[serde(default)]
    pub revoked: u32,
    /// Provider tokens it could not revoke (they expire on their own).
    #[serde(default)]
    pub revoke_failed: u32,
    /// Last progress line (percentage, message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<(u8, String)>,
    /// Progress events that could not be delivered to the API server.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_undelivered: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A batch of progress events a worker posts for its attempt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProgressBatch {
    /// The attempt (must match the token's).
    #[serde(deserialize_with = "crate::json_int::i32")]
    pub attempt: i32,
    /// Events, oldest first.
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub events: Vec<WorkerEvent>,
    /// Events the worker dropped so far in this attempt (its buffer was full).
    #[serde(default, deserialize_with = "crate::json_int::u64")]
    pub dropped: u64,
}

/// One progress event as the worker numbers it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerEvent {
    /// The worker's sequence number (from 1 per attempt): a retried batch is recognised by it.
    #[serde(deserialize_with = "crate::json_int::i64")]
    pub wseq: i64,
    /// When (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(max_length = 40))]
    pub time: String,
    /// Percent, when given.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::json_int::opt_u8")]
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub percent: Option<u8>,
    /// Message (masked).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub message: String,
}

impl WorkerReport {
    /// Parses a termination message written by the worker (None for anything else).
    pub fn parse(message: &str) -> Option<WorkerReport> {
        serde_json::from_str(message.trim()).ok()
    }

    /// JSON that fits the termination message: the result (then the message) is shortened until it does.
    pub fn to_message(&self) -> String {
        let mut report = self.clone();
        for _ in 0..4 {
            let text = serde_json::to_string(&report).unwrap_or_default();
            if text.len() <= MAX_REPORT_BYTES {
                return text;
            }
            // Removing `over` raw bytes removes at least as many JSON bytes (escapes only grow).
            let over = text.len() - MAX_REPORT_BYTES;
            let field = if report.result.is_empty() { &mut report.message } else { &mut report.result };
            let mut keep = field.len().saturating_sub(over);
            while !field.is_char_boundary(keep) {
                keep -= 1;
            }
            field.truncate(keep);
        }
        report.result.clear();
        report.message.clear();
        serde_json::to_string(&report).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_fit_the_termination_message_and_round_trip() {
        let r = WorkerReport { exit_code: Some(0), result: "é".repeat(5000), ..Default::default() };
        let text = r.to_message();
        assert!(text.len() <= MAX_REPORT_BYTES, "{}", text.len());
        let back = WorkerReport::parse(&text).unwrap();
        assert!(back.result.starts_with("éé") && back.exit_code == Some(0));
        assert_eq!(WorkerReport::parse("plain text"), None);
    }
}
