//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`; the event in
//! `X-GitHub-Event`; `X-GitHub-Delivery` is the same GUID when a delivery is redelivered.

use super::{hex_signed, Delivery, Refusal, Verified};

/// Checks a GitHub delivery against the trigger's secrets (current, and previous during a rotation).
pub fn verify(d: &Delivery<'_>, secrets: &[&[u8]]) -> Result<Verified, Refusal> {
    hex_signed(d, secrets, ["x-hub-signature-256", "x-github-event", "x-github-delivery"])
}

#[cfg(test)]
mod tests {
    use super::super::testing::headers;
    use super::*;

    // GitHub's documented test values: secret "It's a Secret to Everybody", payload "Hello, World!".
    const SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const SECRET: &[u8] = b"It's a Secret to Everybody";

    fn delivery(sig: &str) -> http::HeaderMap {
        headers(&[
            ("x-hub-signature-256", sig),
            ("x-github-event", "push"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ])
    }

    #[test]
    fn githubs_documented_signature_verifies() {
        let h = delivery(SIGNATURE);
        let d = Delivery { headers: &h, body: b"Hello, World!", now: 0 };
        let v = verify(&d, &[SECRET]).unwrap();
        assert_eq!((v.event.as_str(), v.delivery.as_str()), ("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958"));
    }

    #[test]
    fn a_tampered_body_a_wrong_secret_or_a_missing_signature_is_refused() {
        let h = delivery(SIGNATURE);
        let tampered = Delivery { headers: &h, body: b"Hello, World?", now: 0 };
        assert_eq!(verify(&tampered, &[SECRET]), Err(Refusal::BadSignature));
        let d = Delivery { headers: &h, body: b"Hello, World!", now: 0 };
        assert_eq!(verify(&d, &[b"another secret"]), Err(Refusal::BadSignature));
        assert_eq!(verify(&d, &[]), Err(Refusal::BadSignature), "no secret verifies nothing");
        let none = headers(&[("x-github-event", "push")]);
        let d = Delivery { headers: &none, body: b"Hello, World!", now: 0 };
        assert_eq!(verify(&d, &[SECRET]), Err(Refusal::MissingHeader("x-hub-signature-256")));
        let sha1 = delivery("sha1=0123");
        let d = Delivery { headers: &sha1, body: b"Hello, World!", now: 0 };
        assert!(matches!(verify(&d, &[SECRET]), Err(Refusal::Malformed(_))), "the SHA-1 header is not accepted");
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let h = delivery(SIGNATURE);
        let d = Delivery { headers: &h, body: b"Hello, World!", now: 0 };
        assert!(verify(&d, &[b"the new secret", SECRET]).is_ok());
    }
}
