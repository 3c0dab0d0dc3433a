//! Every verifier on hostile headers and bodies: it must answer (genuine or a refusal), never
//! panic, and never accept a delivery whose signature was not made with the secret.
#![no_main]

use ephemera_webhooks::verify::{self, azure, Delivery};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz secret";

/// Header names the verifiers read; the fuzzer picks which get which bytes.
const NAMES: [&str; 16] = [
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
    "x-gitlab-token",
    "x-gitlab-event",
    "idempotency-key",
    "x-gitlab-event-uuid",
    "x-hub-signature",
    "x-event-key",
    "x-request-uuid",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
    "x-hook-secret",
    "content-type",
];

fuzz_target!(|data: &[u8]| {
    // Layout: [count] then `count` × [name index, len, value...], then the body.
    let mut headers = HeaderMap::new();
    let mut rest = data;
    let count = rest.first().copied().unwrap_or(0) % 8;
    rest = rest.get(1..).unwrap_or_default();
    for _ in 0..count {
        let (Some(&n), Some(&len)) = (rest.first(), rest.get(1)) else { break };
        let len = usize::from(len).min(rest.len().saturating_sub(2));
        let value = &rest[2..2 + len];
        rest = &rest[2 + len..];
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(NAMES[usize::from(n) % NAMES.len()]), v);
        }
    }
    let d = Delivery { headers: &headers, body: rest, now: 1_700_000_000 };
    let secrets: &[&[u8]] = &[SECRET, b"whsec_ZnV6eiBrZXk="];
    let _ = verify::github::verify(&d, secrets);
    let _ = verify::gitlab::verify(&d, secrets, 300);
    let _ = verify::bitbucket::verify(&d, secrets);
    let _ = verify::standard::verify(&d, secrets, 300);
    let _ = azure::verify(&d, secrets, &azure::Presented::Basic { username: "u".into() });
    let _ = azure::verify(&d, secrets, &azure::Presented::Header { name: "x-hook-secret".into() });
    let _ = verify::salesforce::parse(rest, &["00D5e000000K1uK".into()]);
    // A GitHub signature over this body verifies only when it is the real one.
    let real = verify::hmac_sha256(SECRET, &[rest]);
    if let Some(given) = headers.get("x-hub-signature-256") {
        let hex: String = real.iter().map(|b| format!("{b:02x}")).collect();
        let genuine = given.as_bytes() == format!("sha256={hex}").as_bytes();
        let accepted = verify::github::verify(&d, &[SECRET]).is_ok();
        assert!(!accepted || genuine, "a signature that is not the real one was accepted");
    }
});
