//! Starting and stopping a dev cluster: listener, store, background controllers, kubeconfig.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::http::{router, App};
use crate::meta;
use crate::store::{ResKey, Store, WalError, Write};

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where to write the kubeconfig once serving (optional).
    pub kubeconfig: Option<PathBuf>,
    /// Directory for persistence (None: in memory only).
    pub data_dir: Option<PathBuf>,
    /// Number of changes kept for watches to resume from.
    pub watch_history: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 0)), kubeconfig: None, data_dir: None, watch_history: 10_000 }
    }
}

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Could not bind or write files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The data directory is unusable.
    #[error(transparent)]
    Store(#[from] WalError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// A running cluster. Dropping it stops the server.
pub struct DevCluster {
    addr: SocketAddr,
    app: Arc<App>,
    tasks: Vec<JoinHandle<()>>,
}

impl DevCluster {
    /// Starts serving; returns once the listener is bound and the kubeconfig written.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let (store, auth) = match &config.data_dir {
            Some(dir) => (Store::open(dir, config.watch_history)?, load_keys(dir)?),
            None => (Store::new(config.watch_history), fresh_keys()),
        };
        let app = App::new(store, auth);
        bootstrap(&app);
        let listener = TcpListener::bind(config.listen).await.map_err(io(format!("listen on {}", config.listen)))?;
        let addr = listener.local_addr().map_err(io("local address"))?;
        let server_app = app.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router(server_app)).await {
                tracing::error!(error = %e, "server stopped");
            }
        });
        let gc = tokio::spawn(crate::gc::run(app.clone()));
        let cluster = Self { addr, app, tasks: vec![server, gc] };
        if let Some(path) = &config.kubeconfig {
            cluster.write_kubeconfig(path)?;
        }
        Ok(cluster)
    }

    /// The API server URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        self.app.auth.admin_token()
    }

    /// The shared state (tests use it to force history compaction).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Drops all watch history: every open watch ends with `410 Gone` and must re-list.
    pub fn compact_history(&self) {
        self.app.store.compact_history();
    }

    /// A kubeconfig document for this cluster.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: ephemera-dev\n  cluster:\n    server: {url}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: ephemera-dev\n  context:\n    cluster: ephemera-dev\n    user: admin\n    namespace: default\ncurrent-context: ephemera-dev\n",
            url = self.url(),
            token = self.admin_token()
        )
    }

    /// Writes the kubeconfig atomically with owner-only permissions (it holds the admin token).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), StartError> {
        write_private(path, self.kubeconfig_yaml().as_bytes())
    }

    /// Stops serving.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    use std::io::Write as _;
    let what = format!("write {}", path.display());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(what.clone()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(what.clone()))?;
    f.write_all(bytes).map_err(io(what.clone()))?;
    f.sync_all().map_err(io(what.clone()))?;
    std::fs::rename(&tmp, path).map_err(io(what))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fresh_keys() -> Auth {
    Auth::new(hex(&meta::random_bytes::<24>()), meta::random_bytes::<32>().to_vec())
}

/// Keys survive restarts with `--data-dir`, so kubeconfigs and issued tokens stay valid.
fn load_keys(dir: &Path) -> Result<Auth, StartError> {
    let path = dir.join("keys.json");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let (Some(t), Some(k)) = (v["adminToken"].as_str(), v["signingKey"].as_str()) {
                let key = (0..k.len() / 2).filter_map(|i| u8::from_str_radix(&k[i * 2..i * 2 + 2], 16).ok()).collect();
                return Ok(Auth::new(t.to_string(), key));
            }
        }
    }
    let token = hex(&meta::random_bytes::<24>());
    let key = meta::random_bytes::<32>();
    let doc = json!({"adminToken": token, "signingKey": hex(&key)});
    write_private(&path, doc.to_string().as_bytes())?;
    Ok(Auth::new(token, key.to_vec()))
}

/// The objects every cluster starts with: system namespaces and the node.
fn bootstrap(app: &App) {
    let ns_key = ResKey::new("", "namespaces");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = app.store.write::<()>(&ns_key, "", ns, |cur| {
            if cur.is_some() {
                return Ok(Write::Keep);
            }
            Ok(Write::Put(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "uid": meta::uid(), "creationTimestamp": meta::now(), "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            })))
        });
    }
    crate::gc::sweep(app);
}
