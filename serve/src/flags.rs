//! Flags both daemons take, declared once (so `--help` of each and the docs cannot drift apart).

use std::path::{Path, PathBuf};

use ephemera_crds::task::MAX_PROGRESS_EVENTS;
use secrecy::SecretSlice;

/// Shortest HMAC key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// `--event-ring`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventRing {
    /// Events (phase changes and progress) kept in each Task's status.
    #[arg(long = "event-ring", env = "EPHEMERA_EVENT_RING", default_value_t = MAX_PROGRESS_EVENTS as u64,
        value_parser = clap::value_parser!(u64).range(1..=MAX_PROGRESS_EVENTS as u64))]
    pub events: u64,
}

impl EventRing {
    /// The ring size.
    pub fn size(&self) -> usize {
        usize::try_from(self.events).unwrap_or(MAX_PROGRESS_EVENTS)
    }
}

/// Why the shared HMAC key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Too short to be a key.
    #[error("{path} must hold at least {MIN_KEY_BYTES} bytes of key")]
    TooShort {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the HMAC key shared by the operator and the API servers (`--progress-key-file`).
pub fn read_key(path: &Path) -> Result<SecretSlice<u8>, KeyError> {
    let key = std::fs::read(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
    if key.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort { path: path.into() });
    }
    Ok(SecretSlice::from(key))
}
