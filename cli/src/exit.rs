//! The exit codes of `ephemera run --follow` (and of every command): a CI step is one line because
//! the Task's own exit code comes back as the command's, and the ways a Task can end without one
//! have codes of their own.

/// How a followed Task (or a request) ended, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The Task succeeded.
    Succeeded,
    /// The Task failed; its command's exit code when it ran to one.
    Failed(Option<i32>),
    /// The Task's deadline passed.
    TimedOut,
    /// The Task was cancelled.
    Cancelled,
    /// The API refused the request (a 4xx problem: invalid, unauthorised, forbidden, not found).
    Refused,
    /// The server could not be reached or answered 5xx.
    Unreachable,
    /// The user interrupted the command (the Task keeps running).
    Interrupted,
}

/// Documented codes (docs/cli.md). A Task's own code can equal one of them; the message on stderr
/// says which it was.
pub mod code {
    /// The API refused the request.
    pub const REFUSED: i32 = 64;
    /// The server was unreachable or failing.
    pub const UNREACHABLE: i32 = 69;
    /// The Task failed without an exit code of its own (image pull, lost Pod, ...).
    pub const FAILED_WITHOUT_CODE: i32 = 70;
    /// The Task's deadline passed (as `timeout(1)`).
    pub const TIMED_OUT: i32 = 124;
    /// The Task was cancelled.
    pub const CANCELLED: i32 = 125;
    /// Interrupted (Ctrl-C) while following.
    pub const INTERRUPTED: i32 = 130;
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Succeeded => 0,
            // A "failed" Task whose command exited 0 (e.g. its result could not be kept) must not
            // pass a CI step; codes outside 1..=255 cannot be a process's.
            Outcome::Failed(Some(c)) if (1..=255).contains(&c) => c,
            Outcome::Failed(_) => code::FAILED_WITHOUT_CODE,
            Outcome::TimedOut => code::TIMED_OUT,
            Outcome::Cancelled => code::CANCELLED,
            Outcome::Refused => code::REFUSED,
            Outcome::Unreachable => code::UNREACHABLE,
            Outcome::Interrupted => code::INTERRUPTED,
        }
    }

    /// The outcome of a Task that reached `phase` with `exit_code` (None: not finished).
    pub fn of_phase(phase: &str, exit_code: Option<i32>) -> Option<Outcome> {
        match phase {
            "Succeeded" => Some(Outcome::Succeeded),
            "Failed" => Some(Outcome::Failed(exit_code)),
            "TimedOut" => Some(Outcome::TimedOut),
            "Cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }

    /// The outcome of an HTTP answer that was not a success.
    pub fn of_status(status: u16) -> Outcome {
        if (400..500).contains(&status) && status != 408 && status != 429 {
            Outcome::Refused
        } else {
            Outcome::Unreachable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ci_step_gets_the_tasks_own_exit_code_and_a_distinct_one_for_every_other_ending() {
        #[rustfmt::skip]
        let rows = [
            (Outcome::of_phase("Succeeded", Some(0)), 0),
            (Outcome::of_phase("Failed", Some(3)), 3),
            (Outcome::of_phase("Failed", Some(255)), 255),
            (Outcome::of_phase("Failed", Some(0)), code::FAILED_WITHOUT_CODE),
            (Outcome::of_phase("Failed", Some(-1)), code::FAILED_WITHOUT_CODE),
            (Outcome::of_phase("Failed", Some(300)), code::FAILED_WITHOUT_CODE),
            (Outcome::of_phase("Failed", None), code::FAILED_WITHOUT_CODE),
            (Outcome::of_phase("TimedOut", Some(137)), code::TIMED_OUT),
            (Outcome::of_phase("Cancelled", None), code::CANCELLED),
            (Some(Outcome::of_status(422)), code::REFUSED),
            (Some(Outcome::of_status(401)), code::REFUSED),
            (Some(Outcome::of_status(429)), code::UNREACHABLE),
            (Some(Outcome::of_status(503)), code::UNREACHABLE),
            (Some(Outcome::Interrupted), code::INTERRUPTED),
        ];
        for (i, (outcome, want)) in rows.into_iter().enumerate() {
            assert_eq!(outcome.map(Outcome::exit_code), Some(want), "row {i}");
        }
        for phase in ["Pending", "Scheduled", "Running", ""] {
            assert_eq!(Outcome::of_phase(phase, None), None, "{phase} is not an ending");
        }
        let codes = [
            code::REFUSED,
            code::UNREACHABLE,
            code::FAILED_WITHOUT_CODE,
            code::TIMED_OUT,
            code::CANCELLED,
            code::INTERRUPTED,
        ];
        let mut unique = codes.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "the documented codes are distinct");
    }
}
