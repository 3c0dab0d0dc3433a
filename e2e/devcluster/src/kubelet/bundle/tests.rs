use super::*;
use serde_json::json;

fn image(entrypoint: &[&str], cmd: &[&str], user: &str) -> ImageConfig {
    ImageConfig {
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/usr/bin:/bin".into(), "LANG=C".into()],
        working_dir: "/srv".into(),
        user: user.into(),
    }
}

fn pod(container: Value, pod_sc: Value) -> (Value, Value) {
    let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
        "spec": {"securityContext": pod_sc, "containers": [container.clone()]}});
    (pod, container)
}

fn accounts() -> Accounts {
    Accounts::parse(
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
    )
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn command_and_args_combine_with_the_image_as_kubernetes_documents() {
    let img = image(&["/entry"], &["--default"], "");
    let (p, c) = pod(json!({"name": "c"}), json!({}));
    let run = |command: Option<&[&str]>, args: Option<&[&str]>| {
        bundle(&img, &accounts(), &p, &c, &[], command.map(strs), args.map(strs)).map(|b| b.args)
    };
    // The table of https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/
    assert_eq!(run(None, None).unwrap(), strs(&["/entry", "--default"]));
    assert_eq!(run(Some(&["/mine"]), None).unwrap(), strs(&["/mine"]), "a command drops the image's cmd too");
    assert_eq!(run(None, Some(&["--other"])).unwrap(), strs(&["/entry", "--other"]));
    assert_eq!(run(Some(&["/mine"]), Some(&["-x"])).unwrap(), strs(&["/mine", "-x"]));
    assert_eq!(run(Some(&[]), Some(&[])).unwrap(), strs(&["/entry", "--default"]), "an empty list is no list");
    let empty = image(&[], &[], "");
    let err = bundle(&empty, &accounts(), &p, &c, &[], None, None).unwrap_err();
    assert_eq!(err.reason(), "CreateContainerError");
}

#[test]
fn the_containers_env_wins_over_the_images_by_name_and_workdir_falls_back() {
    let img = image(&["/e"], &[], "");
    let (p, c) = pod(json!({"name": "c"}), json!({}));
    let env = [("LANG".to_string(), "C.UTF-8".to_string()), ("MODE".to_string(), "x".to_string())];
    let b = bundle(&img, &accounts(), &p, &c, &env, None, None).unwrap();
    assert_eq!(b.env, strs(&["PATH=/usr/bin:/bin", "HOSTNAME=p", "LANG=C.UTF-8", "MODE=x"]));
    let unset = ImageConfig { env: vec!["PATH".into()], ..img.clone() };
    let b = bundle(&unset, &accounts(), &p, &c, &[], None, None).unwrap();
    assert_eq!(b.env, strs(&["HOSTNAME=p"]), "an image env entry without `=` unsets the default PATH");
    assert_eq!(b.cwd, "/srv", "the image's WorkingDir");
    let (p, c) = pod(json!({"name": "c", "workingDir": "/work"}), json!({}));
    assert_eq!(bundle(&img, &accounts(), &p, &c, &[], None, None).unwrap().cwd, "/work");
    let bare = ImageConfig { entrypoint: strs(&["/e"]), ..Default::default() };
    assert_eq!(
        bundle(&bare, &accounts(), &p, &pod(json!({"name": "c"}), json!({})).1, &[], None, None).unwrap().cwd,
        "/"
    );
}

/// Image user, pod securityContext, container securityContext, and the ids or the message's start.
type Case = (&'static str, Value, Value, Result<(u32, u32), &'static str>);

#[test]
fn run_as_non_root_is_checked_against_run_as_user_or_the_images_user() {
    // (image user, pod securityContext, container securityContext) → Ok((uid, gid)) or the message's start.
    let cases: Vec<Case> = vec![
        ("", json!({"runAsNonRoot": true}), json!({}), Err("container has runAsNonRoot and image will run as root")),
        ("0", json!({}), json!({"runAsNonRoot": true}), Err("container has runAsNonRoot and image will run as root")),
        (
            "app",
            json!({"runAsNonRoot": true}),
            json!({}),
            Err("container has runAsNonRoot and image has non-numeric user (app)"),
        ),
        (
            "",
            json!({"runAsNonRoot": true, "runAsUser": 0}),
            json!({}),
            Err("container's runAsUser breaks non-root policy"),
        ),
        ("", json!({"runAsNonRoot": true}), json!({"runAsUser": 65532}), Ok((65532, 0))),
        // Only the user part reaches containerd; with no passwd entry the group is 0 (k8s#93666).
        ("65532:65532", json!({"runAsNonRoot": true}), json!({}), Ok((65532, 0))),
        ("1000", json!({}), json!({}), Ok((1000, 1001))),
        ("app", json!({}), json!({}), Ok((1000, 1001))),
        ("app:staff", json!({}), json!({}), Ok((1000, 1001))),
        ("app", json!({"runAsGroup": 7}), json!({}), Ok((1000, 7))),
        ("", json!({"runAsUser": 5}), json!({"runAsUser": 6, "runAsGroup": 8}), Ok((6, 8))),
        ("", json!({}), json!({}), Ok((0, 0))),
    ];
    for (user, pod_sc, c_sc, want) in cases {
        let img = image(&["/e"], &[], user);
        let (p, c) = pod(json!({"name": "c", "securityContext": c_sc}), pod_sc.clone());
        let got = bundle(&img, &accounts(), &p, &c, &[], None, None);
        match (got, want) {
            (Ok(b), Ok(ids)) => assert_eq!((b.uid, b.gid), ids, "user {user:?}, pod {pod_sc}"),
            (Err(e), Err(prefix)) => {
                assert_eq!(e.reason(), "CreateContainerConfigError", "{e}");
                assert!(e.to_string().starts_with(prefix), "{e}");
                assert!(e.to_string().ends_with("(pod: \"p_ns(u-1)\", container: c)"), "{e}");
            }
            (got, want) => panic!("user {user:?}, pod {pod_sc}: got {got:?}, want {want:?}"),
        }
    }
    let img = image(&["/e"], &[], "nobody-here");
    let (p, c) = pod(json!({"name": "c"}), json!({}));
    assert_eq!(bundle(&img, &accounts(), &p, &c, &[], None, None).unwrap_err().reason(), "CreateContainerError");
}

#[test]
fn capabilities_start_from_the_runtime_default_then_drop_and_add() {
    let img = image(&["/e"], &[], "");
    let caps = |sc: Value| {
        let (p, c) = pod(json!({"name": "c", "securityContext": sc}), json!({}));
        bundle(&img, &accounts(), &p, &c, &[], None, None).map(|b| (b.capabilities, b.no_new_privileges))
    };
    let (default, nnp) = caps(json!({})).unwrap();
    assert_eq!(default.len(), 14);
    assert!(!nnp, "privilege escalation is allowed unless the spec says otherwise");
    let (none, nnp) = caps(json!({"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": false})).unwrap();
    assert!(none.is_empty());
    assert!(nnp);
    let (some, _) = caps(json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})).unwrap();
    assert_eq!(some, strs(&["CAP_NET_BIND_SERVICE"]));
    let (fewer, _) = caps(json!({"capabilities": {"drop": ["net_raw", "CAP_CHOWN"]}})).unwrap();
    assert_eq!(fewer.len(), 12);
    assert!(!fewer.contains(&"CAP_NET_RAW".to_string()) && !fewer.contains(&"CAP_CHOWN".to_string()));
    let (all, _) = caps(json!({"privileged": true})).unwrap();
    // privileged: what the runtime itself holds (this machine's bounding set may lack some).
    let held = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding =
        u64::from_str_radix(held.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim(), 16).unwrap();
    assert!(all.contains(&"CAP_SYS_ADMIN".to_string()) || bounding >> 21 & 1 == 0);
    assert_eq!(all.len() as u32, (bounding & ((1 << 41) - 1)).count_ones());
    // containerd's order: add ALL, then drop ALL, then named adds, then named drops.
    let (most, _) = caps(json!({"capabilities": {"add": ["ALL"], "drop": ["CHOWN"]}})).unwrap();
    assert_eq!(most.len(), 40);
    assert!(caps(json!({"capabilities": {"add": ["ALL"], "drop": ["ALL"]}})).unwrap().0.is_empty());
    let (kept, _) = caps(json!({"capabilities": {"add": ["SYS_TIME"], "drop": ["SYS_TIME"]}})).unwrap();
    assert!(!kept.contains(&"CAP_SYS_TIME".to_string()), "a drop beats an add");
}

#[test]
fn limits_become_cgroup_settings_and_quantities_parse_as_kubernetes_writes_them() {
    assert_eq!(quantity_milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
    assert_eq!(quantity_milli("1G"), Some(1_000_000_000_000));
    assert_eq!(quantity_milli("500m"), Some(500));
    assert_eq!(quantity_milli("2"), Some(2000));
    assert_eq!(quantity_milli("1.5Gi"), Some(1_610_612_736_000));
    assert_eq!(quantity_milli("1e3"), Some(1_000_000));
    assert_eq!(quantity_milli("12x"), None);
    assert_eq!(quantity_milli("4.03"), Some(4030), "exact, not 4031 from a float");
    assert_eq!(quantity_milli("0.1m"), Some(1), "rounded up");
    let img = image(&["/e"], &[], "");
    let (p, c) = pod(
        json!({"name": "c", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}},
            "securityContext": {"readOnlyRootFilesystem": true}}),
        json!({"supplementalGroups": [10, 5], "fsGroup": 5}),
    );
    let b = bundle(&img, &accounts(), &p, &c, &[], None, None).unwrap();
    assert_eq!(b.memory_limit, Some(64 * 1024 * 1024));
    assert_eq!((b.cpu_quota, b.cpu_shares), (Some(50_000), Some(256)));
    assert_eq!(
        b.additional_gids,
        vec![0, 10, 5],
        "the primary group, then supplementalGroups, then fsGroup, each once"
    );
    assert!(b.readonly_root);
    let spec = runtime_spec(&b, "/r/rootfs", "p", &[("/data".into(), "/v/data".into(), true)]);
    assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 * 1024 * 1024);
    assert_eq!(spec["root"], json!({"path": "/r/rootfs", "readonly": true}));
    assert_eq!(spec["process"]["user"], json!({"uid": 0, "gid": 0, "additionalGids": [0, 10, 5]}));
    let last = spec["mounts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"destination": "/data", "type": "bind", "source": "/v/data", "options": ["rbind", "rprivate", "ro"]})
    );
}

#[test]
fn a_privileged_container_gets_no_seccomp_filter_whatever_its_profile() {
    let img = image(&["/entry"], &[], "");
    let runtime_default = json!({"seccompProfile": {"type": "RuntimeDefault"}});
    let (p, c) = pod(json!({"name": "c", "securityContext": runtime_default}), json!({}));
    assert!(bundle(&img, &accounts(), &p, &c, &[], None, None).unwrap().seccomp.is_some());
    let privileged = json!({"privileged": true, "seccompProfile": {"type": "RuntimeDefault"}});
    let (p, c) = pod(json!({"name": "c", "securityContext": privileged}), json!({}));
    assert!(bundle(&img, &accounts(), &p, &c, &[], None, None).unwrap().seccomp.is_none());
}
