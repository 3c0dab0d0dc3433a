//! Where the CLI finds its server and credentials: flags first, then the environment, then a CI
//! job's OIDC token, then the config file `ephemera login` wrote (`$XDG_CONFIG_HOME/ephemera/config.yaml`,
//! else `~/.config/ephemera/config.yaml`, readable by its owner only). Resolution is pure; reading
//! and writing the file are the only effects.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The config file.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct File {
    /// The API's URL, e.g. `https://ephemera.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// An API token (`eph_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM bundle of CAs to trust besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The namespace commands use without `-n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No server anywhere.
    #[error("no server: pass --server, set EPHEMERA_SERVER, or run `ephemera login --server URL`")]
    NoServer,
    /// A server URL that is not http(s).
    #[error("server {0:?} is not an http:// or https:// URL")]
    BadServer(String),
    /// The config file could not be read or written.
    #[error("config file {path}: {why}")]
    File {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// Where a token came from (said in errors, so a 401 points at the right place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFrom {
    /// `--token`.
    Flag,
    /// `EPHEMERA_TOKEN`.
    Environment,
    /// The CI job's OIDC token.
    CiOidc,
    /// The config file.
    File,
}

/// What one source offers.
#[derive(Debug, Default)]
pub struct Offer {
    /// A server URL.
    pub server: Option<String>,
    /// A token.
    pub token: Option<SecretString>,
    /// A CA bundle.
    pub ca_file: Option<PathBuf>,
    /// A namespace.
    pub namespace: Option<String>,
}

/// The settings a command runs with.
#[derive(Debug)]
pub struct Settings {
    /// The API's URL, without a trailing `/`.
    pub server: String,
    /// The bearer token, and where it came from (None: the CI's OIDC token is fetched on use, or
    /// there is none and the server will say 401).
    pub token: Option<(SecretString, TokenFrom)>,
    /// Extra CAs.
    pub ca_file: Option<PathBuf>,
    /// The namespace.
    pub namespace: String,
}

/// Flags over environment over the file; a token from CI's OIDC only when none is given
/// explicitly (`ci_oidc`: the CI offers one).
pub fn resolve(flags: Offer, env: Offer, file: Offer, ci_oidc: bool) -> Result<(Settings, bool), ConfigError> {
    let server = flags.server.or(env.server).or(file.server).ok_or(ConfigError::NoServer)?;
    let server = server.trim_end_matches('/').to_string();
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(ConfigError::BadServer(server));
    }
    let explicit = flags.token.map(|t| (t, TokenFrom::Flag)).or(env.token.map(|t| (t, TokenFrom::Environment)));
    let use_oidc = explicit.is_none() && ci_oidc;
    let token = match explicit {
        Some(t) => Some(t),
        None if use_oidc => None,
        None => file.token.map(|t| (t, TokenFrom::File)),
    };
    let settings = Settings {
        server,
        token,
        ca_file: flags.ca_file.or(env.ca_file).or(file.ca_file),
        namespace: flags.namespace.or(env.namespace).or(file.namespace).unwrap_or_else(|| "default".into()),
    };
    Ok((settings, use_oidc))
}

/// The config file's path for this user (`lookup` reads the environment).
pub fn path(lookup: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = lookup("EPHEMERA_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = lookup("XDG_CONFIG_HOME")
        .filter(|p| Path::new(p).is_absolute())
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("ephemera").join("config.yaml"))
}

/// Reads the file (absent: empty).
pub fn read(path: &Path) -> Result<File, ConfigError> {
    let bad = |why: String| ConfigError::File { path: path.to_path_buf(), why };
    match std::fs::read_to_string(path) {
        // No source snippet in the error: the line next to a typo may be the token's.
        Ok(text) => serde_saphyr::from_str_with_options(&text, serde_saphyr::options! { with_snippet: false })
            .map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes the file readable and writable by its owner only (it holds a token), atomically.
pub fn write(path: &Path, file: &File) -> Result<(), ConfigError> {
    use std::io::Write as _;
    let bad = |why: String| ConfigError::File { path: path.to_path_buf(), why };
    let dir = path.parent().ok_or_else(|| bad("has no directory".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    let text = serde_saphyr::to_string(file).map_err(|e| bad(e.to_string()))?;
    // A fresh, unpredictably named file (created 0600, never through a planted symlink), renamed
    // over the old one: no moment where the token is readable by others or half-written.
    let mut f = tempfile::NamedTempFile::new_in(dir).map_err(|e| bad(e.to_string()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.as_file().sync_all()).map_err(|e| bad(e.to_string()))?;
    f.persist(path).map(|_| ()).map_err(|e| bad(e.error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn offer(server: Option<&str>, token: Option<&str>) -> Offer {
        Offer { server: server.map(String::from), token: token.map(SecretString::from), ..Offer::default() }
    }

    #[test]
    fn flags_beat_the_environment_which_beats_ci_oidc_which_beats_the_file() {
        let from = |f: Offer, e: Offer, file: Offer, ci: bool| {
            let (s, oidc) = resolve(f, e, file, ci).unwrap();
            (s.server, s.token.map(|(t, from)| (t.expose_secret().to_string(), from)), oidc)
        };
        let file = || offer(Some("https://file/"), Some("file-token"));
        assert_eq!(
            from(offer(Some("https://flag"), Some("f")), offer(Some("https://env"), Some("e")), file(), true),
            ("https://flag".into(), Some(("f".into(), TokenFrom::Flag)), false)
        );
        assert_eq!(
            from(Offer::default(), offer(None, Some("e")), file(), true),
            ("https://file".into(), Some(("e".into(), TokenFrom::Environment)), false)
        );
        assert_eq!(from(Offer::default(), Offer::default(), file(), true), ("https://file".into(), None, true));
        assert_eq!(
            from(Offer::default(), Offer::default(), file(), false),
            ("https://file".into(), Some(("file-token".into(), TokenFrom::File)), false)
        );
        assert!(matches!(
            resolve(Offer::default(), Offer::default(), Offer::default(), false),
            Err(ConfigError::NoServer)
        ));
        assert!(matches!(
            resolve(offer(Some("ftp://x"), None), Offer::default(), Offer::default(), false),
            Err(ConfigError::BadServer(_))
        ));
    }

    #[test]
    fn the_file_lives_in_the_users_config_directory() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(path(&env(&[("HOME", "/home/u")])), Some(PathBuf::from("/home/u/.config/ephemera/config.yaml")));
        assert_eq!(
            path(&env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/cfg")])),
            Some(PathBuf::from("/cfg/ephemera/config.yaml"))
        );
        // A relative XDG_CONFIG_HOME is invalid by the spec: ignored.
        assert_eq!(
            path(&env(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "rel")])),
            Some(PathBuf::from("/h/.config/ephemera/config.yaml"))
        );
        assert_eq!(path(&env(&[("EPHEMERA_CONFIG", "/x.yaml")])), Some(PathBuf::from("/x.yaml")));
        assert_eq!(path(&env(&[])), None);
    }

    #[test]
    fn a_written_file_reads_back_and_only_its_owner_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ephemera").join("config.yaml");
        assert_eq!(read(&p).unwrap(), File::default());
        let f = File { server: Some("https://e".into()), token: Some("eph_x_y".into()), ..File::default() };
        write(&p, &f).unwrap();
        assert_eq!(read(&p).unwrap(), f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&p, "servr: typo\n").unwrap();
        assert!(matches!(read(&p), Err(ConfigError::File { .. })));
    }
}
