//! Running one container with runc from an OCI bundle (see `bundle.rs` for its `config.json`).
//!
//! Each run gets a private wrapper: `unshare` with its own mount and PID namespaces mounts the
//! container's writable root (an overlay: the cached image below, the run's own upper layer above)
//! and execs `runc run` as PID 1 of that namespace. So the overlay needs no cleanup (it goes with
//! the namespace), and killing the wrapper — which the parent-death signal does when the dev cluster
//! dies — tears down runc and the container's nested PID namespace with it. runc keeps the stopped
//! container (`--keep`) until its cgroup has been read, which tells an OOM kill from a plain SIGKILL.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

/// runc's prefix for the error it prints when it cannot start the container process.
const START_FAILED: &str = "runc run failed: ";

/// The wrapper's exit code when the container's root could not be mounted (its reason is then in
/// the bundle's `mount.err`, not in the container's log).
const MOUNT_FAILED: i32 = 199;

/// The cgroup (below each hierarchy's root) under which every container of this kubelet lives.
const CGROUP_PARENT: &str = "ephemera-devcluster";

/// How this node runs containers.
#[derive(Debug)]
pub struct Runtime {
    /// runc's state directory (`--root`): this kubelet's containers only.
    state: PathBuf,
    /// Why containers cannot run here, if they cannot.
    unavailable: Option<String>,
    spawner: Spawner,
}

/// One container run to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// runc container id (unique on the node).
    pub id: String,
    /// The bundle folder: `config.json` is written here, with `rootfs`, `upper` and `work` beside.
    pub bundle: PathBuf,
    /// The image's unpacked root (the overlay's read-only lower layer).
    pub image_root: PathBuf,
    /// The OCI runtime config; its `root.path` and `linux.cgroupsPath` are set here.
    pub config: serde_json::Value,
    /// Log file (CRI format lines are appended).
    pub log: PathBuf,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// The kernel's OOM killer struck inside the container's memory cgroup.
    pub oom_killed: bool,
    /// The runtime could not start the process (the kubelet's `StartError`), with runc's reason.
    pub start_error: Option<String>,
}

/// Signals a started container; its [`Exit`] arrives through the join handle from [`Runtime::start`].
#[derive(Debug, Clone)]
pub struct Handle {
    /// Asks the task that owns the wrapper process to kill it (it alone knows whether it has been
    /// reaped, so a kill can never reach a reused PID).
    kill: tokio::sync::mpsc::UnboundedSender<()>,
    cgroup: String,
    exited: watch::Receiver<bool>,
}

type Started = Result<(Handle, tokio::task::JoinHandle<Exit>), String>;
type SpawnRequest = (Launch, PathBuf, tokio::sync::oneshot::Sender<Started>);

/// Starts wrappers from one dedicated thread: a parent-death signal is tied to the *thread* that
/// forked, so that thread must live as long as the kubelet (tokio's blocking threads come and go).
#[derive(Debug, Clone)]
struct Spawner {
    tx: std::sync::mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    fn new(runtime: tokio::runtime::Handle) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        let spawned = std::thread::Builder::new().name("container-spawner".into()).spawn(move || {
            let _guard = runtime.enter();
            for (run, state, reply) in rx {
                let _ = reply.send(spawn(&run, &state));
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the container spawner thread");
        }
        Self { tx }
    }
}

fn found(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
}

impl Runtime {
    /// A runtime keeping runc's state under `state`; removes what an earlier run of this kubelet
    /// left there (after a restart no container from before is running).
    #[allow(unsafe_code)] // geteuid(2): no preconditions
    pub fn new(state: PathBuf, tokio: tokio::runtime::Handle) -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let missing: Vec<&str> = ["runc", "unshare", "setpriv"].into_iter().filter(|t| !found(t)).collect();
        let unavailable = if !root {
            Some("this node cannot run containers: the dev cluster's kubelet runs runc and needs root".to_string())
        } else if !missing.is_empty() {
            Some(format!("this node cannot run containers: {} not installed", missing.join(", ")))
        } else {
            None
        };
        let rt = Runtime { state, unavailable, spawner: Spawner::new(tokio) };
        rt.remove_all();
        rt
    }

    /// Why containers cannot run on this node, if they cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// Starts `run`; the join handle yields how it ended once runc has been cleaned up after it.
    pub async fn start(&self, run: Launch) -> Started {
        if let Some(why) = &self.unavailable {
            return Err(why.clone());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.spawner
            .tx
            .send((run, self.state.clone(), reply))
            .map_err(|_| "the container spawner has stopped".to_string())?;
        answer.await.map_err(|_| "the container spawner has stopped".to_string())?
    }

    /// Deletes every container runc still knows under this kubelet's state (stopped or orphaned).
    fn remove_all(&self) {
        if self.unavailable.is_some() {
            return;
        }
        let Ok(out) = std::process::Command::new("runc").arg("--root").arg(&self.state).args(["list", "-q"]).output()
        else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(&self.state)
                .args(["delete", "-f", id])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.remove_all();
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The wrapper's script: mount the overlay root, then become runc.
fn wrapper_script(run: &Launch, state: &Path) -> String {
    let p = |x: &Path| quote(&x.to_string_lossy());
    format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {} 2>{} || exit {MOUNT_FAILED}; exec runc --root {} --log {} --log-format json run --keep --bundle {} {}",
        p(&run.image_root),
        p(&run.bundle.join("upper")),
        p(&run.bundle.join("work")),
        p(&run.bundle.join("rootfs")),
        p(&run.bundle.join("mount.err")),
        p(state),
        p(&run.bundle.join("runc.log")),
        p(&run.bundle),
        quote(&run.id),
    )
}

/// The container's cgroup path (the same below every hierarchy).
fn cgroup_path(id: &str) -> String {
    format!("/{CGROUP_PARENT}/{id}")
}

/// A file of the container's cgroup: in the unified hierarchy, or in v1's hierarchy for `controller`.
fn cgroup_file(cgroup: &str, controller: &str, file: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        root.join(cgroup.trim_start_matches('/')).join(file)
    } else {
        root.join(controller).join(cgroup.trim_start_matches('/')).join(file)
    }
}

/// The OOM kills counted in the container's memory cgroup (v1 `memory.oom_control`, v2
/// `memory.events`, both `oom_kill N`).
fn oom_kills(cgroup: &str) -> u64 {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let file = cgroup_file(cgroup, "memory", if v2 { "memory.events" } else { "memory.oom_control" });
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// The host PID of the container's own PID 1: the process of its cgroup that is 1 in the
/// container's PID namespace, three levels down (host, wrapper, container); a process that is 1 of
/// a namespace the container made itself (`unshare -p`) is deeper and never taken for it.
fn container_init(cgroup: &str) -> Option<i32> {
    let procs = std::fs::read_to_string(cgroup_file(cgroup, "pids", "cgroup.procs"))
        .or_else(|_| std::fs::read_to_string(cgroup_file(cgroup, "memory", "cgroup.procs")))
        .ok()?;
    procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()).find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).ok().is_some_and(|s| {
            s.lines().find_map(|l| l.strip_prefix("NSpid:")).is_some_and(|ids| {
                let ids: Vec<&str> = ids.split_whitespace().collect();
                // Levels seen from this process's own namespace: it is the host's here.
                ids.len() == 3 && ids[2] == "1"
            })
        })
    })
}

/// Copies one output stream into the log file as CRI-format records: `F` for a full line, `P` for
/// a final fragment without a newline. runc's own start error is kept out of the container's log.
async fn pump(stream: impl AsyncRead + Unpin, name: &'static str, log: PathBuf) {
    let Ok(mut file) = tokio::fs::OpenOptions::new().create(true).append(true).open(&log).await else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if name == "stderr" && buf.starts_with(START_FAILED.as_bytes()) {
            continue;
        }
        let full = buf.last() == Some(&b'\n');
        if full {
            buf.pop();
        }
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string();
        let mut rec = format!("{ts} {name} {} ", if full { "F" } else { "P" }).into_bytes();
        rec.extend_from_slice(&buf);
        rec.push(b'\n');
        if file.write_all(&rec).await.is_err() {
            break;
        }
    }
    let _ = file.flush().await;
}

/// runc's start error for this run, from its JSON log, if it logged one.
fn start_error(bundle: &Path) -> Option<String> {
    let log = std::fs::read_to_string(bundle.join("runc.log")).ok()?;
    log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|v| {
        let msg = v["msg"].as_str()?;
        (v["level"] == "error").then(|| msg.strip_prefix(START_FAILED).unwrap_or(msg).to_string())
    })
}

/// `name` as found on `PATH` (or `name` itself if it is not there). A command that sets `PATH` in
/// its environment and names its program without a path is started with fork instead of
/// posix_spawn (std cannot hand that lookup to posix_spawnp), and fork copies this process's page
/// tables: every container start cost more the more memory the local cluster held (a 10-minute
/// sustained run: create -> Succeeded p50 175 -> 289 ms as it grew to 700 MiB).
fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt as _;
            p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

fn spawn(run: &Launch, state: &Path) -> Started {
    for dir in ["rootfs", "upper", "work"] {
        std::fs::create_dir_all(run.bundle.join(dir)).map_err(|e| format!("creating the bundle: {e}"))?;
    }
    let cgroup = cgroup_path(&run.id);
    let mut config = run.config.clone();
    config["root"]["path"] = serde_json::json!("rootfs");
    config["linux"]["cgroupsPath"] = serde_json::json!(cgroup);
    std::fs::write(run.bundle.join("config.json"), config.to_string())
        .map_err(|e| format!("writing the bundle: {e}"))?;
    // Looked up once per process: every container start uses it.
    static SETPRIV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let mut cmd = Command::new(SETPRIV.get_or_init(|| on_path("setpriv")));
    cmd.args(["--pdeathsig", "KILL", "--", "unshare", "--mount", "--propagation", "private"])
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", "--", "/bin/sh", "-c"])
        .arg(wrapper_script(run, state))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("starting runc: {e}"))?;
    let pumps: Vec<_> = [
        child.stdout.take().map(|s| tokio::spawn(pump(s, "stdout", run.log.clone()))),
        child.stderr.take().map(|s| tokio::spawn(pump(s, "stderr", run.log.clone()))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (exited_tx, exited) = watch::channel(false);
    let (kill, mut kill_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let handle = Handle { kill, cgroup: cgroup.clone(), exited };
    let (state, id, bundle) = (state.to_path_buf(), run.id.clone(), run.bundle.clone());
    let exit = tokio::spawn(async move {
        let status = loop {
            tokio::select! {
                s = child.wait() => break s,
                Some(()) = kill_rx.recv() => { let _ = child.start_kill(); }
            }
        };
        for p in pumps {
            let _ = p.await;
        }
        let _ = exited_tx.send(true);
        let code = match status {
            Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(255),
            Err(_) => 255,
        };
        let start_error = match code {
            1 => start_error(&bundle),
            MOUNT_FAILED => std::fs::read_to_string(bundle.join("mount.err"))
                .ok()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .map(|e| format!("mounting the container's root filesystem: {e}")),
            _ => None,
        };
        let exit = Exit {
            code: if start_error.is_some() { 128 } else { code },
            oom_killed: oom_kills(&cgroup) > 0,
            start_error,
        };
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["delete", "-f", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        exit
    });
    Ok((handle, exit))
}

impl Handle {
    /// Sends SIGTERM to the container's PID 1 (ignored unless it handles it, as in any container).
    /// A container still being created gets it as soon as its process exists.
    pub fn terminate(&self) {
        let h = self.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                if *h.exited.borrow() {
                    return;
                }
                if let Some(pid) = container_init(&h.cgroup) {
                    // SAFETY: kill(2) only sends a signal.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::kill(pid, libc::SIGTERM);
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// Kills the container: its wrapper goes, and with it runc and every process of the container.
    pub fn kill(&self) {
        let _ = self.kill.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_mounts_the_overlay_and_becomes_runc_with_quoted_paths() {
        let run = Launch {
            id: "u-1-c-0".into(),
            bundle: PathBuf::from("/k/pods/u 1/bundles/c-0"),
            image_root: PathBuf::from("/k/images/abc/rootfs"),
            config: serde_json::json!({}),
            log: PathBuf::from("/dev/null"),
        };
        let s = wrapper_script(&run, Path::new("/k/runc"));
        assert_eq!(
            s,
            "mount -t overlay overlay -o lowerdir='/k/images/abc/rootfs',upperdir='/k/pods/u 1/bundles/c-0/upper',workdir='/k/pods/u 1/bundles/c-0/work' '/k/pods/u 1/bundles/c-0/rootfs' 2>'/k/pods/u 1/bundles/c-0/mount.err' || exit 199; exec runc --root '/k/runc' --log '/k/pods/u 1/bundles/c-0/runc.log' --log-format json run --keep --bundle '/k/pods/u 1/bundles/c-0' 'u-1-c-0'"
        );
    }

    #[test]
    fn the_container_launcher_is_named_by_its_path_so_it_starts_without_copying_the_clusters_memory() {
        let sh = on_path("sh");
        assert!(sh.is_absolute() && sh.is_file(), "{}", sh.display());
        assert_eq!(on_path("no-such-program-here"), PathBuf::from("no-such-program-here"));
    }
}
