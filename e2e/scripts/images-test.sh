#!/usr/bin/env bash
# Checks the pushed images the way a cluster would meet them, through the registry: the config
# (numeric non-root user, entrypoint, OCI labels with this commit), the files (one binary and a CA
# bundle, no shell; the edge's binary is Caddy), and that runc runs the worker under the restricted profile the operator puts on
# every worker Pod (all capabilities dropped, no_new_privs, read-only root, non-root), both in its own
# image and copied into another image (the busybox test image), as in a Task's Pod.
# Needs: images/build.sh and images/test/build.sh run first (the test command does).
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$REPO"
need_command skopeo skopeo
need_command umoci umoci
need_command runc runc
# shellcheck disable=SC1091
source "$REPO/target/images/images.env"
work=$(mktemp -d "$TOOLS_DIR/images-test.XXXXXX")
trap 'for c in $(runc list -q 2>/dev/null | grep "^ephemera-images-test-" || true); do runc delete -f "$c" >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
fail() { echo "images-test: $*" >&2; exit 1; }
revision=$(git rev-parse HEAD)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
port=$REGISTRY_PORT

unpack() { # ref dir
  skopeo copy --quiet --src-tls-verify=false "docker://$1" "oci:$work/layout:$(basename "$2")" >/dev/null
  umoci unpack --image "$work/layout:$(basename "$2")" "$2" >/dev/null
}

for c in operator api worker edge; do
  var="EPHEMERA_$(echo "$c" | tr '[:lower:]' '[:upper:]')_IMAGE"
  # By digest (what was pushed); skopeo 1.9 takes a digest or a tag, not both. Loopback only: this
  # test pulls without TLS and runs what it pulled.
  ref=$(echo "${!var}" | sed -E 's#:[^/@]+@#@#')
  case "$ref" in "127.0.0.1:$port/"*) ;; *) fail "$ref is not in the loopback registry" ;; esac
  config=$(skopeo inspect --tls-verify=false --config "docker://$ref")
  python3 - "$c" "$revision" "$config" <<'EOF' || fail "ephemera-$c: config"
import json, sys
c, revision, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])["config"]
assert cfg.get("User") == "65532:65532", cfg.get("User")
assert cfg.get("Entrypoint") == [f"/ephemera-{c}"], cfg.get("Entrypoint")
labels = cfg.get("Labels") or {}
for k in ("title", "description", "source", "version", "revision", "licenses"):
    assert labels.get(f"org.opencontainers.image.{k}"), f"label {k} missing: {labels}"
assert labels["org.opencontainers.image.revision"] in (revision, revision + "-dirty"), labels
EOF
  unpack "$ref" "$work/$c"
  files=$(cd "$work/$c/rootfs" && find . -type f -o -type l | sort | tr '\n' ' ')
  [ "$files" = "./ephemera-$c ./etc/ssl/certs/ca-certificates.crt " ] || fail "ephemera-$c has more than its binary: $files"
  echo "ok ephemera-$c: user 65532, entrypoint, labels at $revision, files: $files"
done

# Runs a bundle's process with the restricted profile; prints its output.
restricted_run() { # bundle id uid mount-dir-or-empty args...
  local bundle=$1 id=$2 uid=$3 bind=$4
  shift 4
  python3 - "$bundle/config.json" "$uid" "$bind" "$@" <<'EOF'
import json, sys
path, uid, bind, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
cfg = json.load(open(path))
p = cfg["process"]
p["args"] = args
p["terminal"] = False
p["user"] = {"uid": uid, "gid": uid}
p["noNewPrivileges"] = True
p["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
cfg["root"]["readonly"] = True
if bind:
    cfg["mounts"].append({"destination": "/ephemera/bin", "type": "bind", "source": bind, "options": ["rbind", "ro"]})
json.dump(cfg, open(path, "w"))
EOF
  runc run --bundle "$bundle" "ephemera-images-test-$id" </dev/null
}

for c in operator api worker edge; do
  out=$(restricted_run "$work/$c" "own-$c" 65532 "" "/ephemera-$c" --version)
  case "$c" in
    edge) [ "${out%% *}" = "v$CADDY_VERSION" ] || fail "ephemera-edge (Caddy) in its own image printed: $out" ;;
    *) [ "$out" = "ephemera-$c $version" ] || fail "ephemera-$c in its own image printed: $out" ;;
  esac
  echo "ok ephemera-$c runs in its own image, restricted: $out"
done

unpack "127.0.0.1:$port/ephemera-test/busybox:1.35" "$work/busybox"
mkdir -p "$work/bin"
cp "$work/worker/rootfs/ephemera-worker" "$work/bin/ephemera-worker"
out=$(restricted_run "$work/busybox" task 65532 "$work/bin" /ephemera/bin/ephemera-worker --version)
[ "$out" = "ephemera-worker $version" ] || fail "the worker in the busybox image printed: $out"
out=$(restricted_run "$work/busybox" probe 65532 "$work/bin" sh -c \
  'id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; touch /written 2>/dev/null && echo writable || echo read-only')
expected=$(printf '65532\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nread-only')
[ "$out" = "$expected" ] || fail "the restricted profile in the busybox image: $out"
echo "ok the worker runs inside another image (busybox) as in a Task's Pod; uid 65532, no capabilities, no_new_privs, read-only root"
