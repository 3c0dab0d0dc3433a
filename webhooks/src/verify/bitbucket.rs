//! Bitbucket Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (sent only when the
//! webhook has a secret: a trigger always requires one); the event in `X-Event-Key` (e.g.
//! `repo:push`); `X-Request-UUID` identifies the delivery across its attempts (`X-Attempt-Number`).

use super::{hex_signed, Delivery, Refusal, Verified};

/// Checks a Bitbucket Cloud delivery.
pub fn verify(d: &Delivery<'_>, secrets: &[&[u8]]) -> Result<Verified, Refusal> {
    hex_signed(d, secrets, ["x-hub-signature", "x-event-key", "x-request-uuid"])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{headers, hex};
    use super::*;

    #[test]
    fn a_signed_push_verifies_and_a_tampered_one_does_not() {
        let body = br#"{"push":{"changes":[]}}"#;
        let sig = format!("sha256={}", hex(&super::super::hmac_sha256(b"bb-secret", &[body])));
        let h = headers(&[
            ("x-hub-signature", &sig),
            ("x-event-key", "repo:push"),
            ("x-request-uuid", "{6d0a}"),
            ("x-attempt-number", "2"),
        ]);
        let v = verify(&Delivery { headers: &h, body, now: 0 }, &[b"bb-secret"]).unwrap();
        assert_eq!((v.event.as_str(), v.delivery.as_str()), ("repo:push", "{6d0a}"));
        assert_eq!(verify(&Delivery { headers: &h, body: b"{}", now: 0 }, &[b"bb-secret"]), Err(Refusal::BadSignature));
        let unsigned = headers(&[("x-event-key", "repo:push"), ("x-request-uuid", "{6d0a}")]);
        assert_eq!(
            verify(&Delivery { headers: &unsigned, body, now: 0 }, &[b"bb-secret"]),
            Err(Refusal::MissingHeader("x-hub-signature"))
        );
    }
}
