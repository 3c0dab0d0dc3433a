//! `imagePullSecrets`: the registry credentials a Pod names, read from `kubernetes.io/dockerconfigjson`
//! (and the older `kubernetes.io/dockercfg`) Secrets and matched to an image as the kubelet's
//! credential keyring matches them: by registry host, then the longest path prefix.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// A user name and password for one registry.
pub type Credential = (String, String);

/// The entries of one Secret: (registry key as written, credential).
pub fn entries(secret: &Value) -> Vec<(String, Credential)> {
    let decode = |key: &str| -> Option<Value> {
        let raw = STANDARD.decode(secret["data"][key].as_str()?).ok()?;
        serde_json::from_slice(&raw).ok()
    };
    let auths = match secret["type"].as_str() {
        Some("kubernetes.io/dockerconfigjson") => decode(".dockerconfigjson").map(|v| v["auths"].clone()),
        Some("kubernetes.io/dockercfg") => decode(".dockercfg"),
        _ => None,
    };
    let Some(Value::Object(auths)) = auths else { return Vec::new() };
    auths
        .into_iter()
        .filter_map(|(key, entry)| {
            let user = entry["username"].as_str().filter(|u| !u.is_empty());
            let cred = match (user, entry["password"].as_str()) {
                (Some(u), Some(p)) => (u.to_string(), p.to_string()),
                _ => {
                    let decoded = STANDARD.decode(entry["auth"].as_str()?).ok()?;
                    let text = String::from_utf8(decoded).ok()?;
                    let (u, p) = text.split_once(':')?;
                    (u.to_string(), p.to_string())
                }
            };
            Some((key, cred))
        })
        .collect()
}

/// A registry key as a host and path prefix: scheme and Docker Hub's `/v1/` dropped, Docker Hub's
/// aliases folded into `docker.io`.
fn normalise(key: &str) -> (String, String) {
    let key = key.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    };
    let path = if host == "docker.io" && (path == "v1" || path == "v2") { "" } else { path };
    (host.to_string(), path.trim_end_matches('/').to_string())
}

/// The credential for `registry`/`repository` among `entries` (earlier Secrets first): the entry
/// whose host matches and whose path is the longest prefix of the repository.
pub fn find(entries: &[(String, Credential)], registry: &str, repository: &str) -> Option<Credential> {
    let (host, _) = normalise(registry);
    entries
        .iter()
        .filter_map(|(key, cred)| {
            let (h, path) = normalise(key);
            let prefix_ok = path.is_empty() || repository == path || repository.starts_with(&format!("{path}/"));
            (h == host && prefix_ok).then_some((path.len(), cred))
        })
        // Longest path wins; among equals, the earliest (max_by_key keeps the last, so reverse).
        .rev()
        .max_by_key(|(len, _)| *len)
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(kind: &str, key: &str, doc: Value) -> Value {
        json!({"type": kind, "data": {key: STANDARD.encode(doc.to_string())}})
    }

    #[test]
    fn dockerconfigjson_entries_give_credentials_from_auth_or_username_and_password() {
        let s = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {
                "https://index.docker.io/v1/": {"auth": STANDARD.encode("hub:pw:with:colons")},
                "registry.example:5000/team": {"username": "u", "password": "p"},
                "broken": {"auth": "%%%"},
            }}),
        );
        let e = entries(&s);
        assert_eq!(e.len(), 2);
        assert_eq!(find(&e, "docker.io", "library/busybox"), Some(("hub".into(), "pw:with:colons".into())));
        assert_eq!(find(&e, "registry.example:5000", "team/app"), Some(("u".into(), "p".into())));
        assert_eq!(find(&e, "registry.example:5000", "teams/app"), None, "a path prefix is whole segments");
        assert_eq!(find(&e, "registry.example", "team/app"), None, "the port is part of the host");
    }

    #[test]
    fn the_longest_matching_path_wins_and_other_secret_types_give_nothing() {
        let e = vec![
            ("r.example".to_string(), ("all".to_string(), "1".to_string())),
            ("r.example/a/b".to_string(), ("deep".to_string(), "2".to_string())),
            ("r.example/a".to_string(), ("mid".to_string(), "3".to_string())),
        ];
        assert_eq!(find(&e, "r.example", "a/b/c").map(|c| c.0), Some("deep".into()));
        assert_eq!(find(&e, "r.example", "a/x").map(|c| c.0), Some("mid".into()));
        assert_eq!(find(&e, "r.example", "z").map(|c| c.0), Some("all".into()));
        let opaque = json!({"type": "Opaque", "data": {".dockerconfigjson": STANDARD.encode("{}")}});
        assert!(entries(&opaque).is_empty());
        let legacy =
            secret("kubernetes.io/dockercfg", ".dockercfg", json!({"r.example": {"username": "l", "password": "p"}}));
        assert_eq!(find(&entries(&legacy), "r.example", "x").map(|c| c.0), Some("l".into()));
    }
}
