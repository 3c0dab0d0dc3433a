#!/usr/bin/env bash
# The project's test command (what CI runs): formatting, lints, then every test, including the
# differential suite against the real CRD API server, the kubectl suite against the dev cluster and
# the credential suite against a real OpenBao.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$REPO"
need_kubectl
need_crd_apiserver
need_openbao
need_schemathesis
need_payloads
need_python_kubernetes
need_caddy
need_chart_tools
need_playwright
export EPHEMERA_CRD_APISERVER_DIR="$CRD_APISERVER_DIR" BAO ST EPHEMERA_PAYLOADS_DIR="$PAYLOADS_DIR" \
  EPHEMERA_PYTHON_KUBERNETES="$PYTHON_KUBERNETES" CADDY EPHEMERA_DASHBOARD_DIR="$DASHBOARD_DIR" \
  EPHEMERA_CHROMIUM="$CHROMIUM"
# The loopback registry with the test images (the kubelet's pull and runc tests use them), stopped at
# the end if this run started it. Always loopback, whatever EPHEMERA_REGISTRY says: test builds never
# leave the machine.
port=$REGISTRY_PORT
if ! curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
  trap '"$REPO/e2e/scripts/registry.sh" stop' EXIT
fi
need_command runc runc
"$REPO/e2e/scripts/registry.sh" start
echo "== test images (images/test, into the loopback registry)" >&2
"$REPO/images/test/build.sh" >/dev/null
export EPHEMERA_TEST_REGISTRY="127.0.0.1:$port"
# Test nodes share one image store (testing.rs); start it empty so no image of an earlier build is
# taken for this one's.
rm -rf "${TMPDIR:-/tmp}/ephemera-devcluster-test-images"
# A CI run builds everything once from scratch: incremental state would only double target/'s size.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi

echo "== chart (Helm v4's engine: lint, render, values schema, Kubernetes 1.36 schemas, security)" >&2
"$CHART_PYTHON" -m unittest discover -s "$REPO/charts/tests"
echo "== Caddyfile (caddy validate, with the local and the chart's settings)" >&2
"$CADDY" validate --adapter caddyfile --config "$REPO/Caddyfile" >/dev/null 2>&1 || "$CADDY" validate --adapter caddyfile --config "$REPO/Caddyfile"
EPHEMERA_EDGE_UPSTREAMS=dns EPHEMERA_EDGE_SALESFORCE=mtls EPHEMERA_EDGE_SALESFORCE_CA=/dev/null \
  "$CADDY" adapt --adapter caddyfile --config "$REPO/Caddyfile" >/dev/null
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build (the full-stack tests run the operator binary; the worker runs from its image)" >&2
cargo build --workspace --bins --locked
echo "== test worker image (static, unoptimised; the full-stack tests' worker Pods pull it)" >&2
"$REPO/images/build.sh" --profile dev --component worker --tag test --registry "127.0.0.1:$port/ephemera-dev" \
  --env-file "$REPO/target/images/test-images.env" >/dev/null
echo "== operator and API server images (static, unoptimised; the Helm test installs the chart with them)" >&2
"$REPO/images/build.sh" --profile dev --component operator --component api --tag test --registry "127.0.0.1:$port/ephemera-dev" \
  --env-file "$REPO/target/images/helm-images.env" >/dev/null
echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "== fuzz (webhook verification and rules, bounded time)" >&2
"$REPO/e2e/scripts/fuzz.sh"
echo "== images (static binaries, buildah, the local registry, runc)" >&2
# CI's disk: the tests are done, and the static release build needs room of its own.
if [[ -n "${CI:-}" ]]; then rm -rf "$REPO/target/debug"; fi
"$REPO/images/build.sh" --registry "127.0.0.1:$port/ephemera-dev" >/dev/null
"$REPO/e2e/scripts/images-test.sh"
