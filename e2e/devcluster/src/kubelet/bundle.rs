//! What a container runs as: its image's config combined with the Pod spec the way the kubelet and
//! containerd combine them (command and args, env, working directory, user and the `runAsNonRoot`
//! check, capabilities, privilege escalation, seccomp, read-only root, resource limits), and the OCI runtime
//! config (`config.json`) runc takes. Pure: the image config, the image's passwd/group files and the
//! Pod spec in; a [`Bundle`] or the kubelet's [`ConfigError`] out.
//!
//! `pod.rs` runs the result with `runc.rs`; this module is the decision half, table-tested on its own.

use serde_json::{json, Value};

/// The parts of an OCI image config (`config` of the config blob) a container run uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`: `uid`, `uid:gid`, `name` or `name:group`; empty is root.
    pub user: String,
}

impl ImageConfig {
    /// Reads the `config` object of an image config blob.
    pub fn from_oci(config: &Value) -> Self {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let c = &config["config"];
        ImageConfig {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"]),
            working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
            user: c["User"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// The image's `/etc/passwd` and `/etc/group`, for named users and primary groups.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    users: Vec<(String, u32, u32)>,
    /// Name, gid, members.
    groups: Vec<(String, u32, Vec<String>)>,
}

impl Accounts {
    /// Parses the two files' contents (either may be empty: images without them have no names).
    pub fn parse(passwd: &str, group: &str) -> Self {
        let users = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let members = f.get(3).map(|m| m.split(',').filter(|x| !x.is_empty()).map(String::from).collect());
                Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, members.unwrap_or_default()))
            })
            .collect();
        Accounts { users, groups }
    }
}

/// Why a container cannot be created, as the kubelet reports it in `state.waiting`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The Pod spec and the image cannot be combined (`CreateContainerConfigError`).
    #[error("{0}")]
    Config(String),
    /// The runtime refuses the combination (`CreateContainerError`).
    #[error("{0}")]
    Create(String),
}

impl ConfigError {
    /// The waiting reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ConfigError::Config(_) => "CreateContainerConfigError",
            ConfigError::Create(_) => "CreateContainerError",
        }
    }
}

/// The process and limits a container runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// argv.
    pub args: Vec<String>,
    /// `NAME=value`, image env first, then the container's (which wins by name).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplemental groups (`supplementalGroups`, `fsGroup`).
    pub additional_gids: Vec<u32>,
    /// Capabilities, `CAP_` names, sorted.
    pub capabilities: Vec<String>,
    /// `no_new_privs`.
    pub no_new_privileges: bool,
    /// Root filesystem mounted read-only.
    pub readonly_root: bool,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU quota per 100 ms period, in microseconds.
    pub cpu_quota: Option<i64>,
    /// CPU shares from the request.
    pub cpu_shares: Option<u64>,
    /// The seccomp filter (`linux.seccomp`), if the container is not Unconfined.
    pub seccomp: Option<Value>,
}

/// The capabilities containerd and CRI-O give a container that asks for nothing else.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Every capability Linux has, by bit number (what `add: [ALL]` gives).
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// What `privileged` gives: every capability the runtime itself holds (containerd's "all current
/// capabilities"; a node may run with a reduced bounding set, and runc cannot grant more).
fn runtime_capabilities() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapBnd:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding >> bit & 1 == 1)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The PATH a container starts with before its image's and its own env (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A Pod as the kubelet names it in its messages: `name_namespace(uid)`.
pub fn pod_ref(pod: &Value) -> String {
    let m = &pod["metadata"];
    let field = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    format!("{}_{}({})", field("name"), field("namespace"), field("uid"))
}

/// A container's security setting: the container's own, else the Pod's.
fn setting<'a>(pod: &'a Value, container: &'a Value, key: &str) -> Option<&'a Value> {
    container["securityContext"]
        .get(key)
        .filter(|v| !v.is_null())
        .or_else(|| pod["spec"]["securityContext"].get(key).filter(|v| !v.is_null()))
}

/// Combines `image` with `container` of `pod`. `env` is the container's resolved environment and
/// `args` its command and args with `$(VAR)` references already expanded (the kubelet's env module).
pub fn bundle(
    image: &ImageConfig,
    accounts: &Accounts,
    pod: &Value,
    container: &Value,
    env: &[(String, String)],
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
) -> Result<Bundle, ConfigError> {
    let pod_name = pod_ref(pod);
    let cname = container["name"].as_str().unwrap_or_default();
    // Kubernetes: a command replaces the image's entrypoint and its cmd; args alone replace the cmd.
    // An empty list is no list (containerd tests the length).
    let (command, args) = (command.filter(|c| !c.is_empty()), args.filter(|a| !a.is_empty()));
    let argv: Vec<String> = match (command, args) {
        (Some(c), a) => c.into_iter().chain(a.unwrap_or_default()).collect(),
        (None, Some(a)) => image.entrypoint.iter().cloned().chain(a).collect(),
        (None, None) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(ConfigError::Create(format!(
            "failed to generate container \"{cname}\" spec: failed to generate spec: no command specified"
        )));
    }
    // containerd: its default PATH and the Pod's HOSTNAME, then the image's env (an entry without
    // `=` unsets), then the container's; a later value replaces an earlier one in place.
    let mut merged: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        (
            "HOSTNAME".into(),
            pod["spec"]["hostname"].as_str().or(pod["metadata"]["name"].as_str()).unwrap_or_default().into(),
        ),
    ];
    for e in &image.env {
        match e.split_once('=') {
            Some((k, v)) => match merged.iter_mut().find(|(name, _)| name == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => merged.push((k.to_string(), v.to_string())),
            },
            None => merged.retain(|(name, _)| name != e),
        }
    }
    for (k, v) in env {
        match merged.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None => merged.push((k.clone(), v.clone())),
        }
    }
    let cwd = container["workingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .map(String::from)
        .or_else(|| Some(image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    // The user: runAsUser, else the image's; runAsNonRoot is checked as the kubelet checks it.
    let run_as_user = setting(pod, container, "runAsUser").and_then(Value::as_u64).map(|u| u as u32);
    // The kubelet passes only the user part of the image's `User`; containerd then takes the primary
    // group from the image's /etc/passwd, else 0 (so `65532:65532` alone runs with gid 0).
    let image_user = image.user.split(':').next().unwrap_or_default();
    if setting(pod, container, "runAsNonRoot") == Some(&Value::Bool(true)) {
        match run_as_user {
            Some(0) => {
                return Err(ConfigError::Config(format!(
                    "container's runAsUser breaks non-root policy (pod: \"{pod_name}\", container: {cname})"
                )))
            }
            Some(_) => {}
            None if !image_user.is_empty() && image_user.parse::<u32>().is_err() => {
                return Err(ConfigError::Config(format!(
                    "container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify user is non-root (pod: \"{pod_name}\", container: {cname})"
                )))
            }
            None if image_user.is_empty() || image_user == "0" => {
                return Err(ConfigError::Config(format!(
                    "container has runAsNonRoot and image will run as root (pod: \"{pod_name}\", container: {cname})"
                )))
            }
            None => {}
        }
    }
    let named = |name: &str| accounts.users.iter().find(|(n, _, _)| n == name);
    let (uid, passwd_gid) = match run_as_user {
        Some(u) => (u, accounts.users.iter().find(|(_, id, _)| *id == u).map(|(_, _, g)| *g)),
        None if image_user.is_empty() => (0, Some(0)),
        None => match image_user.parse::<u32>() {
            Ok(u) => (u, accounts.users.iter().find(|(_, id, _)| *id == u).map(|(_, _, g)| *g)),
            Err(_) => match named(image_user) {
                Some((_, u, g)) => (*u, Some(*g)),
                None => {
                    return Err(ConfigError::Create(format!(
                        "failed to create containerd container: mount callback failed: no users found for {image_user}"
                    )))
                }
            },
        },
    };
    let gid = match setting(pod, container, "runAsGroup").and_then(Value::as_u64) {
        Some(g) => g as u32,
        None => passwd_gid.unwrap_or(0),
    };
    // containerd's order: the primary group, the user's /etc/group memberships, then the Pod's
    // supplementalGroups and fsGroup; each once.
    let user_name = accounts.users.iter().find(|(_, id, _)| *id == uid).map(|(n, _, _)| n.as_str());
    let pod_sc = &pod["spec"]["securityContext"];
    let mut additional_gids: Vec<u32> = vec![gid];
    if let Some(name) = user_name {
        additional_gids
            .extend(accounts.groups.iter().filter(|(_, _, m)| m.iter().any(|x| x == name)).map(|(_, g, _)| *g));
    }
    additional_gids.extend(
        pod_sc["supplementalGroups"].as_array().into_iter().flatten().filter_map(|g| g.as_u64().map(|g| g as u32)),
    );
    additional_gids.extend(pod_sc["fsGroup"].as_u64().map(|g| g as u32));
    let mut seen = std::collections::BTreeSet::new();
    additional_gids.retain(|g| seen.insert(*g));

    let sc = &container["securityContext"];
    let privileged = sc["privileged"] == Value::Bool(true);
    let names = |key: &str| -> Vec<String> {
        sc["capabilities"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|c| format!("CAP_{}", c.to_uppercase().trim_start_matches("CAP_")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (add, drop) = (names("add"), names("drop"));
    // containerd: from the default set, `add: [ALL]` gives every capability, then `drop: [ALL]`
    // removes every one, then the named adds, then the named drops (a drop beats an add).
    let mut capabilities: Vec<String> = if privileged {
        runtime_capabilities()
    } else {
        let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        if add.iter().any(|a| a == "CAP_ALL") {
            caps = ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        }
        if drop.iter().any(|d| d == "CAP_ALL") {
            caps.clear();
        }
        caps.extend(add.iter().filter(|a| *a != "CAP_ALL" && ALL_CAPABILITIES.contains(&a.as_str())).cloned());
        caps.retain(|c| !drop.contains(c));
        caps
    };
    capabilities.sort();
    capabilities.dedup();
    // `allowPrivilegeEscalation: false` is no_new_privs; unset (or privileged) allows it.
    // (The API server refuses `allowPrivilegeEscalation: false` with `privileged: true`.)
    let no_new_privileges = sc["allowPrivilegeEscalation"] == Value::Bool(false) && !privileged;

    let limits = &container["resources"]["limits"];
    let requests = &container["resources"]["requests"];
    // The kubelet's arithmetic: memory rounded up to whole bytes; quota = milliCPU × period / 1000
    // (at least 1 ms, none for a zero limit); shares = milliCPU × 1024 / 1000 within [2, 262144],
    // from the request (else the limit, which defaults the request), 2 with neither.
    let memory_limit = limits["memory"].as_str().and_then(quantity_milli).map(|m| (m + 999) / 1000);
    let cpu_quota = limits["cpu"].as_str().and_then(quantity_milli).filter(|m| *m > 0).map(|m| (m * 100).max(1000));
    let cpu_shares = Some(
        requests["cpu"]
            .as_str()
            .or(limits["cpu"].as_str())
            .and_then(quantity_milli)
            .map_or(2, |m| ((m * 1024) / 1000).clamp(2, 262_144) as u64),
    );

    // containerd sets no seccomp filter on a privileged container, whatever its profile says.
    let seccomp = super::seccomp::profile(pod, container).map_err(ConfigError::Config)?.filter(|_| !privileged);
    Ok(Bundle {
        seccomp,
        args: argv,
        env: merged.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid,
        gid,
        additional_gids,
        capabilities,
        no_new_privileges,
        readonly_root: sc["readOnlyRootFilesystem"] == Value::Bool(true),
        memory_limit,
        cpu_quota,
        cpu_shares,
    })
}

/// A Kubernetes quantity (`128Mi`, `1.5G`, `500m`, `2`, `1e3`) in thousandths of its unit, rounded
/// up, computed exactly (no floating point: `4.03` is 4030).
pub fn quantity_milli(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // The number as digits over 10^scale.
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let scale = frac.len() as u32;
    // value × factor × 1000, where factor = base^power.
    let (base, power): (i128, i32) = match suffix {
        "" => (10, 0),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (1024, 1),
        "Mi" => (1024, 2),
        "Gi" => (1024, 3),
        "Ti" => (1024, 4),
        "Pi" => (1024, 5),
        "Ei" => (1024, 6),
        s if s.starts_with(['e', 'E']) => (10, s[1..].parse().ok()?),
        _ => return None,
    };
    let mut numer = digits.checked_mul(1000)?;
    let mut denom: i128 = 10i128.checked_pow(scale)?;
    if power >= 0 {
        numer = numer.checked_mul(base.checked_pow(power as u32)?)?;
    } else {
        denom = denom.checked_mul(base.checked_pow(power.unsigned_abs())?)?;
    }
    let milli = (numer + denom - 1) / denom;
    i64::try_from(milli).ok()
}

/// The OCI runtime config for `b` with `rootfs` as its root and `mounts` (destination, source,
/// read-only) bound in: namespaces, the default mounts and masked paths container runtimes use.
/// `rootfs` must be the container's own (an overlay over the cached image), never the shared cache,
/// unless the root is read-only. No network namespace: every Pod of the local cluster shares the
/// host's network (see the README).
pub fn runtime_spec(b: &Bundle, rootfs: &str, hostname: &str, mounts: &[(String, String, bool)]) -> Value {
    let caps = &b.capabilities;
    let mut all_mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for (dest, src, ro) in mounts {
        let mut options = vec!["rbind", "rprivate"];
        if *ro {
            options.push("ro");
        }
        all_mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": options}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = b.memory_limit {
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if b.cpu_quota.is_some() || b.cpu_shares.is_some() {
        resources["cpu"] = json!({"quota": b.cpu_quota, "period": 100_000, "shares": b.cpu_shares});
    }
    let mut linux = json!({
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
        "resources": resources,
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    });
    if let Some(profile) = &b.seccomp {
        linux["seccomp"] = profile.clone();
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": b.uid, "gid": b.gid, "additionalGids": b.additional_gids},
            "args": b.args,
            "env": b.env,
            "cwd": b.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            // No rlimits: inherited from the runtime, as containerd 2 does.
            "noNewPrivileges": b.no_new_privileges
        },
        "root": {"path": rootfs, "readonly": b.readonly_root},
        "hostname": hostname,
        "mounts": all_mounts,
        "linux": linux
    })
}

#[cfg(test)]
mod tests;
