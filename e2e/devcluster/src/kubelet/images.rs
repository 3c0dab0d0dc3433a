//! The image map: which local program a container image stands for. There is no container runtime,
//! so an image either names a binary built by this project (the Ephemera worker) or a generic
//! distribution image whose shell commands run on the host; anything else fails like a pull error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a container image runs here.
#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    /// A mapped binary: the image's entrypoint.
    Binary(PathBuf),
    /// A generic distribution image: commands run on the host; the default command is its shell.
    Host {
        /// The image's default command when the Pod gives none.
        default_cmd: Vec<String>,
    },
}

/// Image repository → program.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    binaries: BTreeMap<String, PathBuf>,
    /// How long the first pull of a repository takes (default: instant).
    pull_times: BTreeMap<String, Duration>,
    /// Repositories already on the node (shared by clones: one node, one image cache).
    pulled: Arc<Mutex<BTreeSet<String>>>,
}

/// The repository part of an image reference, without registry, tag or digest:
/// `ghcr.io/acme/ephemera-worker:1.2@sha256:..` → `acme/ephemera-worker`.
pub fn repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let no_tag = match (no_digest.rfind(':'), no_digest.rfind('/')) {
        (Some(c), Some(s)) if c > s => &no_digest[..c],
        (Some(c), None) => &no_digest[..c],
        _ => no_digest,
    };
    let mut parts: Vec<&str> = no_tag.split('/').collect();
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        parts.remove(0);
    }
    if parts.first() == Some(&"library") && parts.len() == 2 {
        parts.remove(0);
    }
    parts.join("/")
}

impl ImageMap {
    /// Maps images whose repository (or its last path segment) is `repo` to `binary`.
    pub fn add(&mut self, repo: &str, binary: PathBuf) {
        self.binaries.insert(repository(repo), binary);
    }

    /// Makes the first pull of `repo` take `time`; later containers find it cached, as a kubelet
    /// does with `imagePullPolicy: IfNotPresent`.
    pub fn slow_pull(&mut self, repo: &str, time: Duration) {
        self.pull_times.insert(repository(repo), time);
    }

    /// How long pulling `image` takes now (zero once it is on the node); records it as pulled.
    pub fn pull(&self, image: &str) -> Duration {
        let repo = repository(image);
        let Some(time) = self.pull_times.get(&repo) else { return Duration::ZERO };
        let first = self.pulled.lock().map(|mut pulled| pulled.insert(repo)).unwrap_or(false);
        if first {
            *time
        } else {
            Duration::ZERO
        }
    }

    /// Parses `REPO=PATH` entries (the `--image` flag).
    pub fn parse_entry(&mut self, entry: &str) -> Result<(), String> {
        let (repo, path) = entry.split_once('=').ok_or_else(|| format!("image mapping {entry:?} is not REPO=PATH"))?;
        self.add(repo, PathBuf::from(path));
        Ok(())
    }

    /// Resolves an image, or `None` when this cluster cannot run it (reported as `ErrImagePull`).
    pub fn resolve(&self, image: &str) -> Option<Image> {
        let repo = repository(image);
        let last = repo.rsplit('/').next().unwrap_or(&repo).to_string();
        if let Some(bin) = self.binaries.get(&repo).or_else(|| self.binaries.get(&last)) {
            return Some(Image::Binary(bin.clone()));
        }
        let shell = |s: &str| Some(Image::Host { default_cmd: vec![s.to_string()] });
        match repo.as_str() {
            "busybox" => shell("sh"),
            "alpine" => shell("/bin/sh"),
            "debian" | "ubuntu" => shell("bash"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_ignore_registry_tag_and_digest() {
        assert_eq!(repository("busybox"), "busybox");
        assert_eq!(repository("docker.io/library/busybox:1.36"), "busybox");
        assert_eq!(repository("localhost:5000/acme/ephemera-worker:dev"), "acme/ephemera-worker");
        assert_eq!(repository("ghcr.io/acme/ephemera-worker@sha256:abc"), "acme/ephemera-worker");
    }

    #[test]
    fn a_slow_image_is_slow_once() {
        let mut map = ImageMap::default();
        map.slow_pull("busybox", Duration::from_secs(3));
        let node = map.clone();
        assert_eq!(node.pull("docker.io/library/busybox:1.36"), Duration::from_secs(3));
        assert_eq!(map.pull("busybox"), Duration::ZERO, "cached on the node");
        assert_eq!(map.pull("alpine"), Duration::ZERO);
    }

    #[test]
    fn unknown_images_do_not_resolve() {
        let mut map = ImageMap::default();
        map.add("ephemera-worker", PathBuf::from("/bin/true"));
        assert_eq!(map.resolve("ghcr.io/x/ephemera-worker:1"), Some(Image::Binary(PathBuf::from("/bin/true"))));
        assert!(matches!(map.resolve("alpine:3.20"), Some(Image::Host { .. })));
        assert_eq!(map.resolve("nginx:latest"), None);
    }
}
