//! Container probes, as the kubelet runs them: a startup probe first (liveness and readiness wait
//! for it), then readiness (the container is Ready only after a success) and liveness (a container
//! that fails it is killed and restarted by the Pod's restart policy). `httpGet` (status 200–399)
//! and `tcpSocket` probes run against the Pod's address; `exec` and `grpc` probes are not run and
//! count as passing (see the README).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What a probe reports to the Pod's worker, for main container `index` (events name the run
/// they are about, the container's restart count, so a late one from an ended run is ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index of the main container.
    pub index: usize,
    /// The run (restart count) it is about.
    pub run: u32,
    /// What happened.
    pub kind: Kind,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The startup probe passed (or there is none).
    Started,
    /// Readiness changed.
    Ready(bool),
    /// The startup or liveness probe failed `failureThreshold` times: restart the container.
    Restart(String),
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Http {
        port: u16,
        path: String,
        host: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        port: u16,
    },
    /// Exec and gRPC probes: not run here.
    Unsupported,
}

/// One probe with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    check: Check,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

fn secs(v: &Value, default: u64) -> Duration {
    Duration::from_secs(v.as_u64().filter(|s| *s > 0).unwrap_or(default))
}

fn count(v: &Value, default: u32) -> u32 {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(v: &Value, container: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(name) => {
            container["ports"].as_array()?.iter().find(|p| p["name"].as_str() == Some(name.as_str()))?["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
        }
        _ => None,
    }
}

impl Probe {
    /// The probe `field` (`startupProbe`, `readinessProbe`, `livenessProbe`) of a container.
    pub fn parse(container: &Value, field: &str) -> Option<Probe> {
        let p = container.get(field).filter(|p| p.is_object())?;
        let check = if let Some(h) = p.get("httpGet").filter(|h| h.is_object()) {
            let headers = h["httpHeaders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| Some((x["name"].as_str()?.to_string(), x["value"].as_str()?.to_string())))
                .collect();
            match port(&h["port"], container) {
                // HTTPS probes skip verification upstream; here they only check the port accepts.
                Some(port) if h["scheme"] == "HTTPS" => Check::Tcp { port },
                Some(port) => Check::Http {
                    port,
                    path: h["path"].as_str().filter(|s| !s.is_empty()).unwrap_or("/").to_string(),
                    host: h["host"].as_str().filter(|s| !s.is_empty()).unwrap_or("127.0.0.1").to_string(),
                    headers,
                },
                None => Check::Tcp { port: 0 },
            }
        } else if let Some(t) = p.get("tcpSocket").filter(|t| t.is_object()) {
            Check::Tcp { port: port(&t["port"], container).unwrap_or(0) }
        } else {
            Check::Unsupported
        };
        Some(Probe {
            check,
            initial_delay: Duration::from_secs(p["initialDelaySeconds"].as_u64().unwrap_or(0)),
            period: secs(&p["periodSeconds"], 10),
            timeout: secs(&p["timeoutSeconds"], 1),
            success_threshold: count(&p["successThreshold"], 1),
            failure_threshold: count(&p["failureThreshold"], 3),
        })
    }

    /// Runs the check once.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.attempt()).await {
            Ok(r) => r,
            Err(_) => Err(format!("timeout after {}s", self.timeout.as_secs())),
        }
    }

    async fn attempt(&self) -> Result<(), String> {
        match &self.check {
            Check::Unsupported => Ok(()),
            Check::Tcp { port } => TcpStream::connect(("127.0.0.1", *port))
                .await
                .map(|_| ())
                .map_err(|e| format!("dial tcp 127.0.0.1:{port}: connect: {e}")),
            Check::Http { port, path, host, headers } => {
                let url = format!("http://{host}:{port}{path}");
                let mut s =
                    TcpStream::connect((host.as_str(), *port)).await.map_err(|e| format!("Get {url:?}: {e}"))?;
                // The probe's own headers replace the defaults of the same name (Host included).
                let given = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
                let mut request = format!("GET {path} HTTP/1.1\r\n");
                for (k, v) in [
                    ("Host", format!("{host}:{port}")),
                    ("User-Agent", "kube-probe/1.36".into()),
                    ("Accept", "*/*".into()),
                ] {
                    if !given(k) {
                        request.push_str(&format!("{k}: {v}\r\n"));
                    }
                }
                request.push_str("Connection: close\r\n");
                for (k, v) in headers {
                    request.push_str(&format!("{k}: {v}\r\n"));
                }
                request.push_str("\r\n");
                s.write_all(request.as_bytes()).await.map_err(|e| format!("Get {url:?}: {e}"))?;
                let mut head = vec![0u8; 64];
                let n = s.read(&mut head).await.map_err(|e| format!("Get {url:?}: {e}"))?;
                let line = String::from_utf8_lossy(&head[..n]);
                let code: u16 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
        }
    }
}

/// A probe's verdict after a run of results: flips after `successThreshold` successes in a row or
/// `failureThreshold` failures in a row.
#[derive(Debug)]
struct Verdict {
    passing: bool,
    streak: u32,
}

impl Verdict {
    fn observe(&mut self, ok: bool, p: &Probe) -> Option<bool> {
        if ok == self.passing {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if ok { p.success_threshold } else { p.failure_threshold };
        if self.streak >= needed {
            self.passing = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }
}

/// Runs the probes of main container `index` until aborted (when its run ends).
pub async fn run(index: usize, run: u32, container: Value, events: mpsc::UnboundedSender<Event>) {
    let send = |kind: Kind| {
        let _ = events.send(Event { index, run, kind });
    };
    let startup = Probe::parse(&container, "startupProbe");
    let readiness = Probe::parse(&container, "readinessProbe");
    let liveness = Probe::parse(&container, "livenessProbe");
    if let Some(p) = &startup {
        tokio::time::sleep(p.initial_delay).await;
        let mut failures = 0;
        loop {
            match p.check().await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    if failures >= p.failure_threshold {
                        send(Kind::Restart(format!("Startup probe failed: {e}")));
                        return;
                    }
                }
            }
            tokio::time::sleep(p.period).await;
        }
    }
    send(Kind::Started);
    let ready_loop = async {
        let Some(p) = &readiness else {
            send(Kind::Ready(true));
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(p.initial_delay).await;
        let mut v = Verdict { passing: false, streak: 0 };
        loop {
            if let Some(now) = v.observe(p.check().await.is_ok(), p) {
                send(Kind::Ready(now));
            }
            tokio::time::sleep(p.period).await;
        }
    };
    let live_loop = async {
        let Some(p) = &liveness else { return std::future::pending::<()>().await };
        tokio::time::sleep(p.initial_delay).await;
        let mut v = Verdict { passing: true, streak: 0 };
        loop {
            let result = p.check().await;
            if v.observe(result.is_ok(), p) == Some(false) {
                let why = result.err().unwrap_or_default();
                send(Kind::Restart(format!("Liveness probe failed: {why}")));
                return;
            }
            tokio::time::sleep(p.period).await;
        }
    };
    tokio::join!(ready_loop, live_loop);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_read_their_port_by_name_and_take_upstream_defaults() {
        let c = json!({"ports": [{"name": "metrics", "containerPort": 9090}],
                       "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}},
                       "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2, "failureThreshold": 5},
                       "startupProbe": {"exec": {"command": ["true"]}}});
        let r = Probe::parse(&c, "readinessProbe").unwrap();
        assert_eq!(
            r.check,
            Check::Http { port: 9090, path: "/readyz".into(), host: "127.0.0.1".into(), headers: vec![] }
        );
        assert_eq!(
            (r.period, r.timeout, r.success_threshold, r.failure_threshold),
            (Duration::from_secs(10), Duration::from_secs(1), 1, 3)
        );
        let l = Probe::parse(&c, "livenessProbe").unwrap();
        assert_eq!(
            (l.check.clone(), l.period, l.failure_threshold),
            (Check::Tcp { port: 8080 }, Duration::from_secs(2), 5)
        );
        assert_eq!(Probe::parse(&c, "startupProbe").unwrap().check, Check::Unsupported);
        assert!(Probe::parse(&json!({}), "readinessProbe").is_none());
    }

    #[test]
    fn a_verdict_flips_only_after_its_threshold_in_a_row() {
        let p = Probe::parse(
            &json!({"readinessProbe": {"tcpSocket": {"port": 1}, "failureThreshold": 2, "successThreshold": 1}}),
            "readinessProbe",
        )
        .unwrap();
        let mut v = Verdict { passing: true, streak: 0 };
        assert_eq!(v.observe(false, &p), None);
        assert_eq!(v.observe(true, &p), None);
        assert_eq!(v.observe(false, &p), None);
        assert_eq!(v.observe(false, &p), Some(false));
        assert_eq!(v.observe(true, &p), Some(true));
    }

    #[tokio::test]
    async fn http_probes_pass_on_2xx_and_3xx_and_fail_otherwise() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in ["204 No Content", "302 Found", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let p =
            Probe::parse(&json!({"readinessProbe": {"httpGet": {"port": port, "path": "/readyz"}}}), "readinessProbe")
                .unwrap();
        assert_eq!(p.check().await, Ok(()));
        assert_eq!(p.check().await, Ok(()));
        assert_eq!(p.check().await, Err("HTTP probe failed with statuscode: 503".to_string()));
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let closed = Probe::parse(&json!({"livenessProbe": {"tcpSocket": {"port": free}}}), "livenessProbe").unwrap();
        assert!(closed.check().await.is_err());
    }
}
