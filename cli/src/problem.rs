//! What the CLI says when a request fails: the API's problem document (RFC 9457) as the server
//! wrote it (title, detail, every field error), or, when the answer is not one (an edge, a proxy),
//! its status and a bounded, printable excerpt. Never a stack trace, never the token.

use serde::Deserialize;

use crate::exit::Outcome;

/// One field the server refused.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FieldError {
    /// Its path, e.g. `params.who`.
    pub field: String,
    /// Why.
    pub message: String,
}

/// An `application/problem+json` answer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Problem {
    /// `https://ephemera.dev/problems/<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened.
    pub detail: String,
    /// Per-field errors (validation).
    pub errors: Vec<FieldError>,
}

/// A request that did not succeed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The server answered with an error.
    #[error("{}", render(.0))]
    Answered(Problem),
    /// The server could not be reached (connection, TLS, timeout).
    #[error("cannot reach {server}: {why}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// What failed.
        why: String,
    },
}

impl RequestError {
    /// What the command exits with.
    pub fn outcome(&self) -> Outcome {
        match self {
            RequestError::Answered(p) => Outcome::of_status(p.status),
            RequestError::Unreachable { .. } => Outcome::Unreachable,
        }
    }

    /// The problem's kind (`task-finished`, `no-attempt-yet`, ...), if the server gave one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            RequestError::Answered(p) => p.kind.rsplit('/').next(),
            RequestError::Unreachable { .. } => None,
        }
    }
}

/// The longest excerpt of a non-problem body shown.
const EXCERPT: usize = 200;

/// The error an answer with `status` and `body` means (`problem`: its content type said so).
pub fn from_answer(status: u16, problem: bool, body: &[u8]) -> RequestError {
    if problem {
        if let Ok(mut p) = serde_json::from_slice::<Problem>(body) {
            p.status = status;
            return RequestError::Answered(p);
        }
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .take(EXCERPT)
        .collect();
    let title = http_reason(status).to_string();
    RequestError::Answered(Problem { status, title, detail: text.trim().to_string(), ..Problem::default() })
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// `error: <title> (<status>): <detail>` and one indented line per field error; control
/// characters from the server are not passed to the terminal.
fn render(p: &Problem) -> String {
    let clean = |s: &str| -> String { s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect() };
    let mut out = format!("{} ({})", clean(&p.title), p.status);
    if !p.detail.is_empty() {
        out.push_str(": ");
        out.push_str(&clean(&p.detail));
    }
    for e in &p.errors {
        out.push_str(&format!("\n  {}: {}", clean(&e.field), clean(&e.message)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_problem_names_every_field() {
        let body = br#"{"type":"https://ephemera.dev/problems/validation-failed","title":"Invalid request","status":422,
            "detail":"2 fields are invalid","errors":[{"field":"params.who","message":"is required"},{"field":"priority","message":"must be between -1000 and 1000"}]}"#;
        let e = from_answer(422, true, body);
        assert_eq!(
            e.to_string(),
            "Invalid request (422): 2 fields are invalid\n  params.who: is required\n  priority: must be between -1000 and 1000"
        );
        assert_eq!(e.kind(), Some("validation-failed"));
        assert_eq!(e.outcome(), Outcome::Refused);
    }

    #[test]
    fn an_answer_that_is_not_a_problem_shows_its_status_and_a_clean_excerpt() {
        let e = from_answer(502, false, b"<html>\x1b[31mbad gateway</html>");
        assert_eq!(e.to_string(), "Bad Gateway (502): <html> [31mbad gateway</html>");
        assert_eq!(e.outcome(), Outcome::Unreachable);
        let long = vec![b'x'; 10_000];
        assert!(from_answer(500, false, &long).to_string().len() < 300);
        // A broken problem document falls back to the excerpt rather than failing.
        assert!(from_answer(400, true, b"{not json").to_string().starts_with("Bad Request (400)"));
    }
}
