//! Image pulls for the local kubelet: by the OCI distribution API (the `oci-client` crate) from the
//! registry the image reference names, honouring the pull policy as the kubelet does, into a
//! content-addressed cache of unpacked root filesystems (layers applied in order, whiteouts
//! honoured). Plain HTTP only for registries listed as insecure (the loopback test registry).

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
                // The API server's default: Always for a `:latest` tag or no tag and no digest.
                let (name, digest) = match image.split_once('@') {
                    Some((n, _)) => (n, true),
                    None => (image, false),
                };
                let last = name.rsplit('/').next().unwrap_or(name);
                let tag = last.split_once(':').map(|(_, t)| t);
                match (tag, digest) {
                    (Some("latest"), _) | (None, false) => PullPolicy::Always,
                    _ => PullPolicy::IfNotPresent,
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
    /// For anonymous pulls. The client remembers the first credentials it used per registry, so a
    /// pull with credentials gets a client of its own.
    client: Client,
    insecure: Vec<String>,
    store: PathBuf,
    mirrors: std::collections::BTreeMap<String, String>,
}

/// Layer media types this kubelet unpacks.
const LAYER_TYPES: [&str; 4] = [
    manifest::IMAGE_LAYER_MEDIA_TYPE,
    manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
    manifest::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
];

impl Puller {
    /// A puller caching under `store`; `insecure` registries (`host:port`) are spoken to over HTTP;
    /// `mirrors` sends the pulls of a registry (`docker.io`) to another (`127.0.0.1:5000`), as
    /// containerd's `hosts.toml` does: same repository path, the original registry in `imageID`.
    pub fn new(store: PathBuf, insecure: Vec<String>, mirrors: std::collections::BTreeMap<String, String>) -> Puller {
        // The registry client (reqwest without a built-in provider) uses ring, as the server does;
        // a process that chose a provider already keeps its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Puller { client: client(&insecure), insecure, store, mirrors }
    }

    /// The image as `policy` wants it: from the node's cache, or pulled with `auth` (user, password).
    pub async fn pull(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: Option<(String, String)>,
    ) -> Result<Pulled, PullError> {
        let mut reference: Reference = image.parse().map_err(|_| PullError::InvalidName(image.to_string()))?;
        if let Some(mirror) = self.mirrors.get(reference.registry()) {
            reference.set_mirror_registry(mirror.clone());
        }
        let index = self.store.join("refs").join(ref_key(&reference.whole()));
        let cached = std::fs::read_to_string(&index).ok().and_then(|digest| self.load(&reference, digest.trim()).ok());
        match (policy, cached) {
            (PullPolicy::Never, Some(p)) | (PullPolicy::IfNotPresent, Some(p)) => return Ok(p),
            (PullPolicy::Never, None) => return Err(PullError::NeverPull(image.to_string())),
            _ => {}
        }
        let failed =
            |why: String| PullError::Pull(format!("failed to pull and unpack image \"{}\": {why}", reference.whole()));
        let own;
        let (client, auth) = match auth {
            Some((user, password)) => {
                own = client(&self.insecure);
                (&own, RegistryAuth::Basic(user, password))
            }
            None => (&self.client, RegistryAuth::Anonymous),
        };
        let (manifest, digest, config) =
            client.pull_manifest_and_config(&reference, &auth).await.map_err(|e| failed(e.to_string()))?;
        let dir = self.image_dir(&digest).map_err(failed)?;
        if !dir.join("config.json").exists() {
            // Blobs first (each verified against its digest by the client, kept by digest), then the
            // layers applied in the manifest's order into a staging folder of this pull's own.
            let mut blobs = Vec::new();
            for layer in &manifest.layers {
                if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                    return Err(failed(format!("unsupported layer media type {}", layer.media_type)));
                }
                let blob = self.blob(client, &reference, layer).await.map_err(failed)?;
                blobs.push((blob, layer.media_type.ends_with("gzip")));
            }
            let staging = self.store.join("images").join(format!(".{}-{}", hex_of(&digest), unique()));
            std::fs::create_dir_all(staging.join("rootfs")).map_err(|e| failed(e.to_string()))?;
            // Unpacking is file work: off the async threads, which also serve the API.
            let root = staging.join("rootfs");
            let unpacked = tokio::task::spawn_blocking(move || -> Result<(), String> {
                for (blob, gz) in &blobs {
                    let data = std::fs::read(blob).map_err(|e| e.to_string())?;
                    apply_layer(&root, &data, *gz).map_err(|e| format!("unpacking a layer: {e}"))?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            if let Err(e) = unpacked {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(failed(e));
            }
            std::fs::write(staging.join("config.json"), config.as_bytes()).map_err(|e| failed(e.to_string()))?;
            // Another pull of the same image may have finished first: keep that one, drop ours.
            if std::fs::rename(&staging, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        write_atomically(&index, digest.as_bytes()).map_err(failed)?;
        self.load(&reference, &digest).map_err(failed)
    }

    /// A layer blob on disk, downloaded unless it is already there.
    async fn blob(
        &self,
        client: &Client,
        reference: &Reference,
        layer: &oci_client::manifest::OciDescriptor,
    ) -> Result<PathBuf, String> {
        let path = self.store.join("blobs").join(hex_of(&layer.digest));
        if path.exists() {
            return Ok(path);
        }
        std::fs::create_dir_all(self.store.join("blobs")).map_err(|e| e.to_string())?;
        let partial = path.with_extension(unique());
        let file = tokio::fs::File::create(&partial).await.map_err(|e| e.to_string())?;
        let pulled = client.pull_blob(reference, layer, file).await;
        match pulled {
            Ok(()) => std::fs::rename(&partial, &path).map_err(|e| e.to_string())?,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e.to_string());
            }
        }
        Ok(path)
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
        let read = |p: &str| account_file(&rootfs, p);
        Ok(Pulled {
            image_id: format!("{}/{}@{digest}", reference.registry(), reference.repository()),
            config: ImageConfig::from_oci(&config),
            accounts: Accounts::parse(&read("etc/passwd"), &read("etc/group")),
            rootfs,
        })
    }
}

/// `etc/passwd` or `etc/group` of an unpacked image: a regular file reached through no symlink and at
/// most 1 MiB, else nothing (an image's `etc/passwd -> /dev/zero` or `-> /etc/shadow` points at the
/// host, not at the image).
fn account_file(rootfs: &Path, rel: &str) -> String {
    let mut at = rootfs.to_path_buf();
    for part in rel.split('/') {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return String::new(),
            Ok(_) => {}
            Err(_) => return String::new(),
        }
    }
    let Ok(meta) = std::fs::symlink_metadata(&at) else { return String::new() };
    if !meta.is_file() {
        return String::new();
    }
    let mut text = String::new();
    let _ = std::fs::File::open(&at).map(|f| f.take(1 << 20).read_to_string(&mut text));
    text
}

/// A registry client; `insecure` registries (`host:port`) are spoken to over HTTP.
fn client(insecure: &[String]) -> Client {
    // A stalled registry fails the pull (then back-off), as the kubelet's pull deadline does.
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..ClientConfig::default()
    })
}

/// A reference as one file name: its SHA-256, so no two references share an entry.
fn ref_key(reference: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(reference.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex of a `sha256:<hex>` digest, or its whole text made file-safe.
fn hex_of(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).chars().filter(char::is_ascii_alphanumeric).collect()
}

/// A suffix no other pull in this process or another uses at the same time.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Writes `path` through a temporary file and a rename, so a reader never sees half of it.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension(unique());
    std::fs::write(&tmp, data).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
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
        // Resolved inside the root: a lower layer's `var/run -> /run` must lead to the image's
        // /run, never the host's.
        let Some(dir) = resolve_in_root(root, &parent) else { continue };
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

/// `rel` inside `root` with every symlink on the way resolved as the container would see it:
/// absolute targets start again at `root`, `..` stops at `root`. `None` past 40 links.
fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    use std::path::Component;
    // Names and `..`, in order; roots and `.` carry no step.
    let steps = |p: &Path| -> Vec<std::ffi::OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    // A stack: the next step on top.
    let mut pending: Vec<std::ffi::OsString> = steps(rel).into_iter().rev().collect();
    let mut inside: Vec<std::ffi::OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            inside.pop();
            continue;
        }
        let here: PathBuf = root.join(inside.iter().collect::<PathBuf>()).join(&part);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = std::fs::read_link(&here).ok()?;
                if target.is_absolute() {
                    inside.clear();
                }
                pending.extend(steps(&target).into_iter().rev());
            }
            _ => inside.push(part),
        }
    }
    Some(root.join(inside.iter().collect::<PathBuf>()))
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
        assert_eq!(PullPolicy::of(None, "busybox:latest@sha256:abc"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "busybox:1.35@sha256:abc"), PullPolicy::IfNotPresent);
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
    fn whiteouts_through_a_symlink_stay_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let host = outer.path().join("host");
        std::fs::create_dir_all(host.join("run")).unwrap();
        std::fs::write(host.join("run/keep"), b"host file").unwrap();
        let root = outer.path().join("rootfs");
        // A name no host has, so a wrong implementation cannot harm the machine running the test.
        let run = "ephemera-test-run-0f3a";
        std::fs::create_dir_all(root.join(run)).unwrap();
        std::fs::write(root.join(run).join("keep"), b"image file").unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        // `var/run -> /<run>` (absolute, as Debian's `var/run -> /run`) and `escape -> ../host`.
        std::os::unix::fs::symlink(format!("/{run}"), root.join("var/run")).unwrap();
        std::os::unix::fs::symlink("../host", root.join("escape")).unwrap();
        let top = layer(&[("var/run/.wh.keep", Some(b"")), ("escape/.wh..wh..opq", Some(b""))]);
        let _ = apply_layer(&root, &top, false);
        assert!(!root.join(run).join("keep").exists(), "the image's own file is whited out");
        assert_eq!(std::fs::read(host.join("run/keep")).unwrap(), b"host file", "nothing outside the root is touched");
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
