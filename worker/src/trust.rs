//! Which TLS roots the worker trusts: its own image's, never the Task image's. The worker runs
//! inside an arbitrary (possibly hostile) Task image; a CA planted in that image's system store
//! would let it read the worker's calls to Vault and the providers. So `install` copies the worker
//! image's bundle beside the binary, and every HTTP client the worker builds trusts only that
//! bundle (or, in the worker's own image, its system bundle, which is the same file).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bundle's name beside the installed worker.
pub const BUNDLE_NAME: &str = "ca-certificates.crt";

/// Where the worker image keeps its bundle (Debian's Mozilla set, pinned at build).
pub const IMAGE_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The bundle for a worker binary at `exe`: beside it once installed, else (running in its own
/// image, at `/ephemera-worker`) the image's.
pub fn bundle_path(exe: &Path) -> Option<PathBuf> {
    let beside = exe.with_file_name(BUNDLE_NAME);
    if beside.is_file() {
        return Some(beside);
    }
    (exe == Path::new(ephemera_crds::worker::WORKER_IN_IMAGE)).then(|| PathBuf::from(IMAGE_BUNDLE))
}

fn roots() -> &'static Vec<reqwest::Certificate> {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let path = std::env::current_exe().ok().and_then(|exe| bundle_path(&exe));
        let pem = path.and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default()
    })
}

/// A client builder that trusts the worker's roots only (none found: HTTPS fails, HTTP works).
pub fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built without a TLS provider of its own: use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().tls_certs_only(roots().iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_the_one_beside_the_installed_worker_never_the_task_images() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("ephemera-worker");
        assert_eq!(bundle_path(&exe), None, "an installed worker without its bundle trusts nothing");
        std::fs::write(dir.path().join(BUNDLE_NAME), "").unwrap();
        assert_eq!(bundle_path(&exe), Some(dir.path().join(BUNDLE_NAME)));
        assert_eq!(bundle_path(Path::new("/ephemera-worker")), Some(PathBuf::from(IMAGE_BUNDLE)));
    }

    #[test]
    fn a_client_without_roots_still_builds_for_plain_http() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(reqwest::Client::builder().tls_certs_only(Vec::new()).build().is_ok());
    }
}
