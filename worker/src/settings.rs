//! The worker's settings, from the environment the operator gives its Pod.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use ephemera_crds::worker::{
    CredentialRef, ATTEMPT_SECRET_DIR, ENV_CREDENTIALS, ENV_GRACE_SECONDS, ENV_HANDOFF_URL, ENV_PROGRESS_URL,
    ENV_RESULT_FILE, ENV_TASK_UID, ENV_TERMINATION_LOG, ENV_VAULT_ADDR, ENV_VAULT_CREATION_PATH, ENV_WORKER_NO_PROXY,
    ENV_WORKER_PROXY, HANDOFF_FILE, IDENTITY_TOKEN_DIR, IDENTITY_TOKEN_FILE, PROGRESS_TOKEN_FILE, SECRETS_DIR,
};

/// Variables meant for the worker only: the task command never sees them. The operator sets every
/// one of them explicitly (empty = none), so an image's `ENV` can never supply one.
pub const WORKER_ONLY: [&str; 10] = [
    ENV_VAULT_ADDR,
    ENV_VAULT_CREATION_PATH,
    ENV_CREDENTIALS,
    ENV_GRACE_SECONDS,
    ENV_TERMINATION_LOG,
    ENV_PROGRESS_URL,
    ENV_WORKER_PROXY,
    ENV_WORKER_NO_PROXY,
    ENV_HANDOFF_URL,
    ENV_TASK_UID,
];

/// Unusable settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable has a bad value.
    #[error("{name}: {detail}")]
    Invalid {
        /// Variable.
        name: &'static str,
        /// Why.
        detail: String,
    },
}

/// Everything the worker needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Vault address (required when there are credentials).
    pub vault_addr: Option<String>,
    /// `creation_path` of a genuine wrapping token.
    pub creation_path: String,
    /// Credentials to obtain.
    pub credentials: Vec<CredentialRef>,
    /// The operator's credential hand-off (base URL).
    pub handoff_url: Option<String>,
    /// The `credentials` step's Pod-bound identity token.
    pub identity_token_file: PathBuf,
    /// The Task's uid.
    pub task_uid: String,
    /// Where the `credentials` step leaves the grants for the `run` step.
    pub handoff_file: PathBuf,
    /// Where the command may write its result.
    pub result_file: PathBuf,
    /// Where the report goes.
    pub termination_log: PathBuf,
    /// SIGTERM → SIGKILL grace for the command.
    pub grace: Duration,
    /// Where to post progress (None: not reported live).
    pub progress_url: Option<String>,
    /// The attempt's reporting token.
    pub progress_token_file: PathBuf,
    /// The Task's namespace, name and attempt (from the operator's variables).
    pub task: (String, String, i32),
    /// Connection-steering variables taken out of the worker's environment, for the command only.
    pub command_only_env: Vec<(OsString, OsString)>,
}

impl Settings {
    /// Reads the environment; `command_only_env` is what [`crate::isolation`] took out of it.
    pub fn from_env(command_only_env: Vec<(OsString, OsString)>) -> Result<Self, SettingsError> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let credentials = match var(ENV_CREDENTIALS) {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| SettingsError::Invalid { name: ENV_CREDENTIALS, detail: e.to_string() })?,
            None => Vec::new(),
        };
        let grace = match var(ENV_GRACE_SECONDS) {
            Some(g) => g.parse().map_err(|_| SettingsError::Invalid {
                name: ENV_GRACE_SECONDS,
                detail: format!("{g:?} is not a number of seconds"),
            })?,
            None => 20,
        };
        let settings = Settings {
            vault_addr: var(ENV_VAULT_ADDR),
            creation_path: var(ENV_VAULT_CREATION_PATH).unwrap_or_else(|| "auth/token/create/ephemera-task".into()),
            credentials,
            handoff_url: var(ENV_HANDOFF_URL),
            identity_token_file: PathBuf::from(IDENTITY_TOKEN_DIR).join(IDENTITY_TOKEN_FILE),
            task_uid: var(ENV_TASK_UID).unwrap_or_default(),
            handoff_file: PathBuf::from(SECRETS_DIR).join(HANDOFF_FILE),
            result_file: var(ENV_RESULT_FILE)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp/ephemera-result")),
            termination_log: var(ENV_TERMINATION_LOG)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/dev/termination-log")),
            grace: Duration::from_secs(grace),
            progress_url: var(ENV_PROGRESS_URL),
            progress_token_file: PathBuf::from(ATTEMPT_SECRET_DIR).join(PROGRESS_TOKEN_FILE),
            task: (
                var("EPHEMERA_TASK_NAMESPACE").unwrap_or_default(),
                var("EPHEMERA_TASK_NAME").unwrap_or_default(),
                var("EPHEMERA_ATTEMPT").and_then(|a| a.parse().ok()).unwrap_or(0),
            ),
            command_only_env,
        };
        Ok(settings)
    }

    /// Checks what the `credentials` step needs beyond the common settings.
    pub fn for_credentials(self) -> Result<Self, SettingsError> {
        if !self.credentials.is_empty() {
            for (name, missing) in [
                (ENV_VAULT_ADDR, self.vault_addr.is_none()),
                (ENV_HANDOFF_URL, self.handoff_url.is_none()),
                (ENV_TASK_UID, self.task_uid.is_empty()),
            ] {
                if missing {
                    return Err(SettingsError::Invalid {
                        name,
                        detail: "required when the Task names credentials".into(),
                    });
                }
            }
        }
        Ok(self)
    }
}
