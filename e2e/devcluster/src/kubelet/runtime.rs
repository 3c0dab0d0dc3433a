//! Running one container as a local process. As root on Linux each container gets private mount and
//! PID namespaces (`unshare`): its volumes are bind-mounted at their `mountPath` without touching the
//! host's view, it is PID 1 of its own namespace (so, as in a container, signals without a handler are
//! ignored and its whole tree dies with it), and it dies if the dev cluster dies. Without root, user
//! namespaces give the same (minus `runAsUser`); without either, containers that mount volumes fail.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::volumes::Mount;

/// How containers are isolated on this host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Isolation {
    /// Root: mount + PID namespaces; `runAsUser`/`runAsGroup` honoured.
    Namespaces,
    /// Not root, unprivileged user namespaces available: same, mapped to root inside.
    UserNamespaces,
    /// Neither: plain processes in their own process group; mounts are refused.
    None,
}

impl Isolation {
    /// Probes what this host allows.
    #[allow(unsafe_code)] // geteuid(2): no preconditions
    pub fn detect() -> Self {
        let found = |tool: &str| Path::new("/usr/bin").join(tool).exists() || Path::new("/bin").join(tool).exists();
        if !found("unshare") || !found("setpriv") {
            return Isolation::None;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return Isolation::Namespaces;
        }
        let ok = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "--pid", "--fork", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Isolation::UserNamespaces
        } else {
            Isolation::None
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Full environment.
    pub env: Vec<(String, String)>,
    /// Working directory (inside the container's view).
    pub workdir: Option<String>,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// `runAsUser` / `runAsGroup`.
    pub uid: Option<u32>,
    /// Primary group.
    pub gid: Option<u32>,
    /// Supplementary groups (`fsGroup`, `supplementalGroups`).
    pub groups: Vec<u32>,
    /// Log file (CRI format lines are appended).
    pub log: PathBuf,
    /// Hostname inside the container (its own UTS namespace): the Pod name.
    pub hostname: String,
    /// Empty folder where the container's root (a copy-on-write overlay of the host's) is assembled.
    pub scratch: PathBuf,
    /// Host files the image needs (its mapped binary), bind-mounted read-only at the same path.
    pub binaries: Vec<PathBuf>,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
}

/// Starts containers from one dedicated thread. The parent-death signal that stops a container when
/// the dev cluster dies is tied to the *thread* that started it, so that thread must live as long as
/// the kubelet (tokio's blocking threads exit when idle; async workers must not block on fork/exec).
#[derive(Clone)]
pub struct Spawner {
    tx: std::sync::mpsc::Sender<SpawnRequest>,
}

type Started = Result<(Handle, tokio::task::JoinHandle<i32>), String>;
type SpawnRequest = (Spec, Isolation, tokio::sync::oneshot::Sender<Started>);

impl Spawner {
    /// Starts the spawner thread; it ends when every `Spawner` clone is dropped, and its containers
    /// are then killed.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        let spawned = std::thread::Builder::new().name("container-spawner".into()).spawn(move || {
            let _guard = runtime.enter();
            for (spec, isolation, reply) in rx {
                let _ = reply.send(spawn(&spec, isolation));
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the container spawner thread");
        }
        Self { tx }
    }

    /// Starts a container (see [`spawn`]).
    pub async fn spawn(&self, spec: Spec, isolation: Isolation) -> Started {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send((spec, isolation, reply)).map_err(|_| "the container spawner has stopped".to_string())?;
        answer.await.map_err(|_| "the container spawner has stopped".to_string())?
    }
}

/// Signals a started container; its exit code arrives through the `JoinHandle` from [`spawn`].
#[derive(Debug, Clone)]
pub struct Handle {
    outer_pid: Option<u32>,
    isolation: Isolation,
}

/// Where a mapped image binary appears inside its container: a fixed folder of its own, so no volume
/// (e.g. one mounted over the host path's parent, like `/work`) can hide it.
pub fn image_binary_path(host: &Path) -> String {
    format!("/.devcluster-image/{}", host.file_name().map(|f| f.to_string_lossy()).unwrap_or_default())
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell run as PID 1 of the new namespaces. It gives the container its own root: a
/// copy-on-write overlay of the host's root on a private tmpfs (so nothing the container writes, and
/// no mount point it needs, touches the host), with `/dev`, `/sys`, a fresh `/proc`, the volumes and
/// the image's binary mounted in; then it sets the hostname, enters that root, drops to the requested
/// user and execs the container command, which thereby becomes PID 1.
fn init_script(spec: &Spec, isolation: Isolation) -> String {
    // The setup tools live in sbin directories the container's own PATH may not list; the
    // container's PATH is restored for its command.
    let mut s = String::from(
        "set -e\nCPATH=\"${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}\"\nexport PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
    if !spec.hostname.is_empty() {
        // Only ever inside the container's own UTS namespace (`unshare --uts`), checked first.
        s.push_str(&format!(
            "[ \"$(readlink /proc/self/ns/uts)\" != \"$HOST_UTS_NS\" ] && printf %s {} > /proc/sys/kernel/hostname\n",
            quote(&spec.hostname)
        ));
    }
    let scratch = quote(&spec.scratch.to_string_lossy());
    s.push_str(&format!("S={scratch}\nmkdir -p \"$S\"\nmount -t tmpfs -o mode=0755 tmpfs \"$S\"\n"));
    s.push_str("mkdir -p \"$S/upper\" \"$S/work\" \"$S/root\"\n");
    s.push_str("mount -t overlay overlay -o \"lowerdir=/,upperdir=$S/upper,workdir=$S/work\" \"$S/root\"\n");
    s.push_str("R=\"$S/root\"\nmount --rbind /sys \"$R/sys\"\nmount -t proc proc \"$R/proc\"\n");
    // A private /dev with the usual device nodes, as a container runtime provides.
    s.push_str("mount -t tmpfs -o mode=0755,nosuid tmpfs \"$R/dev\"\n");
    s.push_str("for d in null zero full random urandom tty; do : > \"$R/dev/$d\"; mount --bind \"/dev/$d\" \"$R/dev/$d\"; done\n");
    s.push_str(
        "mkdir -p \"$R/dev/pts\" \"$R/dev/shm\"\nmount -t tmpfs -o mode=1777,nosuid,nodev tmpfs \"$R/dev/shm\"\n",
    );
    s.push_str("ln -s /proc/self/fd \"$R/dev/fd\"; ln -s /proc/self/fd/0 \"$R/dev/stdin\"; ln -s /proc/self/fd/1 \"$R/dev/stdout\"; ln -s /proc/self/fd/2 \"$R/dev/stderr\"\n");
    let binds = spec
        .binaries
        .iter()
        .map(|b| (b.clone(), image_binary_path(b), true))
        .chain(spec.mounts.iter().map(|m| (m.source.clone(), m.target.clone(), m.read_only)));
    // Targets are resolved inside the new root (`/var/run` → `/run` there), never on the host.
    s.push_str("at() { printf '%s%s' \"$R\" \"$(chroot \"$R\" realpath -m -- \"$1\")\"; }\n");
    for (source, target, read_only) in binds {
        let (src, dst) = (quote(&source.to_string_lossy()), quote(&target));
        s.push_str(&format!("T=\"$(at {dst})\"\n"));
        if source.is_dir() {
            s.push_str("mkdir -p \"$T\"\n");
        } else {
            s.push_str("mkdir -p \"$(dirname \"$T\")\"; [ -e \"$T\" ] || : > \"$T\"\n");
        }
        s.push_str(&format!("mount --bind {src} \"$T\"\n"));
        if read_only {
            s.push_str("mount -o remount,bind,ro \"$T\"\n");
        }
    }
    let workdir = spec.workdir.clone().unwrap_or_else(|| "/".into());
    s.push_str(&format!("mkdir -p \"$(at {})\"\n", quote(&workdir)));
    if spec.read_only_root {
        s.push_str("mount -o remount,ro \"$R\"\n");
    }
    s.push_str("unset HOST_UTS_NS\n");
    let user = match (spec.uid, isolation) {
        (Some(uid), Isolation::Namespaces) => {
            let groups = if spec.groups.is_empty() {
                "--clear-groups".to_string()
            } else {
                format!("--groups={}", spec.groups.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            };
            format!("setpriv --reuid={uid} --regid={} {groups} -- ", spec.gid.unwrap_or(uid))
        }
        _ => String::new(),
    };
    s.push_str(&format!(
        "exec chroot \"$R\" /usr/bin/env \"PATH=$CPATH\" /bin/sh -c 'cd \"$0\" && exec \"$@\"' {} {user}\"$@\"\n",
        quote(&workdir)
    ));
    s
}

/// What util-linux `unshare` prints (and then exits 1) when the container died of a signal.
const UNSHARE_SIGNAL_NOTE: &[u8] = b"unshare: sigprocmask unblock failed";

/// Copies one output stream into the log file as CRI-format records: `F` for a full line, `P` for
/// a final fragment without a newline. Returns whether `unshare` reported a death by signal.
async fn pump(stream: impl AsyncRead + Unpin, name: &'static str, log: PathBuf) -> bool {
    let Ok(mut file) = tokio::fs::OpenOptions::new().create(true).append(true).open(&log).await else { return false };
    let mut reader = BufReader::new(stream);
    let mut signaled = false;
    loop {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.starts_with(UNSHARE_SIGNAL_NOTE) {
            signaled = true;
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
    signaled
}

/// Starts a container process; the join handle yields its exit code (128 + signal when killed, as
/// container runtimes report).
fn spawn(spec: &Spec, isolation: Isolation) -> Started {
    if spec.argv.is_empty() {
        return Err("no command specified".into());
    }
    if isolation == Isolation::None && !spec.mounts.is_empty() {
        return Err("this host cannot isolate mounts (needs root or unprivileged user namespaces)".into());
    }
    // `setpriv --pdeathsig KILL` makes the container die with the dev cluster. It replaces a
    // `pre_exec` hook, which would force a full fork() of this (large) process for every start.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]);
    match isolation {
        Isolation::None => {
            cmd.args(&spec.argv);
            if let Some(dir) = &spec.workdir {
                cmd.current_dir(dir);
            }
            cmd.process_group(0);
        }
        _ => {
            cmd.arg("unshare");
            if isolation == Isolation::UserNamespaces {
                cmd.args(["--user", "--map-root-user"]);
            }
            cmd.args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--",
                "/bin/sh",
                "-c",
            ]);
            cmd.arg(init_script(spec, isolation)).arg("container-init").args(&spec.argv);
        }
    }
    let host_uts =
        std::fs::read_link("/proc/self/ns/uts").map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("HOST_UTS_NS", host_uts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("starting {:?}: {e}", spec.argv[0]))?;
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, "stdout", spec.log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, "stderr", spec.log.clone())));
    }
    let handle = Handle { outer_pid: child.id(), isolation };
    let exit = tokio::spawn(async move {
        let status = child.wait().await;
        let mut signaled = false;
        for p in pumps {
            signaled |= p.await.unwrap_or(false);
        }
        match status {
            // unshare cannot pass on a death by signal (it exits 1 after a note on stderr); the
            // signal is almost always the kubelet's SIGKILL, so report what a runtime would: 137.
            Ok(_) if signaled => 128 + libc::SIGKILL,
            Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(255),
            Err(_) => 255,
        }
    });
    Ok((handle, exit))
}

/// The container's own PID 1 (the child of `unshare`), or the process itself without namespaces.
fn container_pid(outer: u32, isolation: Isolation) -> Option<i32> {
    if isolation == Isolation::None {
        return i32::try_from(outer).ok();
    }
    let children = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

impl Handle {
    /// Sends SIGTERM to the container (PID 1: ignored unless it handles it, as in a real container).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGKILL to the container; its namespace (and every process in it) goes with it.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    #[allow(unsafe_code)] // kill(2)/killpg(2): only send a signal
    fn signal(&self, sig: i32) {
        let Some(outer) = self.outer_pid else { return };
        if let Some(pid) = container_pid(outer, self.isolation) {
            // SAFETY: kill/killpg only send a signal.
            unsafe {
                if self.isolation == Isolation::None {
                    libc::killpg(pid, sig);
                } else {
                    libc::kill(pid, sig);
                }
            }
        } else if sig == libc::SIGKILL {
            // The namespace's PID 1 is not visible yet (still starting): kill the wrapper; the
            // kernel then kills its child through the parent-death signal.
            // SAFETY: only sends a signal.
            unsafe {
                libc::kill(outer as i32, sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_builds_a_private_root_then_execs_as_the_user() {
        let spec = Spec {
            argv: vec!["sh".into()],
            env: vec![],
            workdir: Some("/work dir".into()),
            mounts: vec![Mount {
                source: PathBuf::from("/nonexistent-file"),
                target: "/etc/it's".into(),
                read_only: true,
            }],
            uid: Some(1000),
            gid: None,
            groups: Vec::new(),
            log: PathBuf::from("/dev/null"),
            hostname: "pod-a".into(),
            scratch: PathBuf::from("/k/pods/u/rootfs/c-0"),
            binaries: vec![],
            read_only_root: true,
        };
        let s = init_script(&spec, Isolation::Namespaces);
        assert!(s.contains("printf %s 'pod-a' > /proc/sys/kernel/hostname"), "{s}");
        assert!(s.contains("lowerdir=/,upperdir=$S/upper"), "{s}");
        assert!(s.contains("T=\"$(at '/etc/it'\\''s')\"\nmkdir -p \"$(dirname \"$T\")\""), "{s}");
        assert!(s.contains("mount --bind '/nonexistent-file' \"$T\"\nmount -o remount,bind,ro \"$T\""), "{s}");
        assert!(s.contains("mount -o remount,ro \"$R\""), "{s}");
        assert!(s.ends_with("exec chroot \"$R\" /usr/bin/env \"PATH=$CPATH\" /bin/sh -c 'cd \"$0\" && exec \"$@\"' '/work dir' setpriv --reuid=1000 --regid=1000 --clear-groups -- \"$@\"\n"), "{s}");
    }
}
