//! What a follower of the live stream has shown, per Task, so a reconnect (to any replica, after a
//! drain, a slow-consumer cut-off or a network drop) shows every event exactly once: events at or
//! below the last `seq` shown are repeats and dropped, a snapshot after a reconnect contributes only
//! what is new, and a jump past what the server still keeps is reported as a gap, never hidden.

use std::collections::HashMap;

/// One Task, as `(namespace, name)`.
pub type TaskKey = (String, String);

/// What to show for a message from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show<T> {
    /// A new event.
    Event(T),
    /// Events `after + 1 .. before` were compacted on the server before this follower saw them.
    Gap {
        /// The last seq shown.
        after: i64,
        /// The first seq shown next.
        before: i64,
    },
    /// The Task ended (shown once).
    End,
}

/// Per-Task progress of one follower.
#[derive(Debug, Default)]
pub struct Tracker {
    last: HashMap<TaskKey, i64>,
    ended: HashMap<TaskKey, bool>,
}

impl Tracker {
    /// The `since` to subscribe with after a reconnect (None: never saw an event of it).
    pub fn since(&self, key: &TaskKey) -> Option<i64> {
        self.last.get(key).copied()
    }

    /// Every Task seen so far, with the last seq shown.
    pub fn seen(&self) -> impl Iterator<Item = (&TaskKey, i64)> {
        self.last.iter().map(|(k, v)| (k, *v))
    }

    /// One `event` with `seq`.
    pub fn event<T>(&mut self, key: &TaskKey, seq: i64, event: T) -> Vec<Show<T>> {
        let last = self.last.get(key).copied().unwrap_or(0);
        if seq <= last {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Seqs are consecutive per Task; a jump on a live event means the server compacted them.
        if last > 0 && seq > last + 1 {
            out.push(Show::Gap { after: last, before: seq });
        }
        self.last.insert(key.clone(), seq);
        out.push(Show::Event(event));
        out
    }

    /// A snapshot: its retained `events` (oldest first, with their seqs) and `last_seq`.
    pub fn snapshot<T>(&mut self, key: &TaskKey, events: Vec<(i64, T)>, last_seq: i64) -> Vec<Show<T>> {
        let mut out = Vec::new();
        for (seq, e) in events {
            out.extend(self.event(key, seq, e));
        }
        // Events up to last_seq exist but were not retained: say so, once.
        let last = self.last.get(key).copied().unwrap_or(0);
        if last_seq > last {
            if last > 0 {
                out.push(Show::Gap { after: last, before: last_seq + 1 });
            }
            self.last.insert(key.clone(), last_seq);
        }
        out
    }

    /// The Task ended.
    pub fn end<T>(&mut self, key: &TaskKey) -> Vec<Show<T>> {
        if self.ended.insert(key.clone(), true).is_some() {
            Vec::new()
        } else {
            vec![Show::End]
        }
    }

    /// Whether the Task has ended.
    pub fn has_ended(&self, key: &TaskKey) -> bool {
        self.ended.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> TaskKey {
        ("default".into(), n.into())
    }

    #[test]
    fn a_reconnect_replays_nothing_already_shown_and_loses_nothing_new() {
        let mut t = Tracker::default();
        let a = key("a");
        let mut shown = Vec::new();
        shown.extend(t.snapshot(&a, vec![(1, "1"), (2, "2")], 2));
        shown.extend(t.event(&a, 3, "3"));
        assert_eq!(t.since(&a), Some(3));
        // Reconnected: the server sends a snapshot of everything it kept, then live events.
        shown.extend(t.snapshot(&a, vec![(1, "1"), (2, "2"), (3, "3"), (4, "4")], 4));
        shown.extend(t.event(&a, 4, "4"));
        shown.extend(t.event(&a, 5, "5"));
        shown.extend(t.end(&a));
        shown.extend(t.end(&a));
        let events: Vec<&str> =
            shown.iter().filter_map(|s| if let Show::Event(e) = s { Some(*e) } else { None }).collect();
        assert_eq!(events, ["1", "2", "3", "4", "5"]);
        assert_eq!(shown.iter().filter(|s| **s == Show::End).count(), 1);
        assert!(!shown.iter().any(|s| matches!(s, Show::Gap { .. })));
    }

    #[test]
    fn events_compacted_while_away_are_reported_as_a_gap() {
        let mut t = Tracker::default();
        let a = key("a");
        let _ = t.event(&a, 1, ());
        let back = t.snapshot(&a, vec![(7, ()), (8, ())], 8);
        assert_eq!(back, vec![Show::Gap { after: 1, before: 7 }, Show::Event(()), Show::Event(())]);
        let live = t.event(&a, 10, ());
        assert_eq!(live, vec![Show::Gap { after: 8, before: 10 }, Show::Event(())]);
        // A first snapshot with nothing retained starts there, without a gap.
        let b = key("b");
        assert!(t.snapshot::<()>(&b, Vec::new(), 5).is_empty());
        assert_eq!(t.since(&b), Some(5));
    }
}
