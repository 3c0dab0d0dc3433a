//! Write-ahead persistence: a snapshot plus an append-only log of changes, replayed at start.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ResKey;

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Filesystem failure.
    #[error("data directory {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record could not be decoded.
    #[error("data directory {path}: corrupt record on line {line}: {source}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Decode error.
        source: serde_json::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Record {
    rv: u64,
    group: String,
    resource: String,
    ns: String,
    name: String,
    /// `None` records a deletion.
    obj: Option<Value>,
}

/// The open log file.
pub struct Wal {
    path: PathBuf,
    out: BufWriter<File>,
}

type Replayed = (u64, Vec<(ResKey, String, String, Value)>, Wal);

impl Wal {
    /// Replays `dir/snapshot.jsonl` and `dir/wal.jsonl`, writes a fresh snapshot, and opens an empty log.
    pub fn open(dir: &Path) -> Result<Replayed, WalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let snapshot = dir.join("snapshot.jsonl");
        let log = dir.join("wal.jsonl");
        let mut state: BTreeMap<(ResKey, String, String), Value> = BTreeMap::new();
        let mut rv = 0;
        for file in [&snapshot, &log] {
            rv = rv.max(replay(file, &mut state)?);
        }
        // Compact: the new snapshot is written beside and renamed, so a crash leaves the old one.
        let tmp = dir.join("snapshot.jsonl.tmp");
        {
            let mut out = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
            for ((key, ns, name), obj) in &state {
                let rec = Record {
                    rv,
                    group: key.group.clone(),
                    resource: key.resource.clone(),
                    ns: ns.clone(),
                    name: name.clone(),
                    obj: Some(obj.clone()),
                };
                write_line(&mut out, &rec).map_err(io(&tmp))?;
            }
            // The snapshot's own header line keeps the revision even when the store is empty.
            let mark = Record {
                rv,
                group: String::new(),
                resource: String::new(),
                ns: String::new(),
                name: String::new(),
                obj: None,
            };
            write_line(&mut out, &mark).map_err(io(&tmp))?;
            out.flush().map_err(io(&tmp))?;
            out.get_ref().sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &snapshot).map_err(io(&snapshot))?;
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&log).map_err(io(&log))?;
        let objects = state.into_iter().map(|((k, ns, n), v)| (k, ns, n, v)).collect();
        Ok((rv, objects, Wal { path: log, out: BufWriter::new(file) }))
    }

    /// Appends one change and hands it to the OS before the write is acknowledged.
    pub fn append(&mut self, rv: u64, key: &ResKey, ns: &str, name: &str, obj: Option<&Value>) -> Result<(), WalError> {
        let rec = Record {
            rv,
            group: key.group.clone(),
            resource: key.resource.clone(),
            ns: ns.to_string(),
            name: name.to_string(),
            obj: obj.cloned(),
        };
        let path = self.path.clone();
        write_line(&mut self.out, &rec).and_then(|_| self.out.flush()).map_err(|source| WalError::Io { path, source })
    }
}

fn write_line(out: &mut impl std::io::Write, rec: &Record) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, rec)?;
    out.write_all(b"\n")
}

fn replay(path: &Path, state: &mut BTreeMap<(ResKey, String, String), Value>) -> Result<u64, WalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(WalError::Io { path: path.to_path_buf(), source }),
    };
    let mut rv = 0;
    let lines: Vec<_> = BufReader::new(file).lines().collect();
    let total = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.map_err(|source| WalError::Io { path: path.to_path_buf(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = match serde_json::from_str(&line) {
            Ok(r) => r,
            // A torn final line is a write that was never acknowledged: drop it.
            Err(_) if i + 1 == total => break,
            Err(source) => return Err(WalError::Corrupt { path: path.to_path_buf(), line: i + 1, source }),
        };
        rv = rv.max(rec.rv);
        if rec.resource.is_empty() {
            continue;
        }
        let id = (ResKey { group: rec.group, resource: rec.resource }, rec.ns, rec.name);
        match rec.obj {
            Some(o) => {
                state.insert(id, o);
            }
            None => {
                state.remove(&id);
            }
        }
    }
    Ok(rv)
}
