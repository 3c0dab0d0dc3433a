#!/usr/bin/env bash
# The main job: builds the Ephemera images and pushes them to a loopback registry, starts the local
# cluster (its kubelet pulls images from that registry and runs them with runc) and OpenBao (Vault),
# installs the Helm chart (charts/ephemera, with Helm v4's engine: the CRDs, the operator and the
# API server as Pods in namespace `ephemera`), puts the Caddy edge in front (TLS on
# https://localhost:8443, or a free port it prints), runs a demo Task (watch it go Pending ->
# Scheduled -> Running -> Succeeded), a Task that uses a credential from Vault, the REST API with a
# live stream and a signed webhook through the edge, and keeps everything running until Ctrl-C.
# Needs root (runc).
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$REPO"
need_kubectl
need_openbao
need_caddy
need_chart_tools
need_command runc runc
# The images (static binaries on empty bases), in the loopback registry; the demo's Task image
# (busybox, built from Debian's package) beside them, where the node finds Docker Hub's images.
registry="127.0.0.1:$REGISTRY_PORT"
stop_registry=true
if curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null; then stop_registry=false; fi
"$REPO/e2e/scripts/registry.sh" start
"$REPO/images/test/build.sh" >/dev/null
"$REPO/images/build.sh" --registry "$registry/ephemera-dev" --tag dev >/dev/null
source "$REPO/target/images/images.env"
echo "images: $EPHEMERA_OPERATOR_IMAGE $EPHEMERA_API_IMAGE $EPHEMERA_WORKER_IMAGE"
# The static binaries of the images (an admin's `ephemera-api token create` runs from here).
bin="$REPO/target/x86_64-unknown-linux-gnu/release"
cargo build --locked --release -p ephemera-devcluster
state="$REPO/target/dev"
mkdir -p "$state"
export KUBECONFIG="$state/kubeconfig"
rm -f "$KUBECONFIG"
# kubectl's own discovery and OpenAPI cache, fresh per run: the cluster keeps its port across runs, so
# a cache of an earlier run (kept for hours) would describe that run's CRDs, and kubectl's fallback
# for a kind it does not find there (OpenAPI v2 as protobuf) is one the local cluster does not serve.
export KUBECACHEDIR="$state/kube-cache"
rm -rf "$KUBECACHEDIR"
"$REPO/target/release/ephemera-devcluster" --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG" --data-dir "$state/data" \
  --insecure-registry "$registry" --registry-mirror "docker.io=$registry" \
  > "$state/devcluster.out" 2> "$state/devcluster.log" &
pid=$!
bao=""
edge=""
trap 'kill $edge $bao $pid 2>/dev/null || true; wait $edge $bao $pid 2>/dev/null || true; if $stop_registry; then "$REPO/e2e/scripts/registry.sh" stop; fi' EXIT
for _ in $(seq 1 100); do grep -q ready "$state/devcluster.out" 2>/dev/null && break; sleep 0.1; done
grep ready "$state/devcluster.out" || { cat "$state/devcluster.log" >&2; exit 1; }

# A loopback port free right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# OpenBao in dev mode (in memory), prepared the way an admin prepares Vault (e2e/scripts/vault-setup.sh),
# with one static secret for the demo credential.
bao_port=$(free_port)
export BAO_ADDR="http://127.0.0.1:$bao_port" BAO_TOKEN="root-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HOME="$state" "$BAO" server -dev -dev-no-store-token -dev-root-token-id="$BAO_TOKEN" -dev-listen-address="127.0.0.1:$bao_port" \
  > "$state/openbao.log" 2>&1 &
bao=$!
for _ in $(seq 1 100); do curl -fs "$BAO_ADDR/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done
HOME="$state" "$REPO/e2e/scripts/vault-setup.sh" "$state/operator-token"
HOME="$state" "$BAO" kv put -mount=secret ephemera/demo/registry REGISTRY_TOKEN="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null

# The chart, installed as an admin would: the namespace, the operator's Vault token as a Secret, and
# values for this node. Its Pods share the host's network, so each container listens on a free port
# of its own and the Deployments roll out by Recreate; the edge runs on the host (below).
kubectl create namespace ephemera --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create secret generic vault-operator -n ephemera --from-file=token="$state/operator-token" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# A later run keeps the ports of the first (the release's Pods come back with the cluster; moving
# ports through a server-side-applied upgrade is a known defect of the local cluster).
python3 - "$state/values.json" "$EPHEMERA_OPERATOR_IMAGE" "$EPHEMERA_API_IMAGE" "$EPHEMERA_WORKER_IMAGE" "$BAO_ADDR" \
  "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" <<'PY'
import json, os, sys
out, op, api, worker, vault, op_metrics, op_handoff, api_http, api_metrics = sys.argv[1:]
if os.path.exists(out):
    old = json.load(open(out))
    op_metrics, op_handoff = old["operator"]["containerPorts"]["metrics"], old["operator"]["containerPorts"]["handoff"]
    api_http, api_metrics = old["apiServer"]["containerPorts"]["http"], old["apiServer"]["containerPorts"]["metrics"]
def image(ref):
    name, digest = ref.split("@")
    return {"repository": name.rsplit(":", 1)[0], "digest": digest}
values = {
    "operator": {"image": image(op), "workerImage": image(worker), "defaultTaskImage": "busybox",
                 "containerPorts": {"metrics": int(op_metrics), "handoff": int(op_handoff)}, "strategy": {"type": "Recreate"}},
    "apiServer": {"replicaCount": 1, "image": image(api), "trustedProxies": ["127.0.0.1/32"],
                  "containerPorts": {"http": int(api_http), "metrics": int(api_metrics)}, "strategy": {"type": "Recreate"}},
    "edge": {"enabled": False},
    "vault": {"addr": vault, "auth": "token", "tokenSecret": "vault-operator"},
}
json.dump(values, open(out, "w"), indent=2)
PY
action=install
if kubectl get secret -n ephemera -l owner=helm,name=ephemera -o name | grep -q .; then action=upgrade; fi
"$CHART_PYTHON" "$REPO/charts/tests/release.py" "$action" --kubeconfig "$KUBECONFIG" --namespace ephemera --name ephemera \
  --values "$state/values.json"
kubectl get pods -n ephemera -o wide
# The API server's Service address (its ClusterIP: the node's service proxy forwards it).
api_upstream="$(kubectl get service ephemera-api -n ephemera -o jsonpath='{.spec.clusterIP}'):8080"
# An API token for the demo (printed once; only its hash is stored, in the API server's namespace).
TOKEN=$("$bin/ephemera-api" --namespace ephemera token create --namespaces default --verbs create,read,cancel,delete \
  --days 1 --description "dev.sh demo" 2>/dev/null)

# The edge: Caddy with the repository's Caddyfile, TLS from its internal CA, in front of the API
# server's Service. Every client call below goes through it (workers post progress to the API
# server's Service directly, as in any cluster).
edge_port=8443
if ! python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 8443))' 2>/dev/null; then edge_port=$(free_port); fi
mkdir -p "$state/caddy"
env -i PATH="$PATH" HOME="$state/caddy" XDG_DATA_HOME="$state/caddy/data" XDG_CONFIG_HOME="$state/caddy/config" \
  EPHEMERA_EDGE_HOST=localhost EPHEMERA_EDGE_TLS=internal EPHEMERA_EDGE_HTTPS_PORT="$edge_port" \
  EPHEMERA_EDGE_HTTP_PORT="$(free_port)" EPHEMERA_EDGE_PUBLIC_PORT=":$edge_port" \
  EPHEMERA_EDGE_METRICS_PORT="$(free_port)" EPHEMERA_EDGE_ADMIN="127.0.0.1:$(free_port)" \
  EPHEMERA_EDGE_UPSTREAMS=static EPHEMERA_API_UPSTREAMS="$api_upstream" \
  "$CADDY" run --adapter caddyfile --config "$REPO/Caddyfile" > "$state/edge-access.log" 2> "$state/edge.log" &
edge=$!
export CURL_CA_BUNDLE="$state/caddy/data/caddy/pki/authorities/local/root.crt"
API="https://localhost:$edge_port"
for _ in $(seq 1 100); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -o /dev/null "$API/healthz" || { cat "$state/edge.log" >&2; exit 1; }
echo "edge: $API (CA: $CURL_CA_BUNDLE)"

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

# A Task with a credential from Vault.
kubectl delete task.ephemera.dev publish --ignore-not-found --wait=true
kubectl apply -f "$REPO/e2e/examples/credential-demo.yaml" -f "$REPO/e2e/examples/task-credential.yaml"
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded task.ephemera.dev/publish --timeout=60s
kubectl logs publish-1
kubectl get task.ephemera.dev publish -o jsonpath='{.status.result}{"\n"}{range .status.conditions[*]}{.type}={.status} {end}{"\n"}'
kubectl get events --field-selector involvedObject.name=publish
kubectl get secrets -A -l app.kubernetes.io/managed-by=ephemera-operator
kubectl get taskqueues
kubectl get pods -o wide
kubectl get pods,deployments,services -n ephemera

# The same through the REST API, as a CI job would: create (idempotent), watch it live (Server-Sent
# Events: phases and progress as they happen, ending with the Task), then its logs and result.
run_id="demo-$(date +%s)"
curl -sS -X POST "$API/api/v1/namespaces/default/tasks" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -H "Idempotency-Key: $run_id" \
  -d '{"image": "busybox", "command": ["sh", "-c", "for i in 1 2 3; do echo \"::progress pct=$((i*33)) msg=step $i\"; sleep 1; done; echo deployed > \"$EPHEMERA_RESULT_FILE\""], "labels": {"demo": "api"}}' \
  | tee "$state/api-create.json"
echo
name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$state/api-create.json")
curl -sS -N "$API/api/v1/namespaces/default/tasks/$name/events" -H "Authorization: Bearer $TOKEN"
curl -sS "$API/api/v1/namespaces/default/tasks/$name/logs" -H "Authorization: Bearer $TOKEN"
for _ in $(seq 1 100); do
  curl -fsS "$API/api/v1/namespaces/default/tasks/$name/result" -H "Authorization: Bearer $TOKEN" 2>/dev/null && break
  sleep 0.2
done
echo
curl -sS "$API/api/v1/namespaces/default/tasks/$name/result" -H "Authorization: Bearer nope"
echo

# A task type: the `greet` ClusterTaskTemplate lists its parameters over REST, and a Task is made
# from it by name and params (a hostile-looking value stays one argument); a wrong param is refused.
kubectl apply -f "$REPO/e2e/examples/template-greet.yaml"
curl -sS "$API/api/v1/templates" -H "Authorization: Bearer $TOKEN"
echo
curl -sS -X POST "$API/api/v1/namespaces/default/tasks" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -H "Idempotency-Key: $run_id-greet" \
  -d '{"template": "greet", "params": {"who": "dev; rm -rf /", "times": 3}}' | tee "$state/template-create.json"
echo
greet=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$state/template-create.json")
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded "task.ephemera.dev/$greet" --timeout=60s
kubectl get task.ephemera.dev "$greet" -o jsonpath='{.status.template.kind}/{.status.template.name} generation {.status.template.generation}: {.status.result}{"\n"}'
curl -sS -X POST "$API/api/v1/namespaces/default/tasks" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"template": "greet", "params": {"times": 9}}'
echo

# A schedule: every 30 s a Task from the same template (Forbid: never two at once); it keeps running
# while the stack does, and keeps its last three finished Tasks.
kubectl apply -f "$REPO/e2e/examples/schedule-greet.yaml"
for _ in $(seq 1 400); do
  [ -n "$(kubectl get etsched greet-often -o jsonpath='{.status.lastOutcome.phase}')" ] && break
  sleep 0.2
done
kubectl get etsched greet-often
kubectl get tasks.ephemera.dev -l ephemera.dev/schedule=greet-often

# A webhook: GitHub signs a push with the trigger's secret (here python3 signs it as GitHub does);
# the answer names the Task it made, and the trigger's status logs the delivery.
kubectl apply -f "$REPO/e2e/examples/trigger-github.yaml"
for _ in $(seq 1 50); do
  [ "$(kubectl get etrig github-push -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] && break
  sleep 0.2
done
push='{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"full_name":"Codertocat/Hello-World"}}'
sig=$(printf '%s' "$push" | python3 -c 'import hmac,hashlib,sys; print("sha256="+hmac.new(sys.argv[1].encode(),sys.stdin.buffer.read(),hashlib.sha256).hexdigest())' change-me-to-a-long-random-string)
delivery="dev-$(date +%s)"
curl -sS -X POST "$API/webhooks/default/github-push" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $delivery" -H "X-Hub-Signature-256: $sig" -d "$push" \
  | tee "$state/webhook.json"
echo
hook_task=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["task"])' "$state/webhook.json")
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded "task.ephemera.dev/$hook_task" --timeout=60s
kubectl get task.ephemera.dev "$hook_task" -o jsonpath='{.spec.origin}{"\n"}{.status.result}{"\n"}'
curl -sS -X POST "$API/webhooks/default/github-push" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $delivery" -H "X-Hub-Signature-256: $sig" -d "$push"
echo
curl -sS -X POST "$API/webhooks/default/github-push" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: forged" -H "X-Hub-Signature-256: sha256=00" -d "$push"
echo
sleep 1
kubectl get etrig github-push
kubectl get etrig github-push -o jsonpath='{.status.lastRefused.reason}{"\n"}{.status.counters}{"\n"}'
# The CLI, through the edge like any user's: a run followed to its end (progress, logs, the Task's
# own exit code), one from the template, the listings.
{ set +x; } 2>/dev/null
cargo build --locked --release -p ephemera-cli
export EPHEMERA_SERVER="$API" EPHEMERA_TOKEN="$TOKEN" EPHEMERA_CA_FILE="$CURL_CA_BUNDLE"
ephemera="$REPO/target/release/ephemera"
set -x
"$ephemera" run --image busybox --follow -- sh -c 'for i in 1 2 3; do echo "::progress pct=$((i*33)) msg=step $i"; echo "line $i"; sleep 1; done'
"$ephemera" run --template greet --param who=cli --follow
"$ephemera" run --image busybox --follow -- sh -c 'echo "this one fails"; exit 3' || echo "ephemera exited $?"
"$ephemera" list
"$ephemera" queues
"$ephemera" triggers
{ set +x; } 2>/dev/null
cat <<MSG

The local cluster and Ephemera (Helm release "ephemera" in namespace "ephemera") are running. In another shell:
  export KUBECONFIG=$KUBECONFIG KUBECACHEDIR=$KUBECACHEDIR CURL_CA_BUNDLE=$CURL_CA_BUNDLE API=$API TOKEN=$TOKEN
  kubectl apply -f $REPO/e2e/examples/task-retry.yaml
  kubectl get etsched -w                                     # the greet-often schedule's runs
  kubectl get tasks.ephemera.dev -w
  kubectl apply -f $REPO/e2e/examples/task-credential.yaml   # after: kubectl delete etask publish
  curl -H "Authorization: Bearer \$TOKEN" \$API/api/v1/namespaces/default/tasks
  export EPHEMERA_SERVER=\$API EPHEMERA_TOKEN=\$TOKEN EPHEMERA_CA_FILE=\$CURL_CA_BUNDLE
  $ephemera run --image busybox -F -- sh -c 'echo hi'; $ephemera watch
  kubectl get pods -n ephemera; kubectl logs -n ephemera deployment/ephemera-operator
The dashboard: $API/ (trust $CURL_CA_BUNDLE in the browser, or accept the warning; sign in with the token).
Edge log: $state/edge.log (access: $state/edge-access.log)   OpenBao: BAO_ADDR=$BAO_ADDR (log: $state/openbao.log)
State is kept in $state/data. Press Ctrl-C to stop.
MSG
if [ "${CI:-}" = true ] || [ -n "${DEV_ONESHOT:-}" ]; then exit 0; fi
wait $pid
