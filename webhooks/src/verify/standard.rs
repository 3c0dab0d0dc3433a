//! Standard Webhooks (standardwebhooks.com), also how a Salesforce Flow or Apex callout, GitLab's
//! signing tokens and any CI system can call Ephemera: the signed content is
//! `<webhook-id>.<webhook-timestamp>.<body>`, HMAC-SHA256 under the secret (`whsec_<base64>`), sent
//! as a space-separated list of `v1,<base64>` signatures (several during a rotation); a timestamp
//! outside the replay window is refused; `webhook-id` is the dedupe key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{hmac_sha256, same, Delivery, Refusal, Verified};

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// The replay window when a trigger sets none (the specification's recommendation).
pub const DEFAULT_WINDOW_SECONDS: i64 = 300;

/// The HMAC key of a secret: the bytes after `whsec_`, base64-decoded; a secret without that prefix
/// is used as it is.
pub fn key_of(secret: &[u8]) -> Result<Vec<u8>, Refusal> {
    let key = match secret.strip_prefix(b"whsec_") {
        Some(b64) => STANDARD.decode(b64).map_err(|_| Refusal::BadSignature)?,
        None => secret.to_vec(),
    };
    // A short key is one anyone can guess: such a secret verifies nothing.
    if key.len() < MIN_KEY_BYTES {
        return Err(Refusal::BadSignature);
    }
    Ok(key)
}

/// Checks a Standard Webhooks delivery; `event` is what the sender names it (the body's `type`
/// field, as the specification suggests, when the source has no event header).
pub fn verify(d: &Delivery<'_>, secrets: &[&[u8]], window_seconds: i64) -> Result<Verified, Refusal> {
    let id = d.require("webhook-id")?;
    let timestamp = d.require("webhook-timestamp")?;
    let signatures = d.require("webhook-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| Refusal::Malformed("webhook-timestamp is not Unix seconds"))?;
    if d.now.abs_diff(ts) > window_seconds.max(0).unsigned_abs() {
        return Err(Refusal::Stale);
    }
    let given: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    if given.is_empty() {
        return Err(Refusal::Malformed("webhook-signature has no v1 signature"));
    }
    let keys: Vec<Vec<u8>> = secrets.iter().map(|s| key_of(s)).collect::<Result<_, _>>()?;
    let genuine = keys.iter().any(|k| {
        let expected = hmac_sha256(k, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", d.body]);
        given.iter().any(|g| same(g, &expected))
    });
    if !genuine {
        return Err(Refusal::BadSignature);
    }
    let event = serde_json::from_slice::<serde_json::Value>(d.body)
        .ok()
        .and_then(|b| b["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(Verified { event, delivery: id.to_string() })
}

#[cfg(test)]
mod tests {
    use super::super::testing::headers;
    use super::*;

    // The specification's published test vector.
    const SECRET: &[u8] = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn h(sig: &str, ts: i64) -> http::HeaderMap {
        headers(&[("webhook-id", ID), ("webhook-timestamp", &ts.to_string()), ("webhook-signature", sig)])
    }

    #[test]
    fn the_specifications_test_vector_verifies() {
        let hs = h(SIGNATURE, TS);
        let v = verify(&Delivery { headers: &hs, body: BODY, now: TS + 10 }, &[SECRET], 300).unwrap();
        assert_eq!(v.delivery, ID);
    }

    #[test]
    fn any_of_several_signatures_may_match_and_unknown_versions_are_ignored() {
        let hs = h(&format!("v1a,abc v1,AAAA {SIGNATURE}"), TS);
        assert!(verify(&Delivery { headers: &hs, body: BODY, now: TS }, &[SECRET], 300).is_ok());
    }

    #[test]
    fn replays_outside_the_window_tampering_and_wrong_secrets_are_refused() {
        let hs = h(SIGNATURE, TS);
        let late = Delivery { headers: &hs, body: BODY, now: TS + 301 };
        assert_eq!(verify(&late, &[SECRET], 300), Err(Refusal::Stale));
        let early = Delivery { headers: &hs, body: BODY, now: TS - 301 };
        assert_eq!(verify(&early, &[SECRET], 300), Err(Refusal::Stale), "a timestamp from the future too");
        let tampered = Delivery { headers: &hs, body: br#"{"test": 2432232315}"#, now: TS };
        assert_eq!(verify(&tampered, &[SECRET], 300), Err(Refusal::BadSignature));
        let other = Delivery { headers: &hs, body: BODY, now: TS };
        assert_eq!(verify(&other, &[b"whsec_c2VjcmV0c2VjcmV0c2VjcmV0"], 300), Err(Refusal::BadSignature));
        assert_eq!(verify(&other, &[b"whsec_"], 300), Err(Refusal::BadSignature), "an empty key verifies nothing");
        let far = h(SIGNATURE, i64::MIN);
        assert_eq!(verify(&Delivery { headers: &far, body: BODY, now: TS }, &[SECRET], 300), Err(Refusal::Stale));
        // The same signature under a shifted timestamp header does not verify: the timestamp is signed.
        let shifted = h(SIGNATURE, TS + 1);
        assert_eq!(
            verify(&Delivery { headers: &shifted, body: BODY, now: TS }, &[SECRET], 300),
            Err(Refusal::BadSignature)
        );
        let unsigned = h("v2,abc", TS);
        assert!(matches!(
            verify(&Delivery { headers: &unsigned, body: BODY, now: TS }, &[SECRET], 300),
            Err(Refusal::Malformed(_))
        ));
    }
}
