//! Checks a daemon's flag table in `docs/` against its own `--help` (the clap definitions): every
//! flag and its environment variable appear in both, so neither is typed twice without the other
//! noticing. Included by each daemon's `tests/flags_documented.rs`.

use std::collections::BTreeSet;

/// `(flag, env)` pairs from `--help` output (`--flag <VALUE>  ... [env: NAME=]`).
pub fn from_help(help: &str) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    let mut flag: Option<String> = None;
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            flag = Some(format!("--{name}"));
        }
        if let (Some(f), Some(i)) = (&flag, line.find("[env: ")) {
            let env: String = line[i + 6..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if f != "--help" && f != "--version" {
                pairs.insert((f.clone(), env));
            }
            flag = None;
        }
    }
    pairs
}

/// `(flag, env)` pairs from the table in the section of `doc` headed `heading`
/// (`| --a / --b | ENV_A / ENV_B | ...`).
pub fn from_doc(doc: &str, heading: &str) -> BTreeSet<(String, String)> {
    let section = doc.split(heading).nth(1).unwrap_or_else(|| panic!("no section {heading:?}"));
    let mut pairs = BTreeSet::new();
    for row in section.lines().take_while(|l| !l.starts_with("# ")).filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names = |cell: &str| -> Vec<String> {
            cell.split('/').map(|p| p.trim().trim_matches('`').to_string()).filter(|p| !p.is_empty()).collect()
        };
        let (flags, envs) = (names(cells[1]), names(cells[2]));
        assert_eq!(flags.len(), envs.len(), "each row pairs every flag with its env: {row}");
        pairs.extend(flags.into_iter().zip(envs));
    }
    pairs
}

/// Runs `bin args...` and checks its help against the table of `doc_file`'s section `heading`.
pub fn assert_documented(bin: &str, args: &[&str], doc_file: &str, heading: &str, at_least: usize) {
    let out = std::process::Command::new(bin).args(args).output().unwrap_or_else(|e| panic!("run {bin}: {e}"));
    let help = from_help(&String::from_utf8_lossy(&out.stdout));
    let doc = std::fs::read_to_string(doc_file).unwrap_or_else(|e| panic!("{doc_file}: {e}"));
    let table = from_doc(&doc, heading);
    assert!(help.len() >= at_least, "parsed the help: {help:?}");
    let undocumented: Vec<_> = help.difference(&table).collect();
    let stale: Vec<_> = table.difference(&help).collect();
    assert!(undocumented.is_empty(), "flags missing from {doc_file}: {undocumented:?}");
    assert!(stale.is_empty(), "{doc_file} rows for flags the binary does not have: {stale:?}");
}
