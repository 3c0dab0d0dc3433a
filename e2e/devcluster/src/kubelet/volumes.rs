//! Pod volumes materialised as directories under the Pod's own folder: emptyDir, secret, configMap,
//! downwardAPI and projected (serviceAccountToken, secret, configMap, downwardAPI sources), plus the
//! ServiceAccount token the kubelet mounts unless `automountServiceAccountToken` is false.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::auth::{Auth, SaClaims};
use crate::meta;
use crate::store::{ResKey, Store};

/// Where the in-cluster client looks for its credentials.
pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// One bind mount into a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What volume preparation needs from the cluster.
pub struct Ctx<'a> {
    /// Object store (Secrets, ConfigMaps, ServiceAccounts).
    pub store: &'a Store,
    /// Token issuer for projected ServiceAccount tokens.
    pub auth: &'a Auth,
    /// Cluster CA, for the auto-mounted `ca.crt`.
    pub ca_pem: &'a str,
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8], mode: u32) -> Result<(), String> {
    if rel.split('/').any(|p| p == ".." || p.is_empty()) {
        return Err(format!("invalid volume item path {rel:?}"));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// Gives `fsGroup` group ownership of a read-only volume (secret, configMap, downwardAPI,
/// projected), as the kubelet's `SetVolumeOwnership` does: files get group read (mode | 0440, so a
/// `0400` key becomes `0440`), folders group read and search and the setgid bit.
fn chgrp_tree(dir: &Path, group: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let regroup = |path: &Path, add: u32| -> Result<(), String> {
        std::os::unix::fs::chown(path, None, Some(group)).map_err(|e| format!("chgrp {}: {e}", path.display()))?;
        let mode = fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode() & 0o7777;
        fs::set_permissions(path, fs::Permissions::from_mode(mode | add))
            .map_err(|e| format!("chmod {}: {e}", path.display()))
    };
    regroup(dir, 0o2550)?;
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let path = entry.path();
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            chgrp_tree(&path, group)?;
        } else {
            regroup(&path, 0o440)?;
        }
    }
    Ok(())
}

fn mode(v: &Value, default: u32) -> u32 {
    v.as_u64().map(|m| m as u32).unwrap_or(default)
}

/// Key → bytes of a Secret (decoded) or ConfigMap (data + binaryData).
fn entries(obj: &Value, secret: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (field, binary) in [("data", secret), ("binaryData", true)] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            let s = v.as_str().unwrap_or_default();
            let bytes = if binary { STANDARD.decode(s).unwrap_or_default() } else { s.as_bytes().to_vec() };
            out.push((k.clone(), bytes));
        }
    }
    out
}

/// Writes a Secret/ConfigMap source (whole, or the listed `items`) into `dir`.
fn key_source(ctx: &Ctx<'_>, ns: &str, dir: &Path, src: &Value, secret: bool, default_mode: u32) -> Result<(), String> {
    let name = if secret { src["secretName"].as_str().or(src["name"].as_str()) } else { src["name"].as_str() }
        .unwrap_or_default();
    let resource = if secret { "secrets" } else { "configmaps" };
    let Some(obj) = ctx.store.get(&ResKey::new("", resource), ns, name) else {
        if src["optional"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        return Err(format!("{} \"{name}\" not found", if secret { "secret" } else { "configmap" }));
    };
    let all = entries(&obj, secret);
    match src["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or_default();
                let Some((_, bytes)) = all.iter().find(|(k, _)| k == key) else {
                    if src["optional"].as_bool().unwrap_or(false) {
                        continue;
                    }
                    return Err(format!("configmap references non-existent config key: {key}"));
                };
                write_file(dir, item["path"].as_str().unwrap_or(key), bytes, mode(&item["mode"], default_mode))?;
            }
        }
        None => {
            for (k, bytes) in &all {
                write_file(dir, k, bytes, default_mode)?;
            }
        }
    }
    Ok(())
}

fn downward(pod: &Value, dir: &Path, items: &Value, default_mode: u32) -> Result<(), String> {
    for item in items.as_array().into_iter().flatten() {
        let path = item["path"].as_str().unwrap_or_default();
        let value = match item["fieldRef"]["fieldPath"].as_str() {
            Some(p) => super::env::field_ref(pod, p)?,
            None => "0".into(),
        };
        write_file(dir, path, value.as_bytes(), mode(&item["mode"], default_mode))?;
    }
    Ok(())
}

fn sa_token(ctx: &Ctx<'_>, pod: &Value, audience: &str, expiration: i64) -> Result<String, String> {
    let ns = meta::meta_str(pod, "namespace").unwrap_or_default();
    let sa_name = pod["spec"]["serviceAccountName"].as_str().filter(|s| !s.is_empty()).unwrap_or("default");
    let sa = ctx
        .store
        .get(&ResKey::new("", "serviceaccounts"), ns, sa_name)
        .ok_or_else(|| format!("serviceaccount \"{sa_name}\" not found"))?;
    let claims = SaClaims {
        namespace: ns.into(),
        name: sa_name.into(),
        uid: meta::meta_str(&sa, "uid").unwrap_or_default().into(),
        pod: Some((
            meta::meta_str(pod, "name").unwrap_or_default().into(),
            meta::meta_str(pod, "uid").unwrap_or_default().into(),
        )),
        audiences: vec![audience.to_string()],
    };
    Ok(ctx.auth.issue(&claims, expiration, meta::unix_now()).0)
}

/// A DNS-1123 label (what Kubernetes requires of container and volume names): lowercase letters,
/// digits and `-`, at most 63, starting and ending with a letter or digit.
pub fn dns_label(s: &str) -> bool {
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|c| ok(c) || c == b'-')
        && s.bytes().next().is_some_and(ok)
        && s.bytes().last().is_some_and(ok)
}

/// Materialises every volume of the Pod under `pod_dir/volumes`; returns name → host path.
pub fn prepare(ctx: &Ctx<'_>, pod: &Value, pod_dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let ns = meta::meta_str(pod, "namespace").unwrap_or_default();
    let mut out = Vec::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if !dns_label(&name) {
            // The API server's validation; here the name also becomes a host folder.
            return Err(format!("volume name {name:?} is not a DNS-1123 label"));
        }
        let dir = pod_dir.join("volumes").join(&name);
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if v.get("emptyDir").is_some() {
            // Like the kubelet: world-writable so non-root containers can use it.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
        } else if let Some(s) = v.get("secret") {
            key_source(ctx, ns, &dir, s, true, mode(&s["defaultMode"], 0o644))?;
        } else if let Some(c) = v.get("configMap") {
            key_source(ctx, ns, &dir, c, false, mode(&c["defaultMode"], 0o644))?;
        } else if let Some(d) = v.get("downwardAPI") {
            downward(pod, &dir, &d["items"], mode(&d["defaultMode"], 0o644))?;
        } else if let Some(p) = v.get("projected") {
            let default_mode = mode(&p["defaultMode"], 0o644);
            for src in p["sources"].as_array().into_iter().flatten() {
                if let Some(t) = src.get("serviceAccountToken") {
                    let aud = t["audience"].as_str().unwrap_or(crate::auth::ISSUER);
                    let token = sa_token(ctx, pod, aud, t["expirationSeconds"].as_i64().unwrap_or(3600))?;
                    write_file(
                        &dir,
                        t["path"].as_str().unwrap_or("token"),
                        token.as_bytes(),
                        mode(&t["mode"], default_mode),
                    )?;
                } else if let Some(s) = src.get("secret") {
                    key_source(ctx, ns, &dir, s, true, default_mode)?;
                } else if let Some(c) = src.get("configMap") {
                    key_source(ctx, ns, &dir, c, false, default_mode)?;
                } else if let Some(d) = src.get("downwardAPI") {
                    downward(pod, &dir, &d["items"], default_mode)?;
                }
            }
        } else {
            return Err(format!("volume {name:?}: only emptyDir, secret, configMap, downwardAPI and projected volumes are supported by the dev cluster"));
        }
        if v.get("emptyDir").is_none() {
            if let Some(group) = pod["spec"]["securityContext"]["fsGroup"].as_u64().and_then(|g| u32::try_from(g).ok())
            {
                // Only root may give files away; unprivileged dev clusters keep their own group.
                let _ = chgrp_tree(&dir, group);
            }
        }
        out.push((name, dir));
    }
    if automount(ctx, pod) {
        let dir = pod_dir.join("volumes").join("kube-api-access");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        write_file(&dir, "token", sa_token(ctx, pod, crate::auth::ISSUER, 3607)?.as_bytes(), 0o644)?;
        write_file(&dir, "ca.crt", ctx.ca_pem.as_bytes(), 0o644)?;
        write_file(&dir, "namespace", ns.as_bytes(), 0o644)?;
        out.push(("kube-api-access".into(), dir));
    }
    Ok(out)
}

/// Whether the kubelet adds the ServiceAccount token mount (Pod setting wins over the account's).
fn automount(ctx: &Ctx<'_>, pod: &Value) -> bool {
    if let Some(b) = pod["spec"]["automountServiceAccountToken"].as_bool() {
        return b;
    }
    let ns = meta::meta_str(pod, "namespace").unwrap_or_default();
    let sa = pod["spec"]["serviceAccountName"].as_str().filter(|s| !s.is_empty()).unwrap_or("default");
    ctx.store
        .get(&ResKey::new("", "serviceaccounts"), ns, sa)
        .and_then(|s| s["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// The host folder of `sub` inside the volume at `dir`, created if missing. Relative, without `..`
/// (as the API server validates it), and through no symlink: a container that shares the volume
/// could otherwise point a component at the host (`ln -s / x`, then `subPath: x`) and have it
/// bind-mounted. (Stricter than the kubelet, which follows symlinks that stay inside the volume.
/// A swap between this check and runc's mount is not closed: the kubelet binds from an fd.)
fn sub_path(dir: &Path, sub: &str) -> Result<PathBuf, String> {
    if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
        return Err(format!("invalid subPath {sub:?}: must be a relative path without '..'"));
    }
    let mut at = dir.to_path_buf();
    for part in sub.split('/').filter(|p| !p.is_empty() && *p != ".") {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("subPath {sub:?} goes through a symlink ({part:?}), which this kubelet refuses"))
            }
            Ok(m) if !m.is_dir() && at != dir.join(sub.trim_end_matches('/')) => {
                return Err(format!("subPath {sub:?}: {part:?} is not a directory"))
            }
            Ok(_) => {}
            Err(_) => fs::create_dir(&at).map_err(|e| format!("creating subPath {sub:?}: {e}"))?,
        }
    }
    Ok(at)
}

/// The bind mounts of one container, from its `volumeMounts` (with `subPath`).
pub fn mounts_for(container: &Value, volumes: &[(String, PathBuf)]) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let (_, dir) = volumes.iter().find(|(n, _)| n == name).ok_or_else(|| format!("volume {name:?} not found"))?;
        let mut source = dir.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            source = sub_path(dir, sub)?;
        }
        let target = m["mountPath"].as_str().unwrap_or_default().to_string();
        out.push(Mount { source, target, read_only: m["readOnly"].as_bool().unwrap_or(false) });
    }
    if let Some((_, dir)) = volumes.iter().find(|(n, _)| n == "kube-api-access") {
        if !out.iter().any(|m| m.target == SA_MOUNT) {
            out.push(Mount { source: dir.clone(), target: SA_MOUNT.into(), read_only: true });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod sub_path_tests {
    use super::*;

    #[test]
    fn a_sub_path_never_leaves_its_volume() {
        let vol = tempfile::tempdir().unwrap();
        assert_eq!(sub_path(vol.path(), "a/b").unwrap(), vol.path().join("a/b"));
        assert!(vol.path().join("a/b").is_dir(), "created");
        assert!(sub_path(vol.path(), "/etc").is_err(), "absolute");
        assert!(sub_path(vol.path(), "a/../../x").is_err(), "parent");
        std::os::unix::fs::symlink("/", vol.path().join("escape")).unwrap();
        assert!(sub_path(vol.path(), "escape").is_err(), "a symlink planted by a container");
        assert!(sub_path(vol.path(), "escape/etc").is_err());
        assert!(!Path::new("/etc/escape").exists());
    }

    #[test]
    fn names_that_become_host_paths_are_dns_labels() {
        assert!(dns_label("task") && dns_label("install-worker") && dns_label("a1"));
        for bad in ["", "../x", "a,lowerdir=/", "A", "-a", "a-", &"a".repeat(64)] {
            assert!(!dns_label(bad), "{bad:?}");
        }
    }
}
