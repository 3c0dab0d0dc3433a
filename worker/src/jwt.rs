//! RS256 JSON Web Tokens for the providers' assertions (Salesforce JWT bearer, GitHub App JWT),
//! signed by Vault Transit (the key never leaves Vault) or, in the legacy mode, by a key read from KV.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;

/// Why a token could not be signed (never includes key material).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a PEM RSA private key (PKCS#1 or PKCS#8).
    #[error("the private key is not a PEM-encoded RSA private key (PKCS#1 or PKCS#8)")]
    BadKey,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// Vault Transit did not sign (its message says why: a missing key, a denied path).
    #[error("Vault Transit could not sign with key {key:?}: {detail}")]
    Transit {
        /// `mount/name` of the key.
        key: String,
        /// Vault's answer.
        detail: String,
    },
}

/// Who signs an assertion.
pub enum Signer<'a> {
    /// A key held in this process (legacy: read from KV).
    Local(Box<RsaSigner>),
    /// Vault Transit (`<mount>/sign/<name>/sha2-256`, PKCS#1 v1.5): the key stays in Vault.
    Transit {
        /// The Vault endpoint.
        vault: &'a crate::vault::Vault,
        /// The attempt's Vault token.
        token: &'a secrecy::SecretString,
        /// The key.
        key: &'a ephemera_crds::TransitKey,
    },
}

impl Signer<'_> {
    /// `header.claims.signature`, RS256.
    pub async fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        match self {
            Signer::Local(k) => k.sign(claims),
            Signer::Transit { vault, token, key } => {
                let input = signing_input(claims)?;
                let sig = vault.transit_sign(token, key, input.as_bytes()).await.map_err(|e| JwtError::Transit {
                    key: format!("{}/{}", key.mount, key.name),
                    detail: e.to_string(),
                })?;
                Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
            }
        }
    }
}

/// `base64url(header).base64url(claims)`.
fn signing_input<C: Serialize>(claims: &C) -> Result<String, JwtError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| JwtError::Sign)?);
    Ok(format!("{header}.{body}"))
}

/// An RSA signing key; its DER is held by ring and dropped with it.
pub struct RsaSigner(RsaKeyPair);

impl RsaSigner {
    /// Parses a PEM private key (`BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, JwtError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| JwtError::BadKey)?;
        let pair = match &der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err(JwtError::BadKey),
        };
        pair.map(RsaSigner).map_err(|_| JwtError::BadKey)
    }

    /// `header.claims.signature`, RS256.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let input = signing_input(claims)?;
        let mut sig = vec![0u8; self.0.public().modulus_len()];
        self.0.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).map_err(|_| JwtError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_keys_are_refused_without_echoing_them() {
        let err = RsaSigner::from_pem("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("not a PEM-encoded RSA private key") && !text.contains("c2VjcmV0"));
    }

    #[test]
    fn signs_verifiable_rs256_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        let ok = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(ok.success());
        let signer = RsaSigner::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
        let token = signer.sign(&serde_json::json!({"iss": "x"})).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signer.0.public().as_ref().to_vec(),
        );
        public.verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    }
}
