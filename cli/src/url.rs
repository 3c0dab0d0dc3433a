//! Percent-encoding of one URL path segment or query value (RFC 3986 unreserved characters kept),
//! so a Task name, a filter or an audience can never break out of its place in a URL.

/// `s` as one URL path segment or query value.
pub fn component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_cannot_break_out_of_their_segment() {
        assert_eq!(component("t-1"), "t-1");
        assert_eq!(component("../x?y=1&z"), "..%2Fx%3Fy%3D1%26z");
        assert_eq!(component("a=b,c"), "a%3Db%2Cc");
    }
}
