//! GitLab: the secret token is sent as it is in `X-Gitlab-Token` (compared in constant time). When
//! the webhook has a signing token, GitLab also signs the delivery the Standard Webhooks way
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`): then that signature is required. The
//! event is `X-Gitlab-Event` (e.g. `Push Hook`); the dedupe key is the signed `webhook-id` when
//! signed, else `Idempotency-Key` (the same on every retry), else `X-Gitlab-Event-UUID`.

use super::{same, standard, Delivery, Refusal, Verified};

/// Checks a GitLab delivery.
pub fn verify(d: &Delivery<'_>, secrets: &[&[u8]], window_seconds: i64) -> Result<Verified, Refusal> {
    let event = d.require("x-gitlab-event")?.to_string();
    let delivery = if d.header("webhook-signature").is_some() {
        // The signed id, not an unsigned header, so a replay within the window is the same delivery.
        standard::verify(d, secrets, window_seconds)?.delivery
    } else {
        let token = d.require("x-gitlab-token")?;
        if !secrets.iter().any(|s| same(token.as_bytes(), s)) {
            return Err(Refusal::BadSignature);
        }
        d.header("idempotency-key")
            .or(d.header("x-gitlab-event-uuid"))
            .ok_or(Refusal::MissingHeader("idempotency-key"))?
            .to_string()
    };
    Ok(Verified { event, delivery })
}

#[cfg(test)]
mod tests {
    use super::super::testing::headers;
    use super::*;

    #[test]
    fn the_secret_token_must_match_exactly() {
        let h = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "s3cret"), ("idempotency-key", "f1e2")]);
        let d = Delivery { headers: &h, body: b"{}", now: 0 };
        assert_eq!(
            verify(&d, &[b"s3cret"], 300).unwrap(),
            Verified { event: "Push Hook".into(), delivery: "f1e2".into() }
        );
        assert_eq!(verify(&d, &[b"s3cre"], 300), Err(Refusal::BadSignature), "a prefix is not the token");
        assert_eq!(verify(&d, &[b"s3cret!"], 300), Err(Refusal::BadSignature));
        let no_token = headers(&[("x-gitlab-event", "Push Hook"), ("idempotency-key", "f1e2")]);
        let d = Delivery { headers: &no_token, body: b"{}", now: 0 };
        assert_eq!(verify(&d, &[b"s3cret"], 300), Err(Refusal::MissingHeader("x-gitlab-token")));
    }

    #[test]
    fn the_event_uuid_is_the_dedupe_key_when_there_is_no_idempotency_key() {
        let h =
            headers(&[("x-gitlab-event", "Tag Push Hook"), ("x-gitlab-token", "t"), ("x-gitlab-event-uuid", "u-1")]);
        assert_eq!(verify(&Delivery { headers: &h, body: b"{}", now: 0 }, &[b"t"], 300).unwrap().delivery, "u-1");
    }

    #[test]
    fn a_signed_delivery_is_checked_as_standard_webhooks_and_a_forged_one_refused() {
        let body = br#"{"object_kind":"push"}"#;
        let key = b"a signing key of 24 bytes";
        let sig = super::super::hmac_sha256(key, &[b"wh-1", b".", b"100", b".", body]);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        let good = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("webhook-id", "wh-1"),
            ("webhook-timestamp", "100"),
            ("webhook-signature", &format!("v1,{b64}")),
            ("idempotency-key", "k-1"),
        ]);
        let v = verify(&Delivery { headers: &good, body, now: 120 }, &[key], 300).unwrap();
        assert_eq!(v.delivery, "wh-1", "the signed id");
        // A correct X-Gitlab-Token does not rescue a delivery whose signature is wrong.
        let forged = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "a signing key of 24 bytes"),
            ("webhook-id", "wh-1"),
            ("webhook-timestamp", "100"),
            ("webhook-signature", "v1,AAAA"),
        ]);
        assert_eq!(verify(&Delivery { headers: &forged, body, now: 120 }, &[key], 300), Err(Refusal::BadSignature));
    }
}
