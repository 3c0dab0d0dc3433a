//! A real OpenBao dev server for the credential tests, prepared with the project's own
//! `e2e/scripts/vault-setup.sh` (the same steps an admin runs), stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `bao` binary, installed by `e2e/scripts/tools.sh` when missing.
pub fn bao_binary() -> PathBuf {
    crate::tool_binary("BAO", "openbao/bin/bao", "need_openbao")
}

/// A running OpenBao dev server.
pub struct OpenBao {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Root token (tests only).
    pub root_token: String,
    /// File with the operator's token (policy `ephemera-operator`).
    pub operator_token_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl OpenBao {
    /// Starts a dev server on a free port and runs `vault-setup.sh` against it.
    pub async fn start() -> OpenBao {
        Self::start_with(&[]).await
    }

    /// As [`OpenBao::start`], with extra environment for `vault-setup.sh` (e.g. the policy mode).
    pub async fn start_with(setup_env: &[(&str, &str)]) -> OpenBao {
        crate::tls();
        let bao = bao_binary();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let addr = format!("http://127.0.0.1:{port}");
        let root_token = crate::fakes::jwt::random_token("root-");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("bao.log")).expect("log");
        let child = Command::new(&bao)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bao");
        let mut server =
            OpenBao { child, addr, root_token, operator_token_file: dir.path().join("operator-token"), _dir: dir };
        server.wait_ready().await;
        let out = Command::new("bash")
            .arg(repo().join("e2e/scripts/vault-setup.sh"))
            .arg(&server.operator_token_file)
            .env("BAO", &bao)
            .env("BAO_ADDR", &server.addr)
            .env("BAO_TOKEN", &server.root_token)
            .env("HOME", server._dir.path())
            .envs(setup_env.iter().copied())
            .output()
            .expect("vault-setup.sh");
        assert!(out.status.success(), "vault-setup.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        server
    }

    async fn wait_ready(&mut self) {
        // Plain JSON: vaultrs's health type wants a field OpenBao does not send.
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/v1/sys/health", self.addr)).send().await {
                if r.json::<Value>().await.is_ok_and(|h| h["initialized"] == true && h["sealed"] == false) {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("bao server exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("OpenBao did not become ready at {}", self.addr);
    }

    /// A root client.
    pub fn root(&self) -> VaultClient {
        let settings = VaultClientSettingsBuilder::default()
            .address(&self.addr)
            .token(&self.root_token)
            .build()
            .expect("settings");
        VaultClient::new(settings).expect("client")
    }

    /// Imports an RSA private key (PEM) into Transit as `name` with the project's
    /// `vault-import-key.sh`, as an admin does.
    pub fn import_key(&self, name: &str, pem: &str) {
        let file = self._dir.path().join(format!("{name}.pem"));
        std::fs::write(&file, pem).expect("key file");
        let out = Command::new("bash")
            .arg(repo().join("e2e/scripts/vault-import-key.sh"))
            .arg(name)
            .arg(&file)
            .env("BAO", bao_binary())
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root_token)
            .env("HOME", self._dir.path())
            .output()
            .expect("vault-import-key.sh");
        let _ = std::fs::remove_file(&file);
        assert!(out.status.success(), "vault-import-key.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A file holding the root token (for commands that read a token file).
    pub fn root_token_file(&self) -> PathBuf {
        let file = self._dir.path().join("root-token");
        std::fs::write(&file, &self.root_token).expect("root token file");
        file
    }

    /// Writes a KV v2 secret under the `secret` mount.
    pub async fn put(&self, path: &str, values: &serde_json::Map<String, Value>) {
        vaultrs::kv2::set(&self.root(), "secret", path, values).await.expect("kv put");
    }

    /// Accessors of live tokens that carry an Ephemera per-Credential policy.
    pub async fn live_task_tokens(&self) -> Vec<String> {
        let http = reqwest::Client::new();
        let list: Value = http
            .get(format!("{}/v1/auth/token/accessors?list=true", self.addr))
            .header("X-Vault-Token", &self.root_token)
            .send()
            .await
            .expect("list accessors")
            .json()
            .await
            .expect("json");
        let mut live = Vec::new();
        for accessor in list["data"]["keys"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let Ok(info) = vaultrs::token::lookup_accessor(&self.root(), accessor).await else { continue };
            if info.policies.iter().any(|p| p.starts_with("ephemera-cred-")) {
                live.push(accessor.to_string());
            }
        }
        live
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
