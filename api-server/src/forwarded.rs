//! Who a request came from, and its id, when an edge proxy stands in front: `X-Forwarded-For` and
//! `X-Request-Id` are believed only from the addresses the admin lists as trusted proxies
//! (`--trusted-proxies`); from anyone else they are the client's own claims and are ignored.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Longest request id taken from the edge (Caddy's are 36-character UUIDs).
const MAX_REQUEST_ID: usize = 128;

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// A trusted-proxy entry that is neither an address nor a CIDR range.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8)")]
pub struct BadRange(String);

impl FromStr for TrustedProxies {
    type Err = BadRange;

    /// Comma-separated addresses or CIDR ranges; empty trusts nobody.
    fn from_str(s: &str) -> Result<Self, BadRange> {
        let ranges = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadRange(p.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(ranges))
    }
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 peers count as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left were written
    /// by the client and prove nothing).
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// The request's id: the trusted edge's, else a fresh one (also when the peer is unknown).
    pub fn request_id(&self, peer: Option<IpAddr>, header: Option<&str>) -> String {
        match header {
            Some(id) if peer.is_some_and(|p| self.trusts(p)) && valid_request_id(id) => id.to_string(),
            _ => fresh_request_id(),
        }
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// 128 random bits, hex.
fn fresh_request_id() -> String {
    let mut raw = [0u8; 16];
    // The id only correlates log lines: a failed draw still yields a usable (zero) id.
    let _ = getrandom::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_ranges_and_name_a_bad_entry() {
        let t: TrustedProxies = "10.0.0.0/8, 192.168.1.7,fc00::/7".parse().unwrap();
        assert!(t.trusts(ip("10.1.2.3")) && t.trusts(ip("192.168.1.7")) && t.trusts(ip("fd00::1")));
        assert!(!t.trusts(ip("192.168.1.8")) && !t.trusts(ip("8.8.8.8")));
        assert!(t.trusts(ip("::ffff:10.0.0.1")), "an IPv4-mapped peer is the IPv4 address");
        assert!("".parse::<TrustedProxies>().unwrap().0.is_empty());
        let err = "10.0.0.0/8,edge".parse::<TrustedProxies>().unwrap_err();
        assert!(err.to_string().contains("\"edge\""), "{err}");
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_a_trusted_proxy() {
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let cases: &[(&str, &[&str], &str)] = &[
            // (peer, X-Forwarded-For headers, client)
            ("203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            ("10.0.0.5", &["198.51.100.7"], "198.51.100.7"),
            // The client prepended a lie; the edge appended what it saw.
            ("10.0.0.5", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            ("10.0.0.5", &["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
            // Two trusted hops, then the client.
            ("10.0.0.5", &["198.51.100.7, 10.0.0.9"], "198.51.100.7"),
            ("10.0.0.5", &[], "10.0.0.5"),
            // Garbage stops the walk at the last good hop.
            ("10.0.0.5", &["198.51.100.7, not-an-ip, 10.0.0.9"], "10.0.0.9"),
            ("10.0.0.5", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.5", &["198.51.100.7:5000"], "198.51.100.7"),
        ];
        for (peer, headers, want) in cases {
            assert_eq!(t.client_ip(ip(peer), headers.iter().copied()), ip(want), "{peer} {headers:?}");
        }
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_ip(ip("10.0.0.5"), ["198.51.100.7"].into_iter()), ip("10.0.0.5"));
    }

    #[test]
    fn the_edges_request_id_is_kept_and_anyone_elses_is_replaced() {
        let t: TrustedProxies = "127.0.0.1".parse().unwrap();
        let edge_id = "8d2c0e5e-93b7-4bcb-8d1c-3c7e0a9a9b11";
        assert_eq!(t.request_id(Some(ip("127.0.0.1")), Some(edge_id)), edge_id);
        let spoofed = t.request_id(Some(ip("203.0.113.9")), Some(edge_id));
        assert_ne!(spoofed, edge_id);
        assert_eq!(spoofed.len(), 32);
        for bad in ["", "a b", "x\r\nSet-Cookie: a", &"a".repeat(129)] {
            assert_ne!(t.request_id(Some(ip("127.0.0.1")), Some(bad)), bad);
        }
        assert_ne!(t.request_id(None, Some(edge_id)), edge_id, "no known peer, no trust");
        assert_ne!(fresh_request_id(), fresh_request_id());
    }
}
