//! How commands print what the API answered: `-o json` and `-o yaml` print the server's document as
//! it came (so scripts see every field, including ones this CLI does not know), the default and
//! `-o wide` print a table of chosen columns, aligned like kubectl's.

use serde_json::Value;

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// More columns.
    Wide,
    /// The API's JSON, pretty.
    Json,
    /// The API's JSON as YAML.
    Yaml,
}

/// A column: its header, whether only `-o wide` shows it, and how to read it from an item.
pub struct Column {
    /// Header.
    pub header: &'static str,
    /// Only with `-o wide`.
    pub wide: bool,
    /// The cell, from the item and the current time (for ages).
    pub cell: fn(&Value, jiff::Timestamp) -> String,
}

fn text(v: &Value, field: &str) -> String {
    match v.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `5s`, `3m`, `2h`, `4d` since `rfc3339`, as kubectl shows ages.
pub fn age(rfc3339: &str, now: jiff::Timestamp) -> String {
    let Ok(then) = rfc3339.parse::<jiff::Timestamp>() else { return String::new() };
    let secs = now.as_second().saturating_sub(then.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The columns of a Task list.
pub const TASK_COLUMNS: &[Column] = &[
    Column { header: "NAME", wide: false, cell: |v, _| text(v, "name") },
    Column { header: "PHASE", wide: false, cell: |v, _| text(v, "phase") },
    Column { header: "QUEUE", wide: false, cell: |v, _| text(v, "queue") },
    Column { header: "PRIORITY", wide: false, cell: |v, _| text(v, "priority") },
    Column { header: "ATTEMPT", wide: false, cell: |v, _| text(v, "attempt") },
    Column { header: "AGE", wide: false, cell: |v, now| age(&text(v, "createdAt"), now) },
    Column { header: "REQUESTER", wide: false, cell: |v, _| text(v, "requestedBy") },
    Column { header: "TEMPLATE", wide: true, cell: |v, _| text(v, "template") },
    Column { header: "EXIT", wide: true, cell: |v, _| text(v, "exitCode") },
    Column { header: "REASON", wide: true, cell: |v, _| text(v, "reason") },
];

/// The columns of `ephemera templates`.
pub const TEMPLATE_COLUMNS: &[Column] = &[
    Column { header: "KIND", wide: false, cell: |v, _| text(v, "kind") },
    Column { header: "NAME", wide: false, cell: |v, _| text(v, "name") },
    Column { header: "PARAMS", wide: false, cell: |v, _| names(v, "params") },
    Column { header: "DESCRIPTION", wide: false, cell: |v, _| text(v, "description") },
    Column { header: "PROBLEMS", wide: true, cell: |v, _| list(v, "problems") },
];

/// The columns of `ephemera schedules`.
pub const SCHEDULE_COLUMNS: &[Column] = &[
    Column { header: "NAME", wide: false, cell: |v, _| text(v, "name") },
    Column {
        header: "SCHEDULE",
        wide: false,
        cell: |v, _| {
            let s = text(v, "schedule");
            if s.is_empty() {
                format!("at {}", text(v, "runAt"))
            } else {
                s
            }
        },
    },
    Column { header: "SUSPENDED", wide: false, cell: |v, _| text(v, "suspend") },
    Column { header: "READY", wide: false, cell: |v, _| text(v, "ready") },
    Column { header: "LAST RUN", wide: false, cell: |v, now| age(&text(v, "lastScheduleTime"), now) },
    Column { header: "TIMEZONE", wide: true, cell: |v, _| text(v, "timeZone") },
    Column { header: "CONCURRENCY", wide: true, cell: |v, _| text(v, "concurrencyPolicy") },
    Column { header: "MESSAGE", wide: true, cell: |v, _| text(v, "message") },
];

/// The columns of `ephemera queues`.
pub const QUEUE_COLUMNS: &[Column] = &[
    Column { header: "NAME", wide: false, cell: |v, _| text(v, "name") },
    Column { header: "CONCURRENCY", wide: false, cell: |v, _| text(v, "concurrency") },
    Column { header: "RUNNING", wide: false, cell: |v, _| text(v, "running") },
    Column { header: "PENDING", wide: false, cell: |v, _| text(v, "pending") },
];

/// The columns of `ephemera triggers`: each trigger and its latest delivery.
pub const TRIGGER_COLUMNS: &[Column] = &[
    Column { header: "NAME", wide: false, cell: |v, _| text(v, "name") },
    Column { header: "SOURCE", wide: false, cell: |v, _| text(v, "source") },
    Column { header: "READY", wide: false, cell: |v, _| text(v, "ready") },
    Column {
        header: "DELIVERIES",
        wide: false,
        cell: |v, _| v["deliveries"].as_array().map_or(0, |d| d.len()).to_string(),
    },
    Column {
        header: "LAST",
        wide: false,
        cell: |v, now| {
            let d = &v["deliveries"][0];
            if d.is_null() {
                String::new()
            } else {
                format!("{} {} ({} ago)", text(d, "event"), text(d, "outcome"), age(&text(d, "time"), now))
            }
        },
    },
    Column { header: "TASK", wide: false, cell: |v, _| text(&v["deliveries"][0], "task") },
    Column { header: "PATH", wide: true, cell: |v, _| text(v, "path") },
    Column { header: "MESSAGE", wide: true, cell: |v, _| text(v, "message") },
];

fn list(v: &Value, field: &str) -> String {
    v[field].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")).unwrap_or_default()
}

fn names(v: &Value, field: &str) -> String {
    v[field].as_array().map(|a| a.iter().map(|p| text(p, "name")).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

/// Control characters (terminal escapes a Task's author may have put in a message) as `?`: a
/// table cell never moves the cursor or changes the terminal.
fn printable(s: &str) -> String {
    s.chars().map(|c| if hazardous(c) { '?' } else { c }).collect()
}

/// A character a terminal acts on or that makes text read other than it is: controls (escape
/// sequences), bidirectional overrides and isolates, zero-width characters.
pub fn hazardous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `items` as an aligned table.
pub fn table(items: &[Value], columns: &[Column], wide: bool, now: jiff::Timestamp) -> String {
    let cols: Vec<&Column> = columns.iter().filter(|c| wide || !c.wide).collect();
    let rows: Vec<Vec<String>> =
        items.iter().map(|item| cols.iter().map(|c| printable(&(c.cell)(item, now))).collect()).collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.header.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(cols.iter().map(|c| c.header.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// The document as `-o json` or `-o yaml` prints it.
pub fn document(v: &Value, format: Format) -> Result<String, String> {
    match format {
        Format::Yaml => serde_saphyr::to_string(v).map_err(|e| e.to_string()),
        _ => serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-12-03T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_task_list_reads_like_kubectls_and_wide_adds_columns() {
        let items = [
            json!({"name": "deploy-1", "phase": "Running", "queue": "default", "priority": 10, "attempt": 1,
                   "createdAt": "2026-12-03T11:59:30Z", "requestedBy": "token:abc", "exitCode": null, "reason": "Started"}),
            json!({"name": "t", "phase": "Failed", "queue": "q", "priority": 0, "attempt": 2,
                   "createdAt": "2026-12-01T10:00:00Z", "requestedBy": "oidc:x", "exitCode": 3, "template": "ClusterTaskTemplate/g"}),
        ];
        let t = table(&items, TASK_COLUMNS, false, now());
        assert_eq!(
            t,
            "NAME       PHASE     QUEUE     PRIORITY   ATTEMPT   AGE   REQUESTER\n\
             deploy-1   Running   default   10         1         30s   token:abc\n\
             t          Failed    q         0          2         2d    oidc:x\n"
        );
        let w = table(&items, TASK_COLUMNS, true, now());
        assert!(w.lines().next().unwrap().ends_with("TEMPLATE                EXIT   REASON"), "{w}");
        assert!(w.contains("ClusterTaskTemplate/g   3"), "{w}");
    }

    #[test]
    fn a_hostile_cell_cannot_drive_the_terminal() {
        let items = [json!({"name": "x\u{1b}[2J\rmalicious", "phase": "Running"})];
        let t = table(&items, TASK_COLUMNS, false, now());
        assert!(!t.contains('\u{1b}') && !t.contains('\r'), "{t:?}");
    }

    #[test]
    fn ages_round_down_like_kubectls() {
        for (then, want) in [
            ("2026-12-03T11:59:59Z", "1s"),
            ("2026-12-03T11:50:00Z", "10m"),
            ("2026-12-03T09:00:00Z", "3h"),
            ("bad", ""),
        ] {
            assert_eq!(age(then, now()), want, "{then}");
        }
    }

    #[test]
    fn json_and_yaml_print_the_servers_document_whole() {
        let v = json!({"name": "a", "unknownToThisCli": [1, 2]});
        let j: Value = serde_json::from_str(&document(&v, Format::Json).unwrap()).unwrap();
        assert_eq!(j, v);
        let y: Value = serde_saphyr::from_str(&document(&v, Format::Yaml).unwrap()).unwrap();
        assert_eq!(y, v);
    }
}
