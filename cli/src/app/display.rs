//! How a followed Task shows: a progress bar on a terminal, one plain line per event otherwise (CI
//! logs); status on stderr, the Task's own output on stdout, so `> out.txt` keeps only the output.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Where status goes.
pub enum Display {
    /// A terminal: a bar with the percentage and the last message; phases printed above it.
    Bar(ProgressBar),
    /// Anything else: lines.
    Plain,
}

impl Display {
    /// A bar when stderr is a terminal.
    pub fn for_stderr() -> Display {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(100);
            let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            Display::Bar(bar)
        } else {
            Display::Plain
        }
    }

    /// A status line.
    pub fn note(&self, line: &str) {
        match self {
            Display::Bar(bar) => bar.println(line),
            Display::Plain => eprintln!("{line}"),
        }
    }

    /// One event of `task`.
    pub fn event(&self, task: &str, e: &Value) {
        let attempt = e["attempt"].as_i64().unwrap_or(0);
        match e["kind"].as_str() {
            Some("Phase") => {
                let phase = e["phase"].as_str().unwrap_or("?");
                let reason =
                    e["message"].as_str().filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default();
                self.note(&format!("ephemera: {task} {phase} (attempt {attempt}){}", clean(&reason)));
            }
            _ => {
                let pct = e["percent"].as_i64();
                let msg = clean(e["message"].as_str().unwrap_or_default());
                match self {
                    Display::Bar(bar) => {
                        if let Some(p) = pct {
                            bar.set_position(p.clamp(0, 100) as u64);
                        }
                        bar.set_message(msg);
                    }
                    Display::Plain => {
                        let pct = pct.map(|p| format!("{p:>3}% ")).unwrap_or_default();
                        eprintln!("ephemera: {task} {pct}{msg}");
                    }
                }
            }
        }
    }

    /// Some of the Task's output.
    pub fn output(&self, bytes: &[u8]) {
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        };
        match self {
            Display::Bar(bar) => bar.suspend(write),
            Display::Plain => write(),
        }
    }

    /// Done: the bar goes away.
    pub fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// A server-given message as one printable line (what a hostile Task wrote cannot move the
/// cursor, clear the screen or retitle the terminal).
pub fn clean(s: &str) -> String {
    s.chars().map(|c| if ephemera_cli::output::hazardous(c) { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_messages_cannot_carry_terminal_escapes() {
        assert_eq!(clean("ok\u{1b}]0;pwned\u{7}\r\nnext"), "ok ]0;pwned   next");
        assert_eq!(clean("deploy \u{202E}dorp\u{200B}"), "deploy  dorp ", "no bidi override, nothing invisible");
    }
}
