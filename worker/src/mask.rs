//! Masks secret values in everything the worker forwards or reports (the task's output, its result,
//! progress messages), the way CI systems mask secrets in logs: a task that prints its token shows
//! `***` instead.

use secrecy::{ExposeSecret, SecretString};

/// Values shorter than this are not masked (masking `true` or `1` would garble every log).
const MIN_LEN: usize = 6;
/// What a secret becomes.
const MASK: &[u8] = b"***";

/// The secret values to hide; zeroized on drop.
#[derive(Default)]
pub struct Masker {
    values: Vec<SecretString>,
}

impl Masker {
    /// Adds a value (multi-line values are also masked line by line, e.g. a PEM key).
    pub fn add(&mut self, value: &str) {
        for v in std::iter::once(value).chain(value.lines()) {
            let v = v.trim();
            if v.len() >= MIN_LEN && !self.values.iter().any(|s| s.expose_secret() == v) {
                self.values.push(SecretString::from(v.to_string()));
            }
        }
        // Longest first, so a value containing another is replaced whole.
        self.values.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
    }

    /// `line` with every secret value replaced by `***`.
    pub fn apply(&self, line: &[u8]) -> Vec<u8> {
        let mut out = line.to_vec();
        for secret in &self.values {
            let needle = secret.expose_secret().as_bytes();
            if out.len() < needle.len() {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(needle) {
                    next.extend_from_slice(MASK);
                    i += needle.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            zeroize::Zeroize::zeroize(&mut out);
            out = next;
        }
        out
    }

    /// Length of the longest secret value (0 when there is none).
    pub fn longest(&self) -> usize {
        self.values.first().map(|s| s.expose_secret().len()).unwrap_or(0)
    }

    /// The largest cut point at most `cut` that splits no whole occurrence of a secret in `buf`.
    pub fn safe_cut(&self, buf: &[u8], mut cut: usize) -> usize {
        // Each move goes left, to the start of a whole secret that crossed the cut; repeat until none does.
        while let Some(start) = self.values.iter().find_map(|secret| {
            let needle = secret.expose_secret().as_bytes();
            (cut.saturating_sub(needle.len() - 1)..cut).find(|&start| buf[start..].starts_with(needle))
        }) {
            cut = start;
        }
        cut
    }

    /// `text` masked, as a string.
    pub fn apply_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.apply(text.as_bytes())).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_their_lines_are_masked_short_values_are_not() {
        let mut m = Masker::default();
        m.add("ghs_abcdefgh123");
        m.add("-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----");
        m.add("true");
        assert_eq!(m.apply_str("token=ghs_abcdefgh123!"), "token=***!");
        assert_eq!(m.apply_str("x MIIEvQIBADANBg y"), "x *** y");
        assert_eq!(m.apply_str("ok: true"), "ok: true");
    }

    #[test]
    fn a_cut_never_splits_a_secret() {
        let mut m = Masker::default();
        m.add("abcdefgh");
        let buf = b"0123abcdefgh4567";
        assert_eq!(m.safe_cut(buf, 6), 4, "moved before the secret");
        assert_eq!(m.safe_cut(buf, 4), 4);
        assert_eq!(m.safe_cut(buf, 12), 12, "right after it is fine");
        assert_eq!(m.safe_cut(buf, 14), 14);
    }
}
