#!/usr/bin/env bash
# The main job: starts the local cluster and the Ephemera operator, installs the CRDs, runs a demo
# Task (watch it go Pending -> Scheduled -> Running -> Succeeded), shows kubectl working on the
# cluster, and keeps everything running until Ctrl-C. (The operator, API server and workers join this stack
# as their issues land.)
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$REPO"
need_kubectl
cargo build --locked --release -p ephemera-devcluster -p ephemera-operator
state="$REPO/target/dev"
mkdir -p "$state"
export KUBECONFIG="$state/kubeconfig"
rm -f "$KUBECONFIG"
"$REPO/target/release/ephemera-devcluster" --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG" --data-dir "$state/data" \
  > "$state/devcluster.out" 2> "$state/devcluster.log" &
pid=$!
op=""
trap 'kill $op $pid 2>/dev/null || true; wait $op $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q ready "$state/devcluster.out" 2>/dev/null && break; sleep 0.1; done
grep ready "$state/devcluster.out" || { cat "$state/devcluster.log" >&2; exit 1; }

# The operator runs as a local process against the cluster (as it would in a Pod, it finds the
# cluster through KUBECONFIG); busybox stands in for the worker image until the worker exists.
kubectl apply --server-side -f "$REPO/crds/yaml" >/dev/null
kubectl wait --for=condition=Established crd/tasks.ephemera.dev crd/taskqueues.ephemera.dev crd/credentials.ephemera.dev --timeout=30s >/dev/null
"$REPO/target/release/ephemera-operator" --worker-image busybox --metrics-addr 127.0.0.1:0 \
  > "$state/operator.log" 2>&1 &
op=$!

set -x
kubectl get crd tasks.ephemera.dev taskqueues.ephemera.dev
kubectl delete task.ephemera.dev hello --ignore-not-found --wait=true
kubectl get tasks.ephemera.dev -w --output-watch-events & watcher=$!
sleep 1
kubectl apply -f "$REPO/e2e/examples/task-hello.yaml"
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded task.ephemera.dev/hello --timeout=60s
kill $watcher
kubectl get tasks.ephemera.dev -o wide
kubectl get task.ephemera.dev hello -o jsonpath='{.status.phase} attempt={.status.attempt} exit={.status.exitCode} result={.status.result}'
kubectl logs hello-1
kubectl get events --field-selector involvedObject.name=hello
kubectl get taskqueues
kubectl get pods -o wide
{ set +x; } 2>/dev/null
cat <<MSG

The local cluster and the operator are running. In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl apply -f $REPO/e2e/examples/task-retry.yaml
  kubectl get tasks.ephemera.dev -w
Operator log: $state/operator.log
State is kept in $state/data. Press Ctrl-C to stop.
MSG
if [ "${CI:-}" = true ] || [ -n "${DEV_ONESHOT:-}" ]; then exit 0; fi
wait $pid
