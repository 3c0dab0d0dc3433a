//! The Vault policy of one Credential: read on exactly its KV v2 path, `update` on exactly its
//! Transit sign path (one input, PKCS#1 v1.5), revoking itself; and the use count an attempt's token
//! gets for its Credentials.

use ephemera_crds::Credential;
use kube::ResourceExt;

use super::VaultError;

/// Characters allowed in KV mounts and paths (also keeps policy documents well-formed).
fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|seg| {
            !seg.is_empty() && seg != ".." && seg.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        })
}

/// The policy letting a token read exactly one Credential's KV v2 secret, sign with exactly its
/// Transit key (SHA-256, the RS256 path), and revoke itself.
pub fn policy_for(cred: &Credential) -> Result<String, VaultError> {
    let (mount, path) = (cred.spec.mount.trim_matches('/'), cred.spec.vault_path.trim_matches('/'));
    let unusable = |what: &str| VaultError::Refused(format!("credential {:?} has an unusable {what}", cred.name_any()));
    if !safe_path(mount) || !safe_path(path) {
        return Err(unusable("mount or vaultPath"));
    }
    let mut policy = format!(
        "# Ephemera policy for Credential {name}; generated from the Credential, rewritten when it changes.\n\
         path \"{mount}/data/{path}\" {{\n  capabilities = [\"read\"]\n}}\n",
        name = cred.name_any()
    );
    if let Some(key) = cred.spec.signing_key.as_ref().filter(|_| cred.spec.provider.signs()) {
        let transit = key.mount.trim_matches('/');
        if !safe_path(transit) || !safe_path(&key.name) || key.name.contains('/') {
            return Err(unusable("signingKey"));
        }
        // Exactly one input per request, PKCS#1 v1.5 only: no `batch_input` (hundreds of signatures
        // for one use), no prehashed input, no other key version.
        policy.push_str(&format!(
            "path \"{transit}/sign/{key}/sha2-256\" {{\n  capabilities = [\"update\"]\n  allowed_parameters = {{\n    \"input\" = []\n    \"signature_algorithm\" = [\"pkcs1v15\"]\n  }}\n}}\n",
            key = key.name
        ));
    }
    policy.push_str("path \"auth/token/revoke-self\" {\n  capabilities = [\"update\"]\n}\n");
    Ok(policy)
}

/// The Vault requests one attempt's token makes with `creds`: a read each, a signature per signing
/// Credential, and revoking itself. Its use count is exactly this, so a stolen token is good for
/// nothing more.
pub fn uses_for(creds: &[Credential]) -> usize {
    let signatures = creds.iter().filter(|c| c.spec.provider.signs() && c.spec.signing_key.is_some()).count();
    creds.len() + signatures + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemera_crds::{CredentialSpec, Provider};

    fn cred(mount: &str, path: &str) -> Credential {
        Credential::new(
            "prod-org",
            CredentialSpec {
                provider: Provider::Salesforce,
                vault_path: path.into(),
                mount: mount.into(),
                namespaces: vec!["*".into()],
                github: None,
                files: false,
                signing_key: None,
            },
        )
    }

    #[test]
    fn a_signing_credential_may_sign_one_input_per_use_with_exactly_its_key() {
        let mut c = cred("secret", "ephemera/sf/prod");
        c.spec.signing_key = Some(ephemera_crds::TransitKey { mount: "transit".into(), name: "sf-prod".into() });
        let p = policy_for(&c).unwrap();
        assert!(p.contains("path \"transit/sign/sf-prod/sha2-256\""), "{p}");
        assert!(p.contains("\"signature_algorithm\" = [\"pkcs1v15\"]") && !p.contains("batch_input"), "{p}");
        assert!(!p.contains("transit/keys") && !p.contains("export"), "never the key itself: {p}");
        assert_eq!(uses_for(&[c.clone()]), 3, "a read, a signature, revoking itself");
        c.spec.signing_key = Some(ephemera_crds::TransitKey { mount: "transit".into(), name: "a/../b".into() });
        assert!(policy_for(&c).is_err());
    }

    #[test]
    fn policies_grant_one_path_and_refuse_injection() {
        let p = policy_for(&cred("secret", "ephemera/sf/prod")).unwrap();
        assert!(p.contains("path \"secret/data/ephemera/sf/prod\" {\n  capabilities = [\"read\"]"), "{p}");
        assert!(policy_for(&cred("secret\" {} path \"*", "x")).is_err());
        assert!(policy_for(&cred("secret", "a/../b")).is_err());
        assert!(policy_for(&cred("secret", "a//b")).is_err());
    }
}
