#!/usr/bin/env bash
# The main job: starts the local cluster, installs a sample CRD and object with kubectl, runs a Pod
# through the process kubelet, shows them, and keeps the cluster running until Ctrl-C. (The operator, API server and workers join this stack
# as their issues land.)
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$REPO"
need_kubectl
cargo build --locked --release -p ephemera-devcluster
state="$REPO/target/dev"
mkdir -p "$state"
export KUBECONFIG="$state/kubeconfig"
rm -f "$KUBECONFIG"
"$REPO/target/release/ephemera-devcluster" --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG" --data-dir "$state/data" \
  > "$state/devcluster.out" 2> "$state/devcluster.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q ready "$state/devcluster.out" 2>/dev/null && break; sleep 0.1; done
grep ready "$state/devcluster.out" || { cat "$state/devcluster.log" >&2; exit 1; }

set -x
kubectl version
kubectl apply --server-side -f "$REPO/e2e/examples/widget-crd.yaml"
kubectl wait --for=condition=Established crd/widgets.demo.ephemera.dev --timeout=10s
kubectl apply -f "$REPO/e2e/examples/widget.yaml"
kubectl get widgets
kubectl patch widget demo --type merge -p '{"spec":{"size":5}}'
kubectl get widget demo -o jsonpath='{.spec.size} generation={.metadata.generation}{"\n"}'
# A Pod runs as a local process through the process kubelet.
kubectl delete pod hello --ignore-not-found --wait=true
kubectl run hello --image=busybox --restart=Never -- sh -c 'echo "hello from a pod on $(hostname)"; sleep 1; echo bye'
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded pod/hello --timeout=30s
kubectl logs hello
kubectl get pods -o wide
{ set +x; } 2>/dev/null
cat <<MSG

The local cluster is running. In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl get widgets -w
State is kept in $state/data. Press Ctrl-C to stop.
MSG
if [ "${CI:-}" = true ] || [ -n "${DEV_ONESHOT:-}" ]; then exit 0; fi
wait $pid
