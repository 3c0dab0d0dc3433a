//! The hand-off between the Pod's two worker steps. The `credentials` init container (the operator's
//! worker image) unwraps the Vault token, reads the secrets and mints the provider tokens; the task
//! container (the Task's own image) only receives what the command gets anyway, plus how to revoke
//! it. Private keys and the Vault token therefore never enter a container whose image the Task author
//! chose. The file lives in a memory-backed volume, is readable by the Pod's user only, and is
//! removed as soon as the task container has read it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

use crate::providers::{Grant, Revocation};

/// Why the hand-off could not be written or read (never includes a secret).
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// Writing failed.
    #[error("could not write the credential hand-off {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Missing or unreadable (e.g. a Pod without the credentials init container).
    #[error("no usable credential hand-off at {path}: {detail}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        detail: String,
    },
}

#[derive(Serialize)]
struct GrantOut<'a> {
    env: Vec<(&'a str, &'a str)>,
    secrets: Vec<&'a str>,
    files: &'a [PathBuf],
    revoke: Option<RevokeOut<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
enum RevokeOut<'a> {
    Salesforce { name: &'a str, url: &'a str, token: &'a str },
    Github { name: &'a str, url: &'a str, token: &'a str },
}

#[derive(Deserialize)]
struct GrantIn {
    env: Vec<(String, SecretString)>,
    secrets: Vec<SecretString>,
    files: Vec<PathBuf>,
    revoke: Option<RevokeIn>,
}

#[derive(Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
enum RevokeIn {
    Salesforce { name: String, url: String, token: SecretString },
    Github { name: String, url: String, token: SecretString },
}

/// Writes `grants` to `path` (created new, mode 0400).
pub fn write(path: &Path, grants: &[Grant]) -> Result<(), HandoffError> {
    let out: Vec<GrantOut<'_>> = grants
        .iter()
        .map(|g| GrantOut {
            env: g.env.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect(),
            secrets: g.secrets.iter().map(|s| s.expose_secret()).collect(),
            files: &g.files,
            revoke: g.revoke.as_ref().map(|r| match r {
                Revocation::Salesforce { name, instance_url, token } => {
                    RevokeOut::Salesforce { name, url: instance_url, token: token.expose_secret() }
                }
                Revocation::Github { name, api_url, token } => {
                    RevokeOut::Github { name, url: api_url, token: token.expose_secret() }
                }
            }),
        })
        .collect();
    let failed = |source| HandoffError::Write { path: path.to_path_buf(), source };
    let mut bytes = serde_json::to_vec(&out).map_err(|e| failed(std::io::Error::other(e)))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
    bytes.zeroize();
    written.map_err(failed)
}

/// Reads the grants from `path` and removes the file.
pub fn take(path: &Path) -> Result<Vec<Grant>, HandoffError> {
    let unreadable = |detail: String| HandoffError::Read { path: path.to_path_buf(), detail };
    let mut bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let _ = std::fs::remove_file(path);
    let parsed: Result<Vec<GrantIn>, _> = serde_json::from_slice(&bytes);
    bytes.zeroize();
    let grants = parsed.map_err(|e| unreadable(format!("malformed at line {} column {}", e.line(), e.column())))?;
    Ok(grants
        .into_iter()
        .map(|g| Grant {
            env: g.env,
            secrets: g.secrets,
            files: g.files,
            revoke: g.revoke.map(|r| match r {
                RevokeIn::Salesforce { name, url, token } => Revocation::Salesforce { name, instance_url: url, token },
                RevokeIn::Github { name, url, token } => Revocation::Github { name, api_url: url, token },
            }),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_survive_the_hand_off_which_is_private_and_read_once() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ephemera-handoff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("handoff");
        let grant = Grant {
            env: vec![("SF_ACCESS_TOKEN".into(), SecretString::from("00Dxx!token"))],
            secrets: vec![SecretString::from("00Dxx!token")],
            files: vec![dir.join("f")],
            revoke: Some(Revocation::Salesforce {
                name: "uat".into(),
                instance_url: "https://acme.my.salesforce.com".into(),
                token: SecretString::from("00Dxx!token"),
            }),
        };
        write(&path, &[grant, Grant::default()]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
        assert!(write(&path, &[]).is_err(), "never overwrites a hand-off");
        let back = take(&path).unwrap();
        assert!(!path.exists(), "removed once read");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].env[0].0, "SF_ACCESS_TOKEN");
        assert_eq!(back[0].env[0].1.expose_secret(), "00Dxx!token");
        assert!(
            matches!(&back[0].revoke, Some(Revocation::Salesforce { instance_url, .. }) if instance_url == "https://acme.my.salesforce.com")
        );
        let err = take(&path).err().unwrap().to_string();
        assert!(err.contains("no usable credential hand-off"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
