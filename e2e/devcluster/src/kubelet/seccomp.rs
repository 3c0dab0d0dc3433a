//! `seccompProfile: RuntimeDefault` for the local kubelet's runc runtime: the syscalls the container
//! runtimes' default profiles refuse to a container without `CAP_SYS_ADMIN` (namespaces, mounts,
//! kernel modules and keyrings, tracing, clock and reboot), refused with `EPERM`; `clone` only with
//! namespace flags, and `clone3` answered `ENOSYS` so libc falls back to `clone`, whose flags a filter
//! can see. Written as a deny list over a default of allow (the runtimes write an allow list); what a
//! Task can observe, that these calls fail, is the same.

use serde_json::{json, Value};

/// Syscalls refused outright.
const DENIED: [&str; 36] = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "move_mount",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "umount2",
    "unshare",
];

/// `CLONE_NEWNS`, `NEWCGROUP`, `NEWUTS`, `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`.
const NAMESPACE_FLAGS: [u64; 7] =
    [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000];

/// `EPERM`.
const EPERM: u32 = 1;
/// `ENOSYS`.
const ENOSYS: u32 = 38;

/// The OCI `linux.seccomp` object of the RuntimeDefault profile (x86_64).
pub fn runtime_default() -> Value {
    let mut syscalls = vec![json!({"names": DENIED.as_slice(), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM})];
    // One rule per flag: the filter matches when (flags & flag) == flag.
    for flag in NAMESPACE_FLAGS {
        syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}));
    }
    syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

/// The profile a container gets: its own `seccompProfile`, else the Pod's; `RuntimeDefault` →
/// [`runtime_default`], `Unconfined` or none → `None` (the kubelet's default without the
/// `SeccompDefault` setting). `Localhost` profiles are not served here.
pub fn profile(pod: &Value, container: &Value) -> Result<Option<Value>, String> {
    let kind = container["securityContext"]["seccompProfile"]["type"]
        .as_str()
        .or(pod["spec"]["securityContext"]["seccompProfile"]["type"].as_str());
    match kind {
        Some("RuntimeDefault") => Ok(Some(runtime_default())),
        None | Some("Unconfined") => Ok(None),
        Some(other) => Err(format!("seccomp profile type {other:?} is not supported by this kubelet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_default_refuses_namespaces_and_mounts_and_the_type_comes_from_container_or_pod() {
        let p = runtime_default();
        let denied: Vec<&str> =
            p["syscalls"][0]["names"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for s in ["unshare", "mount", "setns", "ptrace", "keyctl", "bpf"] {
            assert!(denied.contains(&s), "{s}");
        }
        let clone_rules = p["syscalls"].as_array().unwrap().iter().filter(|r| r["names"][0] == "clone").count();
        assert_eq!(clone_rules, 7);
        let pod = json!({"spec": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}});
        assert!(profile(&pod, &json!({})).unwrap().is_some(), "from the Pod");
        let c = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}});
        assert!(profile(&pod, &c).unwrap().is_none(), "the container's own wins");
        assert!(profile(&json!({}), &json!({})).unwrap().is_none(), "unset is Unconfined");
        assert!(profile(&json!({}), &json!({"securityContext": {"seccompProfile": {"type": "Localhost"}}})).is_err());
    }
}
