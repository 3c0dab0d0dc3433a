//! The Caddy edge (the repository's `Caddyfile`) in front of test upstreams, on loopback ports, with
//! Caddy's internal CA; and an HTTPS client that trusts only that CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Caddy; killed when dropped.
pub struct Edge {
    /// HTTPS port (`https://localhost:{https}`).
    pub https: u16,
    /// Port of the HTTP→HTTPS redirect.
    pub http: u16,
    /// Plain-HTTP port of /metrics and /healthz.
    pub metrics: u16,
    /// The internal CA's root certificate (PEM).
    pub ca_pem: Vec<u8>,
    /// Caddy's stdout: the access log (JSON lines).
    pub access_log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `caddy` binary, installed by `e2e/scripts/tools.sh` when missing.
pub fn caddy_binary() -> PathBuf {
    crate::tool_binary("CADDY", "caddy/bin/caddy", "need_caddy")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Edge {
    /// Starts Caddy with the repository's Caddyfile in front of `upstreams` (`host:port`, health
    /// checked on `/readyz`), with `env` added to its environment.
    pub async fn start(upstreams: &[String], env: &[(&str, &str)]) -> Edge {
        let dir = tempfile::tempdir().expect("tempdir");
        let (https, http, metrics, admin) = (free_port(), free_port(), free_port(), free_port());
        let access_log = dir.path().join("access.log");
        let log = std::fs::File::create(&access_log).expect("log file");
        let errors = std::fs::File::create(dir.path().join("caddy.log")).expect("log file");
        let mut cmd = Command::new(caddy_binary());
        cmd.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(repo().join("Caddyfile"))
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("EPHEMERA_EDGE_HOST", "localhost")
            .env("EPHEMERA_EDGE_TLS", "internal")
            .env("EPHEMERA_EDGE_HTTPS_PORT", https.to_string())
            .env("EPHEMERA_EDGE_HTTP_PORT", http.to_string())
            .env("EPHEMERA_EDGE_PUBLIC_PORT", format!(":{https}"))
            .env("EPHEMERA_EDGE_METRICS_PORT", metrics.to_string())
            .env("EPHEMERA_EDGE_ADMIN", format!("127.0.0.1:{admin}"))
            .env("EPHEMERA_EDGE_UPSTREAMS", "static")
            .env("EPHEMERA_API_UPSTREAMS", upstreams.join(" "))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(errors);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start caddy");
        let root = dir.path().join("data/caddy/pki/authorities/local/root.crt");
        let client = reqwest::Client::new();
        let mut ready = false;
        // Caddy makes its internal CA on first start; on a loaded machine (a browser test beside it)
        // that has taken over 10 s. Give it a minute, and stop waiting at once if it exited.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
            let up =
                client.get(format!("http://127.0.0.1:{metrics}/healthz")).send().await.is_ok_and(|r| r.status() == 200);
            if up && root.exists() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.path().join("caddy.log")).unwrap_or_default();
        assert!(ready, "caddy did not start:\n{log}");
        let ca_pem = std::fs::read(&root).expect("the internal CA's root");
        let edge = Edge { https, http, metrics, ca_pem, access_log, child, _dir: dir };
        // The site's certificate is issued after the CA exists: ready once a handshake succeeds.
        let tls = edge.client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if tls.get(format!("{}/healthz", edge.url())).send().await.is_ok() {
                return edge;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("caddy never completed a TLS handshake on port {https}");
    }

    /// `https://localhost:{https}`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.https)
    }

    /// An HTTPS client trusting only this edge's CA (no redirects followed).
    pub fn client(&self) -> reqwest::Client {
        crate::tls();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem).expect("CA")])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// A rustls client configuration trusting only this edge's CA (for WebSockets).
    pub fn rustls_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        crate::tls();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&self.ca_pem) {
            roots.add(cert.expect("PEM")).expect("root");
        }
        std::sync::Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
    }
}
