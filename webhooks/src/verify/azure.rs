//! Azure DevOps service hooks sign nothing. A subscription can send basic authentication and custom
//! headers; a trigger requires one of them to carry its secret, compared in constant time. This is
//! a weaker guarantee than a signature (a secret that leaks lets anyone send anything, and the body is
//! not bound to it), so serve it only behind TLS. The event is the body's `eventType`; the dedupe key
//! is the subscription and notification ids (the same when Azure DevOps retries a notification).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{same, Delivery, Refusal, Verified};

/// How a trigger expects Azure DevOps to present its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// `Authorization: Basic base64(<username>:<secret>)`.
    Basic {
        /// The username the subscription sends.
        username: String,
    },
    /// A custom header whose value is the secret.
    Header {
        /// Its name (lowercase).
        name: String,
    },
}

/// Checks an Azure DevOps delivery.
pub fn verify(d: &Delivery<'_>, secrets: &[&[u8]], presented: &Presented) -> Result<Verified, Refusal> {
    let genuine = match presented {
        Presented::Basic { username } => {
            let auth = d.require("authorization")?;
            let b64 = auth.strip_prefix("Basic ").ok_or(Refusal::BadSignature)?;
            let given = STANDARD.decode(b64).map_err(|_| Refusal::BadSignature)?;
            secrets.iter().any(|s| {
                let mut expected = format!("{username}:").into_bytes();
                expected.extend_from_slice(s);
                same(&given, &expected)
            })
        }
        Presented::Header { name } => {
            let value = d
                .headers
                .get(name.as_str())
                .map(|v| v.as_bytes())
                .ok_or(Refusal::MissingHeader("the trigger's secret header"))?;
            secrets.iter().any(|s| same(value, s))
        }
    };
    if !genuine {
        return Err(Refusal::BadSignature);
    }
    let body: serde_json::Value =
        serde_json::from_slice(d.body).map_err(|_| Refusal::Malformed("the body is not JSON"))?;
    let event = body["eventType"].as_str().ok_or(Refusal::Malformed("the body has no eventType"))?.to_string();
    let delivery = match (body["subscriptionId"].as_str(), body["notificationId"].as_i64()) {
        (Some(sub), Some(n)) => format!("{sub}/{n}"),
        _ => body["id"].as_str().ok_or(Refusal::Malformed("the body has no id"))?.to_string(),
    };
    Ok(Verified { event, delivery })
}

#[cfg(test)]
mod tests {
    use super::super::testing::headers;
    use super::*;

    const BODY: &[u8] = br#"{"subscriptionId":"00000000-0000-0000-0000-000000000000","notificationId":3,"id":"03c164c2-8912-4d5e-8009-3707d5f83734","eventType":"git.push","publisherId":"tfs"}"#;

    #[test]
    fn basic_authentication_with_the_secret_as_password_verifies() {
        let auth = format!("Basic {}", STANDARD.encode("azdo:hook-secret"));
        let h = headers(&[("authorization", &auth)]);
        let basic = Presented::Basic { username: "azdo".into() };
        let v = verify(&Delivery { headers: &h, body: BODY, now: 0 }, &[b"hook-secret"], &basic).unwrap();
        assert_eq!((v.event.as_str(), v.delivery.as_str()), ("git.push", "00000000-0000-0000-0000-000000000000/3"));
        assert_eq!(
            verify(&Delivery { headers: &h, body: BODY, now: 0 }, &[b"other"], &basic),
            Err(Refusal::BadSignature)
        );
        let wrong_user = Presented::Basic { username: "someone".into() };
        assert_eq!(
            verify(&Delivery { headers: &h, body: BODY, now: 0 }, &[b"hook-secret"], &wrong_user),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_secret_header_verifies_and_its_absence_is_refused() {
        let header = Presented::Header { name: "x-ephemera-secret".into() };
        let h = headers(&[("x-ephemera-secret", "hook-secret")]);
        assert!(verify(&Delivery { headers: &h, body: BODY, now: 0 }, &[b"hook-secret"], &header).is_ok());
        let none = headers(&[]);
        assert!(verify(&Delivery { headers: &none, body: BODY, now: 0 }, &[b"hook-secret"], &header)
            .unwrap_err()
            .is_unauthenticated());
        let h = headers(&[("x-ephemera-secret", "hook-secret")]);
        assert!(matches!(
            verify(&Delivery { headers: &h, body: b"not json", now: 0 }, &[b"hook-secret"], &header),
            Err(Refusal::Malformed(_))
        ));
    }
}
