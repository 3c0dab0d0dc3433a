//! `ephemera-serve`: serving connections with the bounds `axum::serve` lacks: a cap on open connections (a flood of
//! idle sockets is turned away at accept, before any request is read), a deadline for each request's
//! headers that also bounds how long a kept-alive connection may sit idle (slowloris), and a graceful
//! drain on SIGTERM: new connections stop, in-flight requests finish, live streams are told to end
//! (see [`Stopping`]), and whatever is still open after the drain period is closed. Also the
//! daemons' shared logging setup ([`logging`]).

pub mod flags;
pub mod logging;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most (more are closed at once).
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and the longest a kept-alive connection may
    /// sit idle between requests.
    pub header_read_timeout: Duration,
    /// How long a drain waits for open requests and streams before closing them.
    pub drain: Duration,
    /// Open connections per client address at most (None: no such cap; behind a proxy every client
    /// has the proxy's address).
    pub max_per_peer: Option<usize>,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(20),
            max_per_peer: None,
        }
    }
}

/// Connections open per client address.
#[derive(Default)]
struct Peers(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl Peers {
    /// Counts a connection from `ip` unless it already has `max`.
    fn enter(&self, ip: std::net::IpAddr, max: usize) -> bool {
        let Ok(mut m) = self.0.lock() else { return false };
        let n = m.entry(ip).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: std::net::IpAddr) {
        if let Ok(mut m) = self.0.lock() {
            if let Some(n) = m.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

/// Flips once the server starts draining; long-lived streams watch it and end cleanly.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// A pair: the sender starts the drain.
    pub fn new() -> (watch::Sender<bool>, Stopping) {
        let (tx, rx) = watch::channel(false);
        (tx, Stopping(rx))
    }

    /// One that never flips (tests, benches).
    pub fn never() -> Stopping {
        let (tx, rx) = watch::channel(false);
        // Kept alive for ever: a dropped sender must not read as "stopping".
        std::mem::forget(tx);
        Stopping(rx)
    }

    /// Resolves when the drain starts.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (flipping `drain_tx` so streams
/// end) for at most `limits.drain`. `refused` is called for each connection turned away;
/// `streams_open` says how many upgraded (WebSocket) streams are still open, which the drain also
/// waits for.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    drain_tx: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
    refused: impl Fn(),
    streams_open: impl Fn() -> usize,
) -> std::io::Result<()> {
    // (Upgraded connections, WebSockets, leave this count once upgraded; the API server bounds them
    // per identity.)
    let max = u32::try_from(limits.max_connections.clamp(1, 1 << 20)).unwrap_or(1 << 20);
    let slots = Arc::new(Semaphore::new(max as usize));
    let peers = Arc::new(Peers::default());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Full: closing now costs nothing, unlike a request that would wait for a slot.
            refused();
            drop(stream);
            continue;
        };
        let counted = match limits.max_per_peer {
            Some(per_peer) if !peers.enter(peer.ip(), per_peer) => {
                refused();
                drop(stream);
                continue;
            }
            Some(_) => Some((peers.clone(), peer.ip())),
            None => None,
        };
        let _ = stream.set_nodelay(true);
        // Every request knows the address it came from (axum's ConnectInfo), for the daemon's own
        // judgement of forwarding headers.
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut draining = drain_tx.subscribe();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { draining.wait_for(|d| *d).await.map(|_| ()) } => {
                    // Finish the request in flight, then close (no more keep-alive).
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
            if let Some((peers, ip)) = counted {
                peers.leave(ip);
            }
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    tracing::info!(drain_seconds = limits.drain.as_secs(), "draining open connections");
    let drained = async {
        let _ = slots.acquire_many(max).await;
        while streams_open() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(limits.drain, drained).await.is_err() {
        tracing::warn!("drain period over: closing the connections still open");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_at_most_its_share_of_connections() {
        let p = Peers::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(p.enter(a, 2) && p.enter(a, 2));
        assert!(!p.enter(a, 2), "a third from the same address");
        assert!(p.enter(b, 2), "others are not affected");
        p.leave(a);
        assert!(p.enter(a, 2), "a closed connection frees its place");
    }
}
