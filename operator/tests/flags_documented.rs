//! The operator flag table in `docs/operator.md` is checked against the binary's own `--help` (the clap
//! definitions): every flag and its environment variable appear in both, so neither is typed twice
//! without the other noticing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;

/// `(flag, env)` pairs from `--help` (`--flag <VALUE>  ... [env: NAME=]`).
fn from_help() -> BTreeSet<(String, String)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ephemera-operator")).arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
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

/// `(flag, env)` pairs from the documented table (`| --a / --b | ENV_A / ENV_B | ...`).
fn from_readme() -> BTreeSet<(String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operator.md")).expect("docs/operator.md");
    let section = doc.split("# The operator (`operator/`)").nth(1).expect("operator section");
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

#[test]
fn every_operator_flag_is_documented_once_with_its_environment_variable() {
    let (help, readme) = (from_help(), from_readme());
    assert!(help.len() > 20, "parsed the help: {help:?}");
    let undocumented: Vec<_> = help.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&help).collect();
    assert!(undocumented.is_empty(), "flags missing from docs/operator.md: {undocumented:?}");
    assert!(stale.is_empty(), "docs/operator.md rows for flags the operator does not have: {stale:?}");
}
