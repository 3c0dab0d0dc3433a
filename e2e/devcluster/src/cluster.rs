//! Starting and stopping a dev cluster: listener, store, background controllers, kubeconfig.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio_rustls::TlsAcceptor;

use crate::auth::Auth;
use crate::http::{router, App};
use crate::kubelet::{KubeletConfig, Registries};
use crate::meta;
use crate::store::{ResKey, Store, WalError, Write};
use crate::tls::{Tls, TlsError};

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
    /// The kubelet (None: Pods are stored but never run).
    pub kubelet: Option<KubeletSettings>,
    /// Append an audit event per request to this file (None: no audit log).
    pub audit_log: Option<PathBuf>,
}

/// Process kubelet options.
#[derive(Debug, Clone)]
pub struct KubeletSettings {
    /// Node name.
    pub node_name: String,
    /// Pod folders; default: `<data-dir>/kubelet`, or a temporary folder removed on shutdown.
    pub root: Option<PathBuf>,
    /// The node's image store (default: `<root>/images`).
    pub image_store: Option<PathBuf>,
    /// Registry settings (insecure registries, mirrors).
    pub registries: Registries,
    /// First restart back-off.
    pub backoff_base: std::time::Duration,
    /// Each container's pids limit.
    pub pids_limit: Option<i64>,
}

impl Default for KubeletSettings {
    fn default() -> Self {
        Self {
            node_name: "devcluster-node".into(),
            root: None,
            image_store: None,
            registries: Registries::default(),
            backoff_base: std::time::Duration::from_secs(10),
            pids_limit: Some(4096),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            data_dir: None,
            watch_history: 10_000,
            kubelet: Some(KubeletSettings::default()),
            audit_log: None,
        }
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
    /// Certificates could not be made or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// A running cluster. Dropping it stops the server.
pub struct DevCluster {
    addr: SocketAddr,
    app: Arc<App>,
    tls: Tls,
    tasks: Vec<JoinHandle<()>>,
    scratch: Option<PathBuf>,
}

impl DevCluster {
    /// Starts serving; returns once the listener is bound and the kubeconfig written.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let (store, (auth, tls)) = match &config.data_dir {
            Some(dir) => (Store::open(dir, config.watch_history)?, load_keys(dir)?),
            None => (Store::new(config.watch_history), fresh_keys()?),
        };
        let app = App::new(store, auth);
        if let Some(path) = &config.audit_log {
            let log = crate::audit::AuditLog::open(path).map_err(io(format!("open audit log {}", path.display())))?;
            let _ = app.audit.set(log);
        }
        bootstrap(&app);
        let listener = TcpListener::bind(config.listen).await.map_err(io(format!("listen on {}", config.listen)))?;
        let addr = listener.local_addr().map_err(io("local address"))?;
        let acceptor = TlsAcceptor::from(tls.server_config()?);
        let server = tokio::spawn(serve_tls(listener, acceptor, router(app.clone())));
        let gc = tokio::spawn(crate::gc::run(app.clone()));
        let controllers = tokio::spawn(crate::controllers::run(app.clone(), tls.ca_pem.clone()));
        let mut tasks = vec![server, gc, controllers];
        let mut scratch = None;
        if let Some(k) = &config.kubelet {
            let root = match (&k.root, &config.data_dir) {
                (Some(r), _) => r.clone(),
                (None, Some(d)) => d.join("kubelet"),
                (None, None) => {
                    let dir = std::env::temp_dir()
                        .join(format!("ephemera-devcluster-{}", crate::cluster::hex(&meta::random_bytes::<6>())));
                    scratch = Some(dir.clone());
                    dir
                }
            };
            std::fs::create_dir_all(&root).map_err(io(format!("create {}", root.display())))?;
            let cfg = KubeletConfig {
                node_name: k.node_name.clone(),
                root,
                image_store: k.image_store.clone(),
                registries: k.registries.clone(),
                backoff_base: k.backoff_base,
                pids_limit: k.pids_limit,
            };
            tasks.push(crate::kubelet::start(app.clone(), cfg, addr.port(), tls.ca_pem.clone()));
            tasks.push(tokio::spawn(crate::proxy::run(app.clone())));
        }
        let cluster = Self { addr, app, tls, tasks, scratch };
        if let Some(path) = &config.kubeconfig {
            cluster.write_kubeconfig(path)?;
        }
        Ok(cluster)
    }

    /// The API server URL (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The cluster CA certificate (PEM) that clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
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
            "apiVersion: v1\nkind: Config\nclusters:\n- name: ephemera-dev\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: ephemera-dev\n  context:\n    cluster: ephemera-dev\n    user: admin\n    namespace: default\ncurrent-context: ephemera-dev\n",
            url = self.url(),
            ca = STANDARD.encode(self.tls.ca_pem.as_bytes()),
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
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
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

fn fresh_keys() -> Result<(Auth, Tls), StartError> {
    Ok((Auth::new(hex(&meta::random_bytes::<24>()), meta::random_bytes::<32>().to_vec()), Tls::generate()?))
}

fn parse_keys(v: &serde_json::Value) -> Option<(Auth, Tls)> {
    let b64 = |f: &str| v[f].as_str().and_then(|s| STANDARD.decode(s).ok());
    let auth = Auth::new(v["adminToken"].as_str()?.to_string(), b64("signingKey")?);
    let tls = Tls {
        ca_pem: v["caPem"].as_str()?.to_string(),
        ca_der: b64("caDer")?,
        cert_der: b64("certDer")?,
        key_der: b64("keyDer")?,
    };
    Some((auth, tls))
}

/// Keys and certificates survive restarts with `--data-dir`, so kubeconfigs and issued tokens stay
/// valid.
fn load_keys(dir: &Path) -> Result<(Auth, Tls), StartError> {
    let path = dir.join("keys.json");
    if let Some(keys) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| parse_keys(&v))
    {
        return Ok(keys);
    }
    let token = hex(&meta::random_bytes::<24>());
    let key = meta::random_bytes::<32>();
    let tls = Tls::generate()?;
    let doc = json!({
        "adminToken": token,
        "signingKey": STANDARD.encode(key),
        "caPem": tls.ca_pem,
        "caDer": STANDARD.encode(&tls.ca_der),
        "certDer": STANDARD.encode(&tls.cert_der),
        "keyDer": STANDARD.encode(&tls.key_der),
    });
    write_private(&path, doc.to_string().as_bytes())?;
    Ok((Auth::new(token, key.to_vec()), tls))
}

/// Accepts TLS connections and serves each with HTTP/1.1 (upgrades allowed, for exec-style streams).
/// Also used by the tests' HTTPS doubles (an OIDC issuer).
pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, app: axum::Router) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Usually EMFILE under load: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        // The peer address reaches handlers (the audit log's sourceIPs) as axum's ConnectInfo.
        let svc = TowerToHyperService::new(app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer))));
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
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
    // The bootstrap RBAC policy, created when missing (an admin's edits to it are kept).
    for (plural, object) in crate::rbac::bootstrap_policy() {
        let key = ResKey::new("rbac.authorization.k8s.io", plural);
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let _ = app.store.write::<()>(&key, "", &name, |cur| {
            if cur.is_some() {
                return Ok(Write::Keep);
            }
            let mut o = object.clone();
            o["metadata"]["uid"] = json!(meta::uid());
            o["metadata"]["creationTimestamp"] = json!(meta::now());
            Ok(Write::Put(o))
        });
    }
    crate::gc::sweep(app);
}
