//! The deterministic names the lifecycle gives an attempt (a restarted operator finds what it made).

/// A stable 32-bit hash (FNV-1a) that keeps shortened names distinct.
fn name_hash(s: &str) -> u32 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3)) as u32
}

/// The Task name as a label value (at most 63 characters: shortened with a stable hash).
pub fn task_label(task: &str) -> String {
    if task.len() <= 63 {
        return task.to_string();
    }
    format!("{}-{:08x}", task[..54].trim_end_matches(['-', '.']), name_hash(task))
}

/// `<task>-<attempt>`, shortened (with a stable hash) when the Task name is long.
pub fn pod_name(task: &str, attempt: i32) -> String {
    let suffix = format!("-{attempt}");
    if task.len() + suffix.len() <= 63 {
        return format!("{task}{suffix}");
    }
    let keep = 63 - suffix.len() - 9;
    format!("{}-{:08x}{suffix}", task[..keep].trim_end_matches('-'), name_hash(task))
}
