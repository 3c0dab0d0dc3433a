//! Container logs: each run of a container appends CRI-format lines (`TIME STREAM F TEXT`) to
//! `pods/<uid>/logs/<container>/<run>.log`; a `<run>.done` marker says the run ended. This serves
//! `pods/{name}/log` with `container`, `follow`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `previous` and `limitBytes`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::Value;

use crate::http::{ApiError, App, PodLogs, Query};
use crate::store::ResKey;

/// Log files of one container run.
pub fn log_path(root: &Path, uid: &str, container: &str, run: u32) -> PathBuf {
    root.join("pods").join(uid).join("logs").join(container).join(format!("{run}.log"))
}

/// The last `lines` lines (at most `bytes` bytes) of a run's output, as `kubectl logs` would show them.
pub fn tail_text(log: &Path, lines: usize, bytes: usize) -> String {
    let all = parse(&std::fs::read(log).unwrap_or_default());
    let out = render(&all[all.len().saturating_sub(lines)..], false);
    let out = &out[out.len().saturating_sub(bytes)..];
    String::from_utf8_lossy(out).into_owned()
}

/// Marks a run finished (followers stop once they have read everything).
pub fn mark_done(log: &Path) {
    let _ = std::fs::write(log.with_extension("done"), b"");
}

/// Serves logs from the kubelet's files.
pub struct LogServer {
    /// Kubelet root directory.
    pub root: PathBuf,
    /// The cluster (weak: the server owns this log source).
    pub app: Weak<App>,
}

struct Line {
    ts: String,
    /// `F`ull line (rendered with a newline) or `P`artial final fragment.
    full: bool,
    text: Vec<u8>,
}

fn parse(content: &[u8]) -> Vec<Line> {
    content
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let mut parts = l.splitn(4, |b| *b == b' ');
            let ts = String::from_utf8_lossy(parts.next()?).into_owned();
            let _stream = parts.next()?;
            let full = parts.next()? != b"P";
            Some(Line { ts, full, text: parts.next().unwrap_or_default().to_vec() })
        })
        .collect()
}

fn render(lines: &[Line], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if timestamps {
            out.extend_from_slice(l.ts.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&l.text);
        if l.full {
            out.push(b'\n');
        }
    }
    out
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

impl PodLogs for LogServer {
    fn logs(&self, namespace: &str, pod_name: &str, q: &Query) -> Result<Body, ApiError> {
        let app = self.app.upgrade().ok_or_else(|| ApiError::internal("the cluster is shutting down"))?;
        let pod = app.store.get(&ResKey::new("", "pods"), namespace, pod_name).ok_or_else(|| {
            ApiError::not_found(crate::http::status::Subject { group: "", resource: "pods", name: pod_name })
        })?;
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let (mains, inits) = (names(&pod, "containers"), names(&pod, "initContainers"));
        let container = match q.get("container").filter(|c| !c.is_empty()) {
            Some(c) if mains.contains(c) || inits.contains(c) => c.clone(),
            Some(c) => return Err(bad(format!("container {c} is not valid for pod {pod_name}"))),
            None if mains.len() == 1 => mains[0].clone(),
            None => {
                return Err(bad(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}] or one of the init containers: [{}]",
                    mains.join(" "),
                    inits.join(" ")
                )))
            }
        };
        let dir = self.root.join("pods").join(&uid).join("logs").join(&container);
        let latest = std::fs::read_dir(&dir)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log")?.parse::<u32>().ok())
            .max();
        let run = match (latest, crate::http::request_flag(q, "previous")) {
            (None, _) => {
                return Err(bad(format!(
                    "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
                )))
            }
            (Some(0), true) => {
                return Err(bad(format!(
                    "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                )))
            }
            (Some(n), true) => n - 1,
            (Some(n), false) => n,
        };
        let path = dir.join(format!("{run}.log"));
        let timestamps = crate::http::request_flag(q, "timestamps");
        let since = q
            .get("sinceSeconds")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(s)).ok())
            .or_else(|| q.get("sinceTime").and_then(|t| t.parse().ok()));
        let tail = q.get("tailLines").and_then(|t| t.parse::<usize>().ok());
        let limit = q.get("limitBytes").and_then(|t| t.parse::<usize>().ok());
        let mut lines = parse(&std::fs::read(&path).unwrap_or_default());
        if let Some(since) = since {
            lines.retain(|l| l.ts.parse::<jiff::Timestamp>().is_ok_and(|t| t >= since));
        }
        if let Some(n) = tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        let mut first = render(&lines, timestamps);
        if let Some(limit) = limit {
            first.truncate(limit);
        }
        if !crate::http::request_flag(q, "follow") {
            return Ok(Body::from(first));
        }
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let stream = futures::stream::unfold(
            (Some(first), path, offset, Vec::<u8>::new()),
            move |(first, path, mut offset, mut partial)| async move {
                if let Some(f) = first {
                    return Some((Ok::<_, Infallible>(Bytes::from(f)), (None, path, offset, partial)));
                }
                loop {
                    let done = path.with_extension("done").exists();
                    let content = tokio::fs::read(&path).await.unwrap_or_default();
                    if (content.len() as u64) > offset {
                        partial.extend_from_slice(&content[offset as usize..]);
                        offset = content.len() as u64;
                        // Only whole lines are parsed; the rest waits for its newline.
                        if let Some(end) = partial.iter().rposition(|b| *b == b'\n') {
                            let chunk: Vec<u8> = partial.drain(..=end).collect();
                            let out = render(&parse(&chunk), timestamps);
                            return Some((Ok(Bytes::from(out)), (None, path, offset, partial)));
                        }
                    }
                    if done {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        );
        Ok(Body::from_stream(stream))
    }
}
