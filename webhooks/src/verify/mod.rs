//! Is a delivery genuine? One module per source, each checking it the way that provider signs (or,
//! for providers that sign nothing, authenticates) its deliveries, and naming the event and the
//! delivery id the provider keeps across redeliveries (the dedupe key). Pure: headers, body, the
//! trigger's secrets and the time in; [`Verified`] or a [`Refusal`] out.

pub mod azure;
pub mod bitbucket;
pub mod github;
pub mod gitlab;
pub mod salesforce;
pub mod standard;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a genuine delivery says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The provider's event name (GitHub `push`, GitLab `Push Hook`, Bitbucket `repo:push`, ...).
    pub event: String,
    /// The id the provider keeps across redeliveries of this delivery (the dedupe key).
    pub delivery: String,
}

/// Why a delivery is refused before anything else is looked at. The reason is for the delivery log;
/// the sender only learns that it is unauthenticated or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header the source always sends is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// No configured secret produces the signature (or matches the token).
    #[error("the signature does not match")]
    BadSignature,
    /// The signed timestamp is outside the replay window.
    #[error("the delivery's timestamp is outside the replay window")]
    Stale,
    /// A header or the body is not what the source sends.
    #[error("malformed delivery: {0}")]
    Malformed(&'static str),
}

impl Refusal {
    /// Whether the sender failed to authenticate (401) rather than sent something malformed (400).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Refusal::MissingHeader(_) | Refusal::BadSignature | Refusal::Stale)
    }
}

/// A delivery as it arrived.
pub struct Delivery<'a> {
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// Its raw body (signatures are over these bytes, never over re-serialized JSON).
    pub body: &'a [u8],
    /// Now, in Unix seconds (replay windows).
    pub now: i64,
}

impl Delivery<'_> {
    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A header that must be present.
    pub fn require(&self, name: &'static str) -> Result<&str, Refusal> {
        self.header(name).ok_or(Refusal::MissingHeader(name))
    }
}

/// HMAC-SHA256 of `parts` concatenated, under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return [0; 32] };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `given` equals `expected`, in time independent of where they differ.
pub fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

/// A delivery signed `<signature header>: sha256=<hex HMAC-SHA256 of the raw body>` (GitHub's
/// `X-Hub-Signature-256`, Bitbucket's `X-Hub-Signature`), with its event and delivery id headers.
pub(crate) fn hex_signed(
    d: &Delivery<'_>,
    secrets: &[&[u8]],
    [signature, event, delivery]: [&'static str; 3],
) -> Result<Verified, Refusal> {
    let hex =
        d.require(signature)?.strip_prefix("sha256=").ok_or(Refusal::Malformed("the signature is not sha256=<hex>"))?;
    hex_hmac_matches(secrets, d.body, hex)?;
    Ok(Verified { event: d.require(event)?.to_string(), delivery: d.require(delivery)?.to_string() })
}

/// Whether any secret's HMAC of the body, hex-encoded, is `hex` (`sha256=<hex>` style schemes).
fn hex_hmac_matches(secrets: &[&[u8]], body: &[u8], hex: &str) -> Result<(), Refusal> {
    let given = decode_hex(hex).ok_or(Refusal::Malformed("the signature is not hex"))?;
    if secrets.iter().any(|s| same(&given, &hmac_sha256(s, &[body]))) {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Building deliveries for the tests.
    use http::{HeaderMap, HeaderName, HeaderValue};

    /// Headers from pairs.
    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// Lowercase hex.
    pub fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
