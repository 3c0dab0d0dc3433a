//! Independent RS256 JWT verification for the fakes (deliberately not the worker's code).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde_json::Value;

/// The public half of a PEM RSA private key, as PKCS#1 DER.
pub fn public_key(private_pem: &str) -> Vec<u8> {
    let der = PrivateKeyDer::from_pem_slice(private_pem.as_bytes()).expect("PEM private key");
    let pair = match &der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => panic!("not an RSA key"),
    }
    .expect("RSA key");
    pair.public().as_ref().to_vec()
}

/// Why a token was rejected.
#[derive(Debug, PartialEq)]
pub enum Rejected {
    /// Not three base64url parts of JSON.
    Malformed,
    /// `alg` is not RS256.
    Algorithm,
    /// The signature does not verify.
    Signature,
}

/// The unverified claims (to find the key), or why the token is malformed.
pub fn claims(token: &str) -> Result<Value, Rejected> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Rejected::Malformed);
    };
    let header: Value = decode(h)?;
    if header["alg"] != "RS256" {
        return Err(Rejected::Algorithm);
    }
    decode(c)
}

/// Verifies the signature with a PKCS#1 DER public key.
pub fn verify(token: &str, public_der: &[u8]) -> Result<(), Rejected> {
    let (input, sig) = token.rsplit_once('.').ok_or(Rejected::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Rejected::Malformed)?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_der)
        .verify(input.as_bytes(), &sig)
        .map_err(|_| Rejected::Signature)
}

fn decode(part: &str) -> Result<Value, Rejected> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Rejected::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejected::Malformed)
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A random token with a prefix (hex of 20 random bytes).
pub fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 20];
    getrandom::fill(&mut b).expect("random");
    format!("{prefix}{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// A fresh 2048-bit RSA private key (PKCS#8 PEM) from openssl.
pub fn generate_key() -> String {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("openssl on PATH");
    assert!(out.status.success(), "openssl genpkey failed");
    String::from_utf8(out.stdout).expect("PEM")
}

/// Signs `claims` with a PEM RSA key as an RS256 JWT carrying `kid` (for the test OIDC issuer).
pub fn sign(private_pem: &str, kid: &str, claims: &Value) -> String {
    let der = PrivateKeyDer::from_pem_slice(private_pem.as_bytes()).expect("PEM private key");
    let PrivateKeyDer::Pkcs8(k) = &der else { panic!("PKCS#8 key expected") };
    let pair = RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).expect("RSA key");
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"))
    );
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig)
        .expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The JWK (`n`, `e` base64url) of a PEM RSA key.
pub fn jwk(private_pem: &str, kid: &str) -> Value {
    let der = PrivateKeyDer::from_pem_slice(private_pem.as_bytes()).expect("PEM private key");
    let PrivateKeyDer::Pkcs8(k) = &der else { panic!("PKCS#8 key expected") };
    let pair = RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).expect("RSA key");
    let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    let (n, e) = (parts.n, parts.e);
    serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
}
