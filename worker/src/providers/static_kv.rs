//! Static secrets: the KV v2 values themselves, as environment variables named after their keys
//! (upper-cased, other characters as `_`), or as files under `/var/run/ephemera/secrets/<name>/`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ephemera_crds::worker::{CredentialRef, SECRETS_DIR};
use secrecy::ExposeSecret;

use super::{Grant, ProviderError};
use crate::vault::KvSecret;

/// Variables a secret must never replace.
const RESERVED: [&str; 6] = ["HOME", "PATH", "USER", "SHELL", "PWD", "HOSTNAME"];

/// The environment variable for a key, or None when it would shadow a reserved one.
pub fn env_name(key: &str) -> Option<String> {
    let mut name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    let reserved = name.is_empty()
        || RESERVED.contains(&name.as_str())
        || name.starts_with("EPHEMERA_")
        || name.starts_with("LD_");
    (!reserved).then_some(name)
}

/// Delivers the values.
pub fn obtain(cred: &CredentialRef, kv: &KvSecret) -> Result<Grant, ProviderError> {
    obtain_in(cred, kv, Path::new(SECRETS_DIR))
}

/// Same, with files under `root` (tests).
pub fn obtain_in(cred: &CredentialRef, kv: &KvSecret, root: &Path) -> Result<Grant, ProviderError> {
    let invalid = |detail: String| ProviderError::Invalid { name: cred.name.clone(), detail };
    let mut grant = Grant { secrets: kv.values().cloned().collect(), ..Grant::default() };
    if cred.files {
        let dir = root.join(&cred.name);
        std::fs::create_dir_all(&dir).map_err(|e| invalid(format!("creating {}: {e}", dir.display())))?;
        for (key, value) in kv {
            if key.is_empty() || key.contains('/') || key.starts_with('.') {
                return Err(invalid(format!("key {key:?} is not a usable file name")));
            }
            let path: PathBuf = dir.join(key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o400)
                .open(&path)
                .map_err(|e| invalid(format!("writing {}: {e}", path.display())))?;
            f.write_all(value.expose_secret().as_bytes())
                .map_err(|e| invalid(format!("writing {}: {e}", path.display())))?;
            grant.files.push(path);
        }
        grant.env.push((
            format!("EPHEMERA_SECRETS_{}", env_name(&cred.name).unwrap_or_default()),
            dir.to_string_lossy().into_owned().into(),
        ));
    } else {
        for (key, value) in kv {
            let name = env_name(key)
                .ok_or_else(|| invalid(format!("key {key:?} would replace a reserved environment variable")))?;
            grant.env.push((name, value.clone()));
        }
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::Provider;
    use secrecy::SecretString;

    fn cred(files: bool) -> CredentialRef {
        CredentialRef {
            name: "npm".into(),
            provider: Provider::Static,
            mount: "secret".into(),
            path: "p".into(),
            github: None,
            files,
            signing_key: None,
        }
    }

    #[test]
    fn values_become_variables_or_private_files() {
        let kv: KvSecret = [("npm-token".to_string(), SecretString::from("s3cr3t-value"))].into_iter().collect();
        let g = obtain(&cred(false), &kv).unwrap();
        assert_eq!(g.env[0].0, "NPM_TOKEN");
        let dir = tempfile::tempdir().unwrap();
        let g = obtain_in(&cred(true), &kv, dir.path()).unwrap();
        let file = &g.files[0];
        assert_eq!(std::fs::read_to_string(file).unwrap(), "s3cr3t-value");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o400);
        assert_eq!(g.env[0].0, "EPHEMERA_SECRETS_NPM");
    }

    #[test]
    fn reserved_names_are_refused() {
        assert_eq!(env_name("path"), None);
        assert_eq!(env_name("EPHEMERA_X"), None);
        assert_eq!(env_name("1x"), Some("_1X".into()));
        let kv: KvSecret = [("HOME".to_string(), SecretString::from("x"))].into_iter().collect();
        assert!(obtain(&cred(false), &kv).is_err());
    }
}
