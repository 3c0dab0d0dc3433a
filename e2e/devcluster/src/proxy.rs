//! The node's service proxy (kube-proxy's part, in its userspace form): a TCP listener on each
//! Service's ClusterIP and port that forwards every connection to one of the ready addresses in
//! the Service's Endpoints, round robin. A Service without ready endpoints has no listener,
//! so a connection is refused, as kube-proxy's reject rule refuses it. Only TCP is proxied.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::App;
use crate::meta;
use crate::store::ResKey;

const RESYNC: Duration = Duration::from_secs(2);

/// Each Service port's frontend (ClusterIP:port) and its ready backends, from the Service's
/// Endpoints (every subset: Pods whose named target ports resolve differently, as during a rollout
/// that moves them, are all backends).
pub fn routes(services: &[Arc<Value>], endpoints: &[Arc<Value>]) -> HashMap<SocketAddr, Vec<SocketAddr>> {
    let mut out = HashMap::new();
    for svc in services {
        let Some(ip) = svc["spec"]["clusterIP"].as_str().filter(|ip| crate::resources::service::in_range(ip)) else {
            continue;
        };
        if svc["spec"]["type"] == "ExternalName" {
            continue;
        }
        let (ns, name) = (meta::meta_str(svc, "namespace"), meta::meta_str(svc, "name"));
        let Some(ep) =
            endpoints.iter().find(|e| meta::meta_str(e, "namespace") == ns && meta::meta_str(e, "name") == name)
        else {
            continue;
        };
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if port["protocol"].as_str().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let (Some(number), port_name) = (port["port"].as_u64(), port["name"].as_str().unwrap_or_default()) else {
                continue;
            };
            let Ok(frontend) = format!("{ip}:{number}").parse::<SocketAddr>() else { continue };
            let mut backends = Vec::new();
            for subset in ep["subsets"].as_array().into_iter().flatten() {
                let target = subset["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
                    .and_then(|p| p["port"].as_u64());
                let Some(target) = target else { continue };
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    if let Some(Ok(b)) = a["ip"].as_str().map(|ip| format!("{ip}:{target}").parse()) {
                        backends.push(b);
                    }
                }
            }
            backends.sort();
            backends.dedup();
            if !backends.is_empty() {
                out.insert(frontend, backends);
            }
        }
    }
    out
}

struct Listener {
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

/// Runs the proxy until the store is dropped.
pub async fn run(app: Arc<App>) {
    let mut rx = app.store.subscribe();
    let mut tick = tokio::time::interval(RESYNC);
    let mut listeners: HashMap<SocketAddr, Listener> = HashMap::new();
    let watched = [ResKey::new("", "services"), ResKey::new("", "endpoints")];
    // Frontends already reported as impossible to listen on (reported once, retried every sync).
    let mut reported = std::collections::HashSet::new();
    loop {
        let relevant = tokio::select! {
            _ = tick.tick() => true,
            ev = rx.recv() => match ev {
                Ok(ev) => watched.contains(&ev.key),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        };
        if !relevant {
            continue;
        }
        let services = app.store.list(&watched[0], None).0;
        let endpoints = app.store.list(&watched[1], None).0;
        let want = routes(&services, &endpoints);
        listeners.retain(|frontend, l| {
            let keep = want.contains_key(frontend);
            if !keep {
                l.task.abort();
            }
            keep
        });
        for (frontend, backends) in want {
            if let Some(l) = listeners.get(&frontend) {
                if let Ok(mut b) = l.backends.write() {
                    *b = backends;
                }
                continue;
            }
            match TcpListener::bind(frontend).await {
                Ok(listener) => {
                    reported.remove(&frontend);
                    let backends = Arc::new(RwLock::new(backends));
                    let task = tokio::spawn(serve(listener, backends.clone()));
                    listeners.insert(frontend, Listener { backends, task });
                }
                // Retried on the next sync: a port below 1024 without root, or a process of the host
                // (or a Pod: they share its network) listening on 0.0.0.0 with the Service's port.
                Err(e) => {
                    if reported.insert(frontend) {
                        tracing::warn!(%frontend, error = %e, "the service proxy cannot listen on this Service's address");
                    }
                }
            }
        }
    }
    for l in listeners.values() {
        l.task.abort();
    }
}

async fn serve(listener: TcpListener, backends: Arc<RwLock<Vec<SocketAddr>>>) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let list = backends.read().map(|b| b.clone()).unwrap_or_default();
        if list.is_empty() {
            continue;
        }
        let start = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // The chosen endpoint first, then the others: a Pod that just went away is skipped.
            for i in 0..list.len() {
                let backend = list[(start + i) % list.len()];
                if let Ok(mut upstream) = TcpStream::connect(backend).await {
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_service_port_routes_to_the_ready_addresses_of_every_subset() {
        let services = vec![Arc::new(json!({
            "metadata": {"name": "api", "namespace": "e"},
            "spec": {"clusterIP": "127.96.0.9", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics", "port": 9090}]}
        }))];
        let endpoints = vec![Arc::new(json!({
            "metadata": {"name": "api", "namespace": "e"},
            "subsets": [
                {"addresses": [{"ip": "127.0.0.1"}], "notReadyAddresses": [{"ip": "127.0.0.2"}], "ports": [{"name": "http", "port": 18080}]},
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": 28080}]},
            ]
        }))];
        let r = routes(&services, &endpoints);
        let frontend: SocketAddr = "127.96.0.9:80".parse().unwrap();
        let want: Vec<SocketAddr> = vec!["127.0.0.1:18080".parse().unwrap(), "127.0.0.1:28080".parse().unwrap()];
        assert_eq!(r.get(&frontend), Some(&want));
        assert_eq!(r.len(), 1, "a port without endpoints gets no listener: {r:?}");
    }
}
