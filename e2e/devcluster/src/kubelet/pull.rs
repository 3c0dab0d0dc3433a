//! Image pulls for the local kubelet: by the OCI distribution API (the `oci-client` crate) from the
//! registry the image reference names, honouring the pull policy as the kubelet does, into a
//! content-addressed cache of unpacked root filesystems (layers applied in order, whiteouts
//! honoured). Plain HTTP only for registries listed as insecure (the loopback test registry).
//!
//! Like [`super::bundle`], this is not wired into the Pod lifecycle yet: the runc runtime that uses
//! both is the next step (see the README's "Known differences").

use std::io::Read as _;
use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{manifest, Client, Reference};

use super::bundle::{Accounts, ImageConfig};

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always ask the registry (the default for `:latest` and untagged images).
    Always,
    /// Use the node's copy when there is one (the default otherwise).
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The policy a container gets: its own, else the API server's default for its image.
    pub fn of(container_policy: Option<&str>, image: &str) -> PullPolicy {
        match container_policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => {
                let last = image.rsplit('/').next().unwrap_or(image);
                let untagged = !last.contains(':') && !image.contains('@');
                if untagged || (last.ends_with(":latest") && !image.contains('@')) {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }
}

/// Why an image is not on the node, as the kubelet reports it in `state.waiting`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PullError {
    /// The registry or the image could not be had (`ErrImagePull`, then `ImagePullBackOff`).
    #[error("{0}")]
    Pull(String),
    /// `imagePullPolicy: Never` and the image is not on the node (`ErrImageNeverPull`).
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    /// The reference does not parse (`InvalidImageName`).
    #[error("Failed to apply default image tag \"{0}\": couldn't parse image name \"{0}\": invalid reference format")]
    InvalidName(String),
}

impl PullError {
    /// The waiting reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::Pull(_) => "ErrImagePull",
            PullError::NeverPull(_) => "ErrImageNeverPull",
            PullError::InvalidName(_) => "InvalidImageName",
        }
    }
}

/// An image on the node.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// `status.containerStatuses[].imageID`: `<registry>/<repository>@sha256:...`.
    pub image_id: String,
    /// Its config.
    pub config: ImageConfig,
    /// Its unpacked root filesystem (shared by every container of the image: read it, never write).
    pub rootfs: PathBuf,
    /// Its `/etc/passwd` and `/etc/group`.
    pub accounts: Accounts,
}

/// Pulls images into `store`.
pub struct Puller {
    client: Client,
    store: PathBuf,
}

const LAYER_TYPES: [&str; 4] = [
    manifest::IMAGE_LAYER_MEDIA_TYPE,
    manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
    manifest::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
];

impl Puller {
    /// A puller caching under `store`; `insecure` registries (`host:port`) are spoken to over HTTP.
    pub fn new(store: PathBuf, insecure: Vec<String>) -> Puller {
        let config = ClientConfig { protocol: ClientProtocol::HttpsExcept(insecure), ..ClientConfig::default() };
        Puller { client: Client::new(config), store }
    }

    /// The image as `policy` wants it: from the node's cache, or pulled with `auth` (user, password).
    pub async fn pull(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: Option<(String, String)>,
    ) -> Result<Pulled, PullError> {
        let reference: Reference = image.parse().map_err(|_| PullError::InvalidName(image.to_string()))?;
        let index = self.store.join("refs").join(escape(&reference.whole()));
        let cached = std::fs::read_to_string(&index).ok().and_then(|digest| self.load(&reference, digest.trim()).ok());
        match (policy, cached) {
            (PullPolicy::Never, Some(p)) | (PullPolicy::IfNotPresent, Some(p)) => return Ok(p),
            (PullPolicy::Never, None) => return Err(PullError::NeverPull(image.to_string())),
            _ => {}
        }
        let failed =
            |why: String| PullError::Pull(format!("failed to pull and unpack image \"{}\": {why}", reference.whole()));
        let auth = match auth {
            Some((user, password)) => RegistryAuth::Basic(user, password),
            None => RegistryAuth::Anonymous,
        };
        let data =
            self.client.pull(&reference, &auth, LAYER_TYPES.to_vec()).await.map_err(|e| failed(e.to_string()))?;
        let digest = data.digest.clone().ok_or_else(|| failed("the registry sent no manifest digest".into()))?;
        let dir = self.image_dir(&digest).map_err(failed)?;
        if !dir.join("config.json").exists() {
            let staging = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(staging.join("rootfs")).map_err(|e| failed(e.to_string()))?;
            for layer in &data.layers {
                let gz = layer.media_type.ends_with("gzip");
                apply_layer(&staging.join("rootfs"), &layer.data, gz)
                    .map_err(|e| failed(format!("unpacking a layer: {e}")))?;
            }
            std::fs::write(staging.join("config.json"), &data.config.data).map_err(|e| failed(e.to_string()))?;
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&staging, &dir).map_err(|e| failed(e.to_string()))?;
        }
        if let Some(parent) = index.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed(e.to_string()))?;
        }
        std::fs::write(&index, &digest).map_err(|e| failed(e.to_string()))?;
        self.load(&reference, &digest).map_err(failed)
    }

    fn image_dir(&self, digest: &str) -> Result<PathBuf, String> {
        let hex = digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        hex.map(|h| self.store.join("images").join(h)).ok_or_else(|| format!("unexpected manifest digest {digest}"))
    }

    fn load(&self, reference: &Reference, digest: &str) -> Result<Pulled, String> {
        let dir = self.image_dir(digest)?;
        let raw = std::fs::read(dir.join("config.json")).map_err(|e| e.to_string())?;
        let config: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| format!("the image config: {e}"))?;
        let rootfs = dir.join("rootfs");
        let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
        Ok(Pulled {
            image_id: format!("{}/{}@{digest}", reference.resolve_registry(), reference.repository()),
            config: ImageConfig::from_oci(&config),
            accounts: Accounts::parse(&read("etc/passwd"), &read("etc/group")),
            rootfs,
        })
    }
}

/// A reference as one file name.
fn escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

/// Applies one layer to `root`: its whiteouts first (they delete from the layers below), then its
/// files. Paths that would leave `root` are refused by the tar crate's `unpack_in`.
pub fn apply_layer(root: &Path, data: &[u8], gzip: bool) -> std::io::Result<()> {
    let mut whiteouts = Vec::new();
    for entry in tar::Archive::new(reader(data, gzip)).entries()? {
        let entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(target) = name.strip_prefix(".wh.") {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            whiteouts.push((parent, target.to_string()));
        }
    }
    for (parent, target) in whiteouts {
        if parent.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            continue;
        }
        let dir = root.join(&parent);
        if target == ".wh..opq" {
            // Opaque: the directory's lower contents are gone; the layer's own entries follow.
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    remove(&child.path());
                }
            }
        } else if !target.contains('/') && target != ".." && target != "." {
            remove(&dir.join(target));
        }
    }
    let mut archive = tar::Archive::new(reader(data, gzip));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let is_whiteout = entry.path()?.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".wh."));
        if is_whiteout {
            let mut sink = Vec::new();
            entry.read_to_end(&mut sink)?;
            continue;
        }
        entry.unpack_in(root)?;
    }
    Ok(())
}

/// A layer's bytes as a tar stream.
fn reader(data: &[u8], gzip: bool) -> Box<dyn std::io::Read + '_> {
    if gzip {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        Box::new(data)
    }
}

fn remove(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pull_policy_is_always_for_latest_or_untagged_images_only() {
        assert_eq!(PullPolicy::of(None, "busybox"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "busybox:latest"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "127.0.0.1:5000/x/busybox"), PullPolicy::Always, "a port is not a tag");
        assert_eq!(PullPolicy::of(None, "busybox:1.35"), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::of(None, "busybox@sha256:abc"), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::of(Some("Never"), "busybox"), PullPolicy::Never);
    }

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match body {
                Some(data) => {
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    h.set_entry_type(tar::EntryType::Regular);
                    b.append_data(&mut h, path, *data).unwrap();
                }
                None => {
                    h.set_size(0);
                    h.set_mode(0o755);
                    h.set_entry_type(tar::EntryType::Directory);
                    b.append_data(&mut h, path, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts_and_opaque_directories() {
        let root = tempfile::tempdir().unwrap();
        let base = layer(&[
            ("etc", None),
            ("etc/a", Some(b"1")),
            ("etc/b", Some(b"2")),
            ("var", None),
            ("var/old", Some(b"x")),
        ]);
        apply_layer(root.path(), &base, false).unwrap();
        let top = layer(&[("etc/.wh.a", Some(b"")), ("var/.wh..wh..opq", Some(b"")), ("var/new", Some(b"y"))]);
        apply_layer(root.path(), &top, false).unwrap();
        assert!(!root.path().join("etc/a").exists(), "whited out");
        assert_eq!(std::fs::read(root.path().join("etc/b")).unwrap(), b"2");
        assert!(!root.path().join("var/old").exists(), "an opaque directory hides the layers below");
        assert_eq!(std::fs::read(root.path().join("var/new")).unwrap(), b"y");
        assert!(!root.path().join("etc/.wh.a").exists(), "whiteout markers are not files of the image");
    }

    #[test]
    fn a_layer_cannot_write_outside_its_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let mut raw = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        // `append_data` refuses `..`; write the name into the header directly, as a hostile image would.
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        raw.append(&h, &b"x"[..]).unwrap();
        let data = raw.into_inner().unwrap();
        let _ = apply_layer(&root, &data, false);
        assert!(!outer.path().join("escape").exists());
    }
}
