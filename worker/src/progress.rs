//! The progress line protocol. A task reports progress by printing, on its standard output, a line
//!
//! ```text
//! ::progress pct=40 msg=Deploying metadata
//! ```
//!
//! `pct` is 0-100 (optional), `msg` is the rest of the line (optional, at most 200 bytes kept). The
//! line is still forwarded to the log; the worker keeps the last one for its report (and later
//! issues stream them live).

/// Longest message kept.
const MAX_MSG: usize = 200;

/// One parsed progress line.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Percentage, when given.
    pub pct: Option<u8>,
    /// Message, possibly empty.
    pub msg: String,
}

/// Parses a progress line; None for every other line (and for malformed ones).
pub fn parse(line: &str) -> Option<Progress> {
    let rest = line.trim_end_matches(['\r', '\n']).strip_prefix("::progress")?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let mut rest = rest.trim_start();
    let mut pct = None;
    if let Some(p) = rest.strip_prefix("pct=") {
        let (num, tail) = p.split_once(' ').unwrap_or((p, ""));
        let value: u8 = num.parse().ok().filter(|v| *v <= 100)?;
        pct = Some(value);
        rest = tail.trim_start();
    }
    let msg = match rest.strip_prefix("msg=") {
        Some(m) => m,
        None if rest.is_empty() => "",
        None => return None,
    };
    let mut msg = msg.to_string();
    if msg.len() > MAX_MSG {
        let mut cut = MAX_MSG;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    Some(Progress { pct, msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse_and_others_do_not() {
        assert_eq!(
            parse("::progress pct=40 msg=Deploying metadata\n"),
            Some(Progress { pct: Some(40), msg: "Deploying metadata".into() })
        );
        assert_eq!(parse("::progress msg=Almost"), Some(Progress { pct: None, msg: "Almost".into() }));
        assert_eq!(parse("::progress pct=100"), Some(Progress { pct: Some(100), msg: String::new() }));
        assert_eq!(parse("::progress pct=140 msg=x"), None);
        assert_eq!(parse("::progressive"), None);
        assert_eq!(parse("echo ::progress pct=1"), None);
        assert_eq!(parse("::progress whatever"), None);
    }
}
