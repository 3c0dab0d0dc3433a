#!/usr/bin/env bash
# The local OCI registry (Debian's docker-registry, the CNCF distribution registry) on loopback, for
# the images the project builds and the test images its suites use.
#
#   e2e/scripts/registry.sh start   # serve 127.0.0.1:${EPHEMERA_REGISTRY_PORT:-5000} unless it already answers
#   e2e/scripts/registry.sh stop
#
# Storage and log live under target/tools/registry; nothing listens beyond loopback.
set -euo pipefail
source "$(dirname "$0")/tools.sh"

port=$REGISTRY_PORT
dir="$TOOLS_DIR/registry"
url="http://127.0.0.1:$port/v2/"

# Whether the registry answering on the port is the one this script started.
ours() {
  [ -f "$dir/pid" ] && grep -qs "$dir/config.yml" "/proc/$(cat "$dir/pid")/cmdline"
}

case "${1:-start}" in
  start)
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      ours && exit 0
      echo "something else answers on 127.0.0.1:$port (Debian's docker-registry service listens on :5000 once installed: systemctl disable --now docker-registry), or set EPHEMERA_REGISTRY_PORT" >&2
      exit 1
    fi
    if ! command -v docker-registry >/dev/null 2>&1; then
      need_command docker-registry docker-registry
      # The package enables a system service on every interface; this project wants loopback only.
      if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
    fi
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
EOF
    nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 50); do
      if curl -fsS -o /dev/null "$url" 2>/dev/null; then
        echo "registry on 127.0.0.1:$port (storage $dir/data)" >&2
        exit 0
      fi
      sleep 0.1
    done
    echo "the registry did not start; see $dir/registry.log" >&2
    exit 1
    ;;
  stop)
    if ours; then kill "$(cat "$dir/pid")" 2>/dev/null || true; fi
    rm -f "$dir/pid"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
